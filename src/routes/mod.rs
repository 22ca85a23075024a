//! The route table: every URL the service answers, in one place.

mod admin;
mod billing;
mod health;
mod home;
pub mod pages;
mod portal;
mod webhooks;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use crate::error::error_json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(home::home)
        .service(home::stylesheet)
        .service(home::tabs_script)
        .service(pages::organization)
        .service(pages::subscribe)
        .service(pages::buy_credits)
        .service(admin::organizations)
        .service(admin::organization)
        .service(admin::resync)
        .service(admin::webhooks)
        .service(admin::replay_event)
        .service(
            web::scope("/api/v1/operations/payment")
                .service(portal::customer_portal)
                .service(billing::subscription)
                .service(billing::invoices),
        )
        .service(web::scope("/api/v1/webhooks").service(webhooks::stripe_webhook))
        .default_service(web::to(not_found));
}

async fn not_found() -> HttpResponse {
    error_json(StatusCode::NOT_FOUND, "NOT_FOUND", "No such endpoint.")
}
