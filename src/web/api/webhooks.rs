//! `POST /api/v1/webhooks/stripe`: Stripe's deliveries. Verified on the raw
//! bytes, recorded and applied in one transaction, answered fast.

use actix_web::{HttpRequest, HttpResponse, web};

use super::body::read_body;
use crate::billing::ingest::ReceivedEvent;
use crate::billing::rules::{HANDLED_EVENTS, plan_for_key};
use crate::billing::{IngestError, Ingested};
use crate::domain::unix_now;
use crate::metrics;
use crate::state::AppState;
use crate::stripe::objects::Event;
use crate::web::errors::{ApiError, ErrorBody};

/// Stripe's events are a few KiB; anything near this is not one of them.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Stripe's webhook deliveries, verified on the raw bytes.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/stripe",
    tag = "webhooks",
    params(("Stripe-Signature" = String, Header, description = "`t=<unix seconds>,v1=<hex>[,v1=…]`")),
    request_body(content = Object, description = "A Stripe event, at most 1 MiB", content_type = "application/json"),
    responses(
        (status = 200, description = "Stored (`applied`, `duplicate`, or `failed` to apply, kept for replay)", body = Acknowledgement),
        (status = 400, description = "`VALIDATION_ERROR`: a missing or bad signature, or not an event", body = ErrorBody),
        (status = 500, description = "`INTERNAL_ERROR`: not stored; Stripe retries", body = ErrorBody),
    )
)]
pub async fn stripe(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let verifier = state.webhooks.as_ref().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "a Stripe webhook arrived but STRIPE_WEBHOOK_SECRET is not set"
        ))
    })?;
    let body = read_body(payload, state.body_timeout, MAX_BODY_BYTES).await?;
    let signature = req
        .headers()
        .get("Stripe-Signature")
        .and_then(|v| v.to_str().ok());
    verifier
        .verify(signature, &body, unix_now())
        .map_err(|err| {
            // Never log the body or the secret: only why it failed.
            log::warn!("rejected a webhook delivery: {err}");
            metrics::webhook("stripe", None, &[], "refused");
            ApiError::Validation(format!("Invalid Stripe signature: {err}."))
        })?;
    let (event, payload) = parse_event(&body)?;
    state.versions.note(event.api_version.as_deref());
    let (id, kind) = (event.id.clone(), event.kind.clone());
    // Planning is pure work: done on the request's task, so the writers only write.
    let changes = plan_for_key(&event, state.stripe.is_live());
    let received = ReceivedEvent::planned(event, payload, changes);
    match state.ingestor.submit(received).await {
        Ok(outcome) => Ok(acknowledge(&id, &kind, outcome)),
        // Not acknowledged, so Stripe retries: nothing was recorded.
        Err(err @ (IngestError::Store(_) | IngestError::Closed)) => {
            metrics::webhook("stripe", Some(&kind), HANDLED_EVENTS, "error");
            Err(ApiError::internal(anyhow::anyhow!(
                "webhook event {id} ({kind}) not stored: {err}"
            )))
        }
    }
}

/// The envelope, and the payload kept as Stripe sent it.
fn parse_event(body: &[u8]) -> Result<(Event, String), ApiError> {
    let not_an_event =
        |reason: String| ApiError::Validation(format!("The body is not a Stripe event: {reason}."));
    let payload = std::str::from_utf8(body)
        .map_err(|_| not_an_event("not UTF-8".to_owned()))?
        .to_owned();
    let event: Event = serde_json::from_str(&payload).map_err(|e| not_an_event(e.to_string()))?;
    Ok((event, payload))
}

/// The answer to a stored delivery.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Acknowledgement<'a> {
    received: bool,
    id: &'a str,
    /// `applied`, `duplicate` or `failed`.
    status: &'a str,
}

fn acknowledge(id: &str, kind: &str, outcome: Ingested) -> HttpResponse {
    let status = match outcome {
        Ingested::Applied => "applied",
        Ingested::Duplicate => "duplicate",
        // Recorded with its error for `events replay`; answering 2xx keeps
        // Stripe from disabling the endpoint over one event.
        Ingested::Failed(_) => "failed",
    };
    log::debug!("webhook {id} ({kind}): {status}");
    metrics::webhook("stripe", Some(kind), HANDLED_EVENTS, status);
    HttpResponse::Ok().json(Acknowledgement {
        received: true,
        id,
        status,
    })
}

/// Property-based fuzzing of the envelope and of every handled object's
/// parsing: any bytes, and any JSON shaped around each handled event type,
/// give an answer (applied, or refused with a reason), never a panic.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::billing::rules::{HANDLED_EVENTS, plan};

    /// Arbitrary JSON, a few levels deep, with the names Stripe objects use.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,12}".prop_map(Value::from),
        ];
        let key = prop_oneof![
            Just("id".to_owned()),
            Just("customer".to_owned()),
            Just("status".to_owned()),
            Just("items".to_owned()),
            Just("data".to_owned()),
            Just("price".to_owned()),
            Just("plan".to_owned()),
            Just("lines".to_owned()),
            Just("created".to_owned()),
            Just("metadata".to_owned()),
            Just("entitlements".to_owned()),
            Just("lookup_key".to_owned()),
            "[a-z_]{1,10}",
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(key.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Stripe's own example objects with some fields replaced by anything:
    /// most still parse, so the rules run on odd values, not only on errors.
    fn mutated_example() -> impl Strategy<Value = (&'static str, Value)> {
        const EXAMPLES: [(&str, &str); 8] = [
            ("customer.subscription.updated", "subscription"),
            ("invoice.paid", "invoice"),
            ("customer.updated", "customer"),
            ("payment_method.attached", "payment_method"),
            ("price.updated", "price"),
            ("product.updated", "product"),
            ("checkout.session.completed", "checkout.session"),
            (
                "entitlements.active_entitlement_summary.updated",
                "entitlements.active_entitlement_summary",
            ),
        ];
        let objects: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/stripe_objects.json"))
                .unwrap_or_default();
        (
            prop::sample::select(&EXAMPLES[..]),
            prop::collection::vec(("[a-z_]{1,24}", json_value()), 0..4),
        )
            .prop_map(move |((kind, name), replacements)| {
                let mut object = objects["resources"][name].clone();
                let keys: Vec<String> = object
                    .as_object()
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default();
                for (i, (key, value)) in replacements.into_iter().enumerate() {
                    // Mostly a field the object has, sometimes a new one.
                    let key = keys
                        .get(key.len() * 7 % (keys.len() + 1))
                        .cloned()
                        .unwrap_or(key);
                    if i % 3 == 2 {
                        if let Some(o) = object.as_object_mut() {
                            o.remove(&key);
                        }
                    } else {
                        object[key] = value;
                    }
                }
                (kind, object)
            })
    }

    proptest! {
        #![proptest_config(crate::fuzz_config())]

        #[test]
        fn any_mutation_of_an_example_object_is_planned_or_refused(
            (kind, object) in mutated_example(),
            created in any::<i64>(),
        ) {
            let envelope = json!({"id": "evt_fuzz", "type": kind, "created": created, "data": {"object": object}});
            let body = serde_json::to_vec(&envelope).unwrap_or_default();
            if let Ok((event, _)) = parse_event(&body) {
                let _ = plan(&event);
            }
        }

        #[test]
        fn any_bytes_as_a_delivery_are_answered(body in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Ok((event, _)) = parse_event(&body) {
                let _ = plan(&event);
            }
        }

        #[test]
        fn any_object_of_a_handled_type_is_planned_or_refused(
            kind in prop::sample::select(HANDLED_EVENTS),
            object in json_value(),
            created in any::<i64>(),
        ) {
            let envelope = json!({"id": "evt_fuzz", "type": kind, "created": created, "data": {"object": object}});
            let body = serde_json::to_vec(&envelope).unwrap_or_default();
            let parsed = parse_event(&body);
            prop_assert!(parsed.is_ok());
            if let Ok((event, _)) = parsed {
                let _ = plan(&event);
            }
        }
    }
}
