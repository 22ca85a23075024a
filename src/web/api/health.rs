//! Liveness and readiness probes for load balancers and orchestrators.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// The process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Object)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The service can do its work: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "`{\"status\": \"ready\", \"database\": \"sqlite\"}`", body = Object),
        (status = 503, description = "The database does not answer", body = Object),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({
            "status": "ready",
            "database": state.store.backend_name(),
        })),
        Err(err) => {
            log::error!("readiness check failed: {err}");
            HttpResponse::ServiceUnavailable().json(json!({
                "status": "unavailable",
                "database": state.store.backend_name(),
            }))
        }
    }
}
