//! `GET /metrics`, and the middleware that counts every request by its
//! route template (never its path: ids stay out of the labels).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, HttpResponse, web};
use aws_lc_rs::constant_time;
use secrecy::ExposeSecret;

use crate::metrics;
use crate::state::AppState;
use crate::web::errors::ApiError;

/// The middleware (`middleware::from_fn(metrics::observe)`).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.call(req).await;
    let status = match &response {
        Ok(response) => response.status().as_u16(),
        Err(err) => err.as_response_error().status_code().as_u16(),
    };
    metrics::http_request(&route, &method, status, started.elapsed().as_secs_f64());
    response
}

/// The metrics, with `METRICS_TOKEN` as a bearer token; 404 when no token
/// is set (then they are served on `METRICS_ADDR` only, if anywhere).
pub async fn guarded(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(token) = &state.metrics_token else {
        return Err(ApiError::NotFound("No route here.".to_owned()));
    };
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let expected = token.expose_secret().as_bytes();
    if constant_time::verify_slices_are_equal(presented.as_bytes(), expected).is_err() {
        return Err(ApiError::Unauthorized(
            "GET /metrics needs the METRICS_TOKEN as a bearer token.",
        ));
    }
    open(state).await
}

/// The metrics, for `METRICS_ADDR`'s listener.
pub async fn open(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut values = state.store.metric_state().await.unwrap_or_else(|err| {
        // The counters still answer; the gauges keep their last values.
        log::warn!("could not read the metrics' state: {err}");
        Vec::new()
    });
    values.push(("audit_queue", state.audit.queued() as i64));
    values.push(("debit_queue", state.debits.queued() as i64));
    values.push(("usage_queue", state.usage.queued() as i64));
    let plans_to_build = state.store.synced_plans_to_build();
    values.push(("synced_plans_to_build", plans_to_build as i64));
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .body(metrics::render(&values)))
}
