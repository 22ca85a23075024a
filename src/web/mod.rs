//! The web layer: the route table (every path the service answers, in one
//! place), the guards that say who may call a handler, the errors and
//! response shapes at the boundary, and the handlers: `api/` answers JSON,
//! `pages/` renders HTML. Handlers parse, call into `billing` and `store`,
//! and render `views`; SQL and Stripe's wire format live elsewhere.

mod api;
pub mod errors;
pub mod guards;
mod pages;

use actix_web::http::StatusCode;
use actix_web::web::{ServiceConfig, get, post, to};

use errors::error_json;

/// Where "Manage billing" sends the browser; the Plans tab links to it.
pub const PORTAL_PATH: &str = "/api/v1/operations/payment/customer-portal";

/// Every route. A path matches one method; any other request gets the JSON
/// `NOT_FOUND` body.
pub fn routes(cfg: &mut ServiceConfig) {
    // Probes and assets.
    cfg.route("/healthz", get().to(api::health::healthz))
        .route("/readyz", get().to(api::health::readyz))
        .route("/", get().to(pages::home::home))
        .route("/static/app.css", get().to(pages::home::stylesheet))
        .route("/static/tabs.js", get().to(pages::home::tabs_script));
    // The organization's pages and the checkout forms they post.
    cfg.route("/organization", get().to(pages::organization::show))
        .route(
            "/organization/checkout/subscription",
            post().to(pages::checkout::subscribe),
        )
        .route(
            "/organization/checkout/credits",
            post().to(pages::checkout::buy_credits),
        );
    // Operators.
    cfg.route("/admin", get().to(pages::admin::organizations))
        .route("/admin/orgs/{id}", get().to(pages::admin::organization))
        .route("/admin/orgs/{id}/resync", post().to(pages::admin::resync))
        .route(
            "/admin/export/subscriptions.csv",
            get().to(pages::export::subscriptions),
        )
        .route("/admin/webhooks", get().to(pages::admin::webhooks))
        .route(
            "/admin/webhooks/{id}/replay",
            post().to(pages::admin::replay_event),
        );
    // The JSON API.
    cfg.route(PORTAL_PATH, get().to(api::portal::customer_portal))
        .route(
            "/api/v1/operations/payment/subscription",
            get().to(api::plan_state::subscription),
        )
        .route(
            "/api/v1/operations/payment/invoices",
            get().to(api::invoices::invoices),
        )
        .route(
            "/api/v1/operations/payment/entitlements",
            get().to(api::entitlements::of_member),
        )
        .route("/api/v1/webhooks/stripe", post().to(api::webhooks::stripe));
    // For the product's other services (a service token; 404 when none is configured).
    cfg.route(
        "/api/v1/internal/organizations/{org_id}/entitlements",
        get().to(api::entitlements::of_organization),
    );
    cfg.default_service(to(not_found));
}

async fn not_found() -> actix_web::HttpResponse {
    error_json(StatusCode::NOT_FOUND, "NOT_FOUND", "No such endpoint.")
}

/// Property-based fuzzing of the form and query parsers of the pages and
/// the API: any input is parsed or refused, never a panic.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::api::{invoices::InvoiceQuery, portal::PortalQuery};
    use super::pages::admin::{ListQuery, NoticeQuery};
    use super::pages::checkout::{CreditsForm, SubscribeForm};
    use super::pages::organization::PageQuery;

    /// Form-encoded text near the real shape, and any text at all.
    fn encoded() -> impl Strategy<Value = String> {
        let pair = (
            prop_oneof![
                Just("csrf"),
                Just("price"),
                Just("quantity"),
                Just("limit"),
                Just("starting_after"),
                Just("flow"),
                Just("subscription"),
                Just("page"),
                Just("status"),
                Just("q"),
                Just("checkout"),
                Just("done"),
            ],
            ".{0,24}",
        )
            .prop_map(|(k, v)| format!("{k}={v}"));
        prop_oneof![
            prop::collection::vec(pair, 0..6).prop_map(|pairs| pairs.join("&")),
            ".{0,200}",
            "[%&=+a-z0-9]{0,64}",
        ]
    }

    fn parse<T: serde::de::DeserializeOwned>(input: &str) {
        let _ = serde_urlencoded::from_str::<T>(input);
    }

    proptest! {
        #![proptest_config(crate::fuzz_config())]

        #[test]
        fn any_form_or_query_is_parsed_or_refused(input in encoded()) {
            parse::<SubscribeForm>(&input);
            parse::<CreditsForm>(&input);
            parse::<InvoiceQuery>(&input);
            parse::<PortalQuery>(&input);
            parse::<PageQuery>(&input);
            parse::<ListQuery>(&input);
            parse::<NoticeQuery>(&input);
        }
    }
}
