//! `POST /api/v1/webhooks/stripe`: Stripe's deliveries. Verified on the raw
//! bytes, recorded and applied in one transaction, answered fast.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::billing::ingest::ReceivedEvent;
use crate::billing::{IngestError, Ingested};
use crate::domain::unix_now;
use crate::state::AppState;
use crate::stripe::objects::Event;
use crate::web::errors::ApiError;

/// Stripe's events are a few KiB; anything near this is not one of them.
const MAX_BODY_BYTES: usize = 1024 * 1024;

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
    let body = tokio::time::timeout(state.body_timeout, payload.to_bytes_limited(MAX_BODY_BYTES))
        .await
        .map_err(|_| ApiError::Validation("The request body did not arrive in time.".to_owned()))?
        .map_err(|_| ApiError::Validation("The request body is larger than 1 MiB.".to_owned()))?
        .map_err(|_| ApiError::Validation("The request body could not be read.".to_owned()))?;
    let signature = req
        .headers()
        .get("Stripe-Signature")
        .and_then(|v| v.to_str().ok());
    verifier
        .verify(signature, &body, unix_now())
        .map_err(|err| {
            // Never log the body or the secret: only why it failed.
            log::warn!("rejected a webhook delivery: {err}");
            ApiError::Validation(format!("Invalid Stripe signature: {err}."))
        })?;
    let received = parse_event(&body)?;
    state.versions.note(received.event.api_version.as_deref());
    let (id, kind) = (received.event.id.clone(), received.event.kind.clone());
    match state.ingestor.submit(received).await {
        Ok(outcome) => Ok(acknowledge(&id, &kind, outcome)),
        // Not acknowledged, so Stripe retries: nothing was recorded.
        Err(err @ (IngestError::Store(_) | IngestError::Closed)) => Err(ApiError::internal(
            anyhow::anyhow!("webhook event {id} ({kind}) not stored: {err}"),
        )),
    }
}

fn parse_event(body: &[u8]) -> Result<ReceivedEvent, ApiError> {
    let not_an_event =
        |reason: String| ApiError::Validation(format!("The body is not a Stripe event: {reason}."));
    let payload = std::str::from_utf8(body)
        .map_err(|_| not_an_event("not UTF-8".to_owned()))?
        .to_owned();
    let event: Event = serde_json::from_str(&payload).map_err(|e| not_an_event(e.to_string()))?;
    Ok(ReceivedEvent { event, payload })
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
    HttpResponse::Ok().json(json!({"received": true, "id": id, "status": status}))
}
