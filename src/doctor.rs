//! `lance-billing doctor`: checks a deployment from the outside in, one
//! line per check (ok, warning, failed, with what to do), so an operator
//! hears of a broken deployment before a customer does. Nothing is
//! changed: no migration runs, no endpoint is created.

use std::fmt;

use serde_json::Value;

use crate::billing::rules::HANDLED_EVENTS;
use crate::config::{DatabaseSettings, Env, Settings};
use crate::store::Store;
use crate::stripe::{StripeClient, StripeError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Warning,
    Failed,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    /// What was found, and what to do when it is not ok.
    pub detail: String,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self::new(name, Verdict::Ok, detail)
    }
    fn warning(name: &'static str, detail: impl Into<String>) -> Self {
        Self::new(name, Verdict::Warning, detail)
    }
    fn failed(name: &'static str, detail: impl Into<String>) -> Self {
        Self::new(name, Verdict::Failed, detail)
    }
    fn new(name: &'static str, verdict: Verdict, detail: impl Into<String>) -> Self {
        Self {
            name,
            verdict,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.verdict {
            Verdict::Ok => "ok     ",
            Verdict::Warning => "warning",
            Verdict::Failed => "FAILED ",
        };
        write!(f, "{verdict} {}: {}", self.name, self.detail)
    }
}

/// The resources `sync` reads, by the path a key must be able to list.
pub const SYNC_RESOURCES: [(&str, &str); 7] = [
    ("customers", "/v1/customers"),
    ("subscriptions", "/v1/subscriptions"),
    ("invoices", "/v1/invoices"),
    ("products", "/v1/products"),
    ("prices", "/v1/prices"),
    ("events", "/v1/events"),
    ("entitlement features", "/v1/entitlements/features"),
];

/// Every check, in order; later ones are skipped when what they need failed.
pub async fn run(env: &Env) -> Vec<Check> {
    let settings = match Settings::from_env(env) {
        Ok(settings) => settings,
        Err(err) => {
            return vec![Check::failed(
                "configuration",
                format!("{err} (see docs/configuration.md)"),
            )];
        }
    };
    let mut checks = vec![Check::ok("configuration", "every variable parses")];
    checks.push(database(&settings.database).await);
    checks.extend(sessions(&settings));
    match StripeClient::new(&settings.stripe) {
        Ok(stripe) => checks.extend(stripe_checks(&settings, &stripe).await),
        Err(err) => checks.push(Check::failed("stripe key", format!("no client: {err}"))),
    }
    checks.push(clerk_keys(&settings).await);
    checks
}

async fn database(settings: &DatabaseSettings) -> Check {
    let store = match Store::connect(settings).await {
        Ok(store) => store,
        Err(err) => {
            return Check::failed(
                "database",
                format!("cannot connect ({err}): check DATABASE_URL"),
            );
        }
    };
    let check = match store.pending_migrations().await {
        Ok(0) => Check::ok(
            "database",
            format!("{} answers, migrated", store.backend_name()),
        ),
        Ok(pending) => Check::failed(
            "database",
            format!("{pending} migration(s) not applied: run `lance-billing migrate`"),
        ),
        Err(err) => Check::failed("database", format!("cannot read its migrations ({err})")),
    };
    store.close().await;
    check
}

fn sessions(settings: &Settings) -> Vec<Check> {
    let mut checks = Vec::new();
    if settings.database.is_postgres() && settings.pages.session_key.is_none() {
        checks.push(Check::warning(
            "session key",
            "PostgreSQL without SESSION_KEY: several instances each sign forms with their own \
             random key, so a form served by one is refused by another; set one SESSION_KEY everywhere",
        ));
    } else {
        checks.push(Check::ok("session key", "forms verify on every instance"));
    }
    if settings.webhooks.is_none() {
        checks.push(Check::warning(
            "webhook secret",
            "STRIPE_WEBHOOK_SECRET is not set: Stripe's deliveries are refused",
        ));
    }
    checks
}

/// `test` or `live`, as the public address suggests: a local or test host
/// is a test deployment.
fn expected_mode(settings: &Settings) -> &'static str {
    let host = settings.server.public_url.host_str().unwrap_or_default();
    let local = host == "localhost"
        || host.starts_with("127.")
        || host == "[::1]"
        || [".test", ".local", ".localhost", ".example", ".internal"]
            .iter()
            .any(|suffix| host.ends_with(suffix));
    if local { "test" } else { "live" }
}

async fn stripe_checks(settings: &Settings, stripe: &StripeClient) -> Vec<Check> {
    let mode = if stripe.is_live() { "live" } else { "test" };
    let expected = expected_mode(settings);
    let mut checks = Vec::new();
    // The first list tells whether the key works at all.
    match probe(stripe, "/v1/customers").await {
        Err(err) if is_refused_key(&err) => {
            checks.push(Check::failed(
                "stripe key",
                format!("Stripe refuses it ({err}): set STRIPE_SECRET_KEY to a current key"),
            ));
            return checks;
        }
        Err(err) if err.status().is_none() => {
            checks.push(Check::failed(
                "stripe key",
                format!("Stripe cannot be reached ({err})"),
            ));
            return checks;
        }
        _ if mode != expected => checks.push(Check::warning(
            "stripe key",
            format!(
                "a {mode} key, but PUBLIC_URL {} looks like a {expected} deployment",
                settings.server.public_url
            ),
        )),
        _ => checks.push(Check::ok("stripe key", format!("works, {mode} mode"))),
    }
    checks.push(resources(stripe).await);
    checks.push(webhook_endpoint(settings, stripe).await);
    checks.push(portal(settings, stripe).await);
    checks
}

fn is_refused_key(err: &StripeError) -> bool {
    err.status().is_some_and(|s| s.as_u16() == 401)
}

async fn probe(stripe: &StripeClient, path: &str) -> Result<Value, StripeError> {
    stripe.get_with_query(path, [("limit", "1")]).await
}

async fn resources(stripe: &StripeClient) -> Check {
    let mut unreadable = Vec::new();
    for (name, path) in SYNC_RESOURCES {
        if let Err(err) = probe(stripe, path).await {
            unreadable.push(format!(
                "{name} ({})",
                err.status()
                    .map_or("no answer".to_owned(), |s| s.to_string())
            ));
        }
    }
    if unreadable.is_empty() {
        Check::ok(
            "stripe resources",
            "every resource `sync` reads is readable",
        )
    } else {
        Check::failed(
            "stripe resources",
            format!(
                "this key cannot read {}: give the restricted key read access to them",
                unreadable.join(", ")
            ),
        )
    }
}

async fn webhook_endpoint(settings: &Settings, stripe: &StripeClient) -> Check {
    let url = format!("{}/api/v1/webhooks/stripe", settings.server.origin());
    let endpoints = match stripe.webhook_endpoints().await {
        Ok(endpoints) => endpoints,
        Err(err) => {
            return Check::failed(
                "webhook endpoint",
                format!("cannot list webhook endpoints ({err})"),
            );
        }
    };
    let setup = format!("run `lance-billing webhooks setup --url {url}`");
    let Some(endpoint) = endpoints.iter().find(|e| e.url == url) else {
        return Check::failed(
            "webhook endpoint",
            format!("none delivers to {url}: {setup}"),
        );
    };
    if endpoint.status.as_deref() == Some("disabled") {
        return Check::failed(
            "webhook endpoint",
            format!(
                "{} is disabled (Stripe disables one that keeps failing): {setup}",
                endpoint.id
            ),
        );
    }
    let every = endpoint.enabled_events.iter().any(|e| e == "*");
    let missing: Vec<&str> = HANDLED_EVENTS
        .iter()
        .copied()
        .filter(|h| !every && !endpoint.enabled_events.iter().any(|e| e == h))
        .collect();
    if !missing.is_empty() {
        return Check::failed(
            "webhook endpoint",
            format!(
                "{} does not send {}: {setup}",
                endpoint.id,
                missing.join(", ")
            ),
        );
    }
    let pinned = &settings.stripe.api_version;
    match endpoint.api_version.as_deref() {
        Some(version) if version == pinned => Check::ok(
            "webhook endpoint",
            format!("{} delivers every handled event at {pinned}", endpoint.id),
        ),
        other => Check::warning(
            "webhook endpoint",
            format!(
                "{} sends events at {}, not {pinned}: they are applied, but pin it with \
                 `webhooks setup --url {url} --new`",
                endpoint.id,
                other.unwrap_or("the account's default version")
            ),
        ),
    }
}

async fn portal(settings: &Settings, stripe: &StripeClient) -> Check {
    if let Some(id) = &settings.stripe.portal_configuration {
        let path = format!(
            "/v1/billing_portal/configurations/{}",
            crate::stripe::path_segment(id)
        );
        return match stripe.get::<Value>(&path).await {
            Ok(config) if config["active"] == Value::Bool(true) => {
                Check::ok("customer portal", format!("{id} is active"))
            }
            Ok(_) => Check::failed(
                "customer portal",
                format!("{id} is not active: activate it or unset STRIPE_PORTAL_CONFIGURATION"),
            ),
            Err(err) => Check::failed(
                "customer portal",
                format!("STRIPE_PORTAL_CONFIGURATION {id} cannot be read ({err})"),
            ),
        };
    }
    let query = [("is_default", "true"), ("active", "true"), ("limit", "1")];
    match stripe
        .get_with_query::<Value>("/v1/billing_portal/configurations", query)
        .await
    {
        Ok(list) if list["data"].as_array().is_some_and(|d| !d.is_empty()) => {
            Check::ok("customer portal", "the default configuration is active")
        }
        Ok(_) => Check::failed(
            "customer portal",
            "no active default configuration: save the Customer Portal settings in Stripe's dashboard",
        ),
        Err(err) => Check::failed(
            "customer portal",
            format!("cannot read the portal configurations ({err})"),
        ),
    }
}

/// Whether the keys at `jwks` are `issuer`'s: the same host, or Clerk's
/// Backend API, which serves every instance's keys.
fn issuer_serves(issuer: &str, jwks: &url::Url) -> bool {
    let issuer_host = url::Url::parse(issuer).ok();
    jwks.host_str() == Some("api.clerk.com")
        || jwks.host_str() == issuer_host.as_ref().and_then(|i| i.host_str())
}

async fn clerk_keys(settings: &Settings) -> Check {
    let auth = &settings.auth;
    let Some(url) = &auth.jwks_url else {
        return if auth.jwt_key_pem.is_some() {
            Check::ok(
                "clerk keys",
                "CLERK_JWT_KEY verifies tokens without a network call",
            )
        } else {
            Check::warning(
                "clerk keys",
                "DEV_AUTH only: no Clerk key is configured, so real users cannot sign in",
            )
        };
    };
    let mut request = reqwest::Client::new().get(url.clone());
    if let Some(secret) = &auth.clerk_secret_key {
        request = request.bearer_auth(secrecy::ExposeSecret::expose_secret(secret));
    }
    let answer = match request
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
    {
        Ok(response) if response.status().is_success() => response.json::<Value>().await.ok(),
        Ok(response) => {
            return Check::failed(
                "clerk keys",
                format!("{url} answered {}", response.status()),
            );
        }
        Err(err) => return Check::failed("clerk keys", format!("{url} cannot be reached ({err})")),
    };
    let keys = answer
        .as_ref()
        .and_then(|jwks| jwks["keys"].as_array())
        .map_or(0, Vec::len);
    if keys == 0 {
        return Check::failed("clerk keys", format!("{url} lists no keys"));
    }
    match &auth.issuer {
        Some(issuer) if !issuer_serves(issuer, url) => Check::failed(
            "clerk keys",
            format!(
                "CLERK_ISSUER {issuer} is not the host of CLERK_JWKS_URL {url}: tokens would all be refused"
            ),
        ),
        _ => Check::ok("clerk keys", format!("{url} lists {keys} key(s)")),
    }
}
