//! `POST /api/v1/webhooks/clerk`: Clerk's deliveries, through Svix. Verified
//! on the raw bytes, then applied and recorded in one transaction before
//! the 2xx: a failure answers 5xx, so Svix delivers it again.

use actix_web::{HttpRequest, HttpResponse, web};

use super::body::read_body;
use crate::billing::members::{self, Received};
use crate::clerk::events::{ClerkEvent, HANDLED_CLERK_EVENTS};
use crate::clerk::svix::SvixHeaders;
use crate::domain::unix_now;
use crate::metrics;
use crate::state::AppState;
use crate::web::errors::{ApiError, ErrorBody};

/// Clerk's events are a few KiB.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// What became of a delivery.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ClerkAcknowledgement<'a> {
    /// The delivery's `svix-id`.
    id: &'a str,
    /// `applied`, `duplicate` or `ignored` (a type this service does not handle).
    #[schema(value_type = String)]
    status: Received,
}

/// Clerk's webhook deliveries (organizations and memberships), Svix-signed.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/clerk",
    tag = "webhooks",
    params(
        ("svix-id" = String, Header, description = "The delivery's id; a redelivery keeps it"),
        ("svix-timestamp" = String, Header, description = "Unix seconds; at most 5 minutes from now"),
        ("svix-signature" = String, Header, description = "`v1,<base64>`, several separated by spaces"),
    ),
    request_body(content = Object, description = "A Clerk event, at most 256 KiB", content_type = "application/json"),
    responses(
        (status = 200, description = "Committed (`applied`), seen before (`duplicate`), or not handled (`ignored`)", body = ClerkAcknowledgement),
        (status = 400, description = "`VALIDATION_ERROR`: missing or bad Svix headers, or not a Clerk event", body = ErrorBody),
        (status = 500, description = "`INTERNAL_ERROR`: nothing was changed; Svix delivers it again", body = ErrorBody),
    )
)]
pub async fn clerk(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let verifier = state.clerk_webhooks.as_ref().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "a Clerk webhook arrived but CLERK_WEBHOOK_SECRET is not set"
        ))
    })?;
    let body = read_body(payload, state.body_timeout, MAX_BODY_BYTES).await?;
    let svix_id = verifier
        .verify(svix_headers(&req), &body, unix_now())
        .map_err(|err| {
            // Never the body or a secret: only why it failed.
            log::warn!("rejected a Clerk webhook delivery: {err}");
            metrics::webhook("clerk", None, &[], "refused");
            ApiError::Validation(format!("Invalid Svix signature: {err}."))
        })?;
    let not_an_event =
        |reason: String| ApiError::Validation(format!("The body is not a Clerk event: {reason}."));
    let event: ClerkEvent =
        serde_json::from_slice(&body).map_err(|e| not_an_event(e.to_string()))?;
    let change = event.change().map_err(not_an_event)?;
    let status = members::receive(&state.store, svix_id, &event, &change, &state.seats)
        .await
        .map_err(|err| {
            metrics::webhook("clerk", Some(&event.kind), &HANDLED_CLERK_EVENTS, "error");
            ApiError::internal(anyhow::anyhow!(
                "Clerk delivery {svix_id} ({}) not applied: {err}",
                event.kind
            ))
        })?;
    log::debug!("Clerk delivery {svix_id} ({}): {status:?}", event.kind);
    let outcome = match status {
        Received::Applied => "applied",
        Received::Duplicate => "duplicate",
        Received::Ignored => "ignored",
    };
    metrics::webhook("clerk", Some(&event.kind), &HANDLED_CLERK_EVENTS, outcome);
    Ok(HttpResponse::Ok().json(ClerkAcknowledgement {
        id: svix_id,
        status,
    }))
}

/// Svix's headers, or their `webhook-` names (Standard Webhooks).
fn svix_headers(req: &HttpRequest) -> SvixHeaders<'_> {
    let header = |svix: &str, standard: &str| {
        req.headers()
            .get(svix)
            .or_else(|| req.headers().get(standard))
            .and_then(|v| v.to_str().ok())
    };
    SvixHeaders {
        id: header("svix-id", "webhook-id"),
        timestamp: header("svix-timestamp", "webhook-timestamp"),
        signature: header("svix-signature", "webhook-signature"),
    }
}
