//! The web layer: the route table (every path the service answers, in one
//! place), the guards that say who may call a handler, the errors and
//! response shapes at the boundary, and the handlers: `api/` answers JSON,
//! `pages/` renders HTML. Handlers parse, call into `billing` and `store`,
//! and render `views`; SQL and Stripe's wire format live elsewhere.

mod api;
pub mod errors;
pub mod guards;
pub mod metrics;
pub mod openapi;
mod pages;
pub mod request_id;

use actix_web::http::{Method, StatusCode, header};
use actix_web::web::{self, ServiceConfig, to};
use actix_web::{FromRequest, Handler, HttpResponse, Resource, Responder};

use errors::error_json;

/// Where "Manage billing" sends the browser; the Plans tab links to it.
pub const PORTAL_PATH: &str = "/api/v1/operations/payment/customer-portal";

/// Every route. A path answers one method: any other gets the JSON
/// `METHOD_NOT_ALLOWED` body with `Allow`; an unknown path gets `NOT_FOUND`.
pub fn routes(cfg: &mut ServiceConfig) {
    // Probes, assets and the API description.
    cfg.service(route("/healthz", Method::GET, api::health::healthz))
        .service(route("/metrics", Method::GET, metrics::guarded))
        .service(route("/readyz", Method::GET, api::health::readyz))
        .service(route("/api/openapi.json", Method::GET, openapi::serve))
        .service(route("/", Method::GET, pages::home::home))
        .service(route(
            "/static/app.css",
            Method::GET,
            pages::home::stylesheet,
        ))
        .service(route(
            "/static/tabs.js",
            Method::GET,
            pages::home::tabs_script,
        ));
    // The organization's pages and the checkout forms they post.
    cfg.service(route(
        "/organization",
        Method::GET,
        pages::organization::show,
    ))
    .service(route(
        "/organization/checkout/subscription",
        Method::POST,
        pages::checkout::subscribe,
    ))
    .service(route(
        "/organization/checkout/credits",
        Method::POST,
        pages::checkout::buy_credits,
    ));
    // Operators, under one prefix: other requests pass their routes with one
    // comparison instead of trying each pattern.
    cfg.service(
        web::scope("/admin")
            .service(route("", Method::GET, pages::admin::organizations))
            .service(route(
                "/export/subscriptions.csv",
                Method::GET,
                pages::export::subscriptions,
            ))
            .service(route("/orgs/{id}", Method::GET, pages::admin::organization))
            .service(route(
                "/orgs/{id}/seats",
                Method::POST,
                pages::admin::update_seats,
            ))
            .service(route(
                "/orgs/{id}/resync",
                Method::POST,
                pages::admin::resync,
            ))
            .service(route(
                "/orgs/{id}/credits",
                Method::POST,
                pages::admin::adjust_credits,
            ))
            .service(route(
                "/orgs/{id}/usage/retry",
                Method::POST,
                pages::admin::retry_usage,
            ))
            .service(route("/webhooks", Method::GET, pages::admin::webhooks))
            .service(route(
                "/webhooks/{id}/replay",
                Method::POST,
                pages::admin::replay_event,
            )),
    );
    // The JSON API.
    cfg.service(route(
        PORTAL_PATH,
        Method::GET,
        api::portal::customer_portal,
    ))
    .service(route(
        "/api/v1/operations/payment/subscription",
        Method::GET,
        api::plan_state::subscription,
    ))
    .service(route(
        "/api/v1/operations/payment/invoices",
        Method::GET,
        api::invoices::invoices,
    ))
    .service(route(
        "/api/v1/operations/payment/entitlements",
        Method::GET,
        api::entitlements::of_member,
    ))
    .service(route(
        "/api/v1/operations/payment/credits",
        Method::GET,
        api::credits::history,
    ))
    .service(route(
        "/api/v1/operations/payment/usage",
        Method::GET,
        api::usage::this_period,
    ))
    .service(route(
        "/api/v1/webhooks/stripe",
        Method::POST,
        api::webhooks::stripe,
    ))
    .service(route(
        "/api/v1/webhooks/clerk",
        Method::POST,
        api::clerk_webhook::clerk,
    ));
    // For the product's other services (a service token; 404 when none is
    // configured). One scope: a request's organization is matched by one
    // pattern, not tried by each route's in turn (a profile of spread debits
    // spent a tenth of the HTTP workers' time in those patterns).
    cfg.service(
        web::scope("/api/v1/internal/organizations/{org_id}")
            .service(route(
                "/entitlements",
                Method::GET,
                api::entitlements::of_organization,
            ))
            .service(route("/credits", Method::GET, api::credits::balance))
            .service(route("/credits/debits", Method::POST, api::credits::debit))
            .service(route("/usage", Method::POST, api::usage::report)),
    );
    cfg.default_service(to(not_found));
}

/// `path` answering `method` with `handler`, and 405 to any other method.
fn route<F, Args>(path: &str, method: Method, handler: F) -> Resource
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    let allow = method.to_string();
    web::resource(path)
        .route(web::route().method(method).to(handler))
        .default_service(to(move || {
            let allow = allow.clone();
            async move { method_not_allowed(&allow) }
        }))
}

fn method_not_allowed(allow: &str) -> HttpResponse {
    let mut response = error_json(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "This endpoint does not answer that method.",
    );
    if let Ok(value) = header::HeaderValue::from_str(allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// A query string that does not parse answers the contract's JSON 400.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _| {
        errors::ApiError::Validation(format!("The query string is not valid: {err}.")).into()
    })
}

/// A path segment that does not parse answers the contract's JSON 400.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _| {
        errors::ApiError::Validation(format!("The path is not valid: {err}.")).into()
    })
}

async fn not_found() -> HttpResponse {
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
