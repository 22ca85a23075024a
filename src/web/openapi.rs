//! The JSON API's OpenAPI 3.1 description, generated from the handlers'
//! annotations, so it cannot drift from the code. Served at
//! `GET /api/openapi.json`; `docs/openapi.json` is the committed copy (a test
//! fails when they differ).

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::api;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "lance-billing",
        description = "The billing side of lance: Stripe's Customer Portal, synced plan state, invoices, entitlements, the credits wallet, usage for Stripe's meters, and Stripe's and Clerk's webhooks. Errors are `{\"error\": {\"code\", \"message\"}}`.",
    ),
    paths(
        api::portal::customer_portal,
        api::plan_state::subscription,
        api::invoices::invoices,
        api::entitlements::of_member,
        api::entitlements::of_organization,
        api::credits::history,
        api::credits::balance,
        api::credits::debit,
        api::usage::this_period,
        api::usage::report,
        api::webhooks::stripe,
        api::clerk_webhook::clerk,
        api::health::healthz,
        api::health::readyz,
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "billing", description = "The signed-in user's organization: portal, plan state, invoices"),
        (name = "entitlements", description = "What an organization may use"),
        (name = "credits", description = "The credits wallet: balance, history, debits"),
        (name = "usage", description = "Usage reported to Stripe's meters"),
        (name = "webhooks", description = "For Stripe, and for Clerk through Svix"),
        (name = "health", description = "Probes"),
    )
)]
pub struct ApiDoc;

/// Clerk's session token as a bearer token or the `__session` cookie, and
/// the service token of the internal routes.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".to_owned());
        bearer.description = Some("A Clerk session token".to_owned());
        components.add_security_scheme("clerk_bearer", SecurityScheme::Http(bearer));
        components.add_security_scheme(
            "clerk_session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "__session",
                "Clerk's session cookie, for same-site browser navigation",
            ))),
        );
        let mut service = Http::new(HttpAuthScheme::Bearer);
        service.description = Some("One of INTERNAL_API_TOKENS".to_owned());
        components.add_security_scheme("service_token", SecurityScheme::Http(service));
    }
}

/// The document as JSON, pretty-printed as committed.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned())
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}
