//! The test harness: a real server on a random port, a fresh database per
//! test (SQLite file, or a Postgres schema when TEST_DATABASE_URL is set), a
//! wiremock Stripe and a wiremock Clerk JWKS, and tokens signed by a test key.

use std::collections::HashMap;
use std::sync::LazyLock;

use aws_lc_rs::rsa::{KeyPair, PublicKeyComponents};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lance_billing::config::{Env, Settings};
use lance_billing::domain::{OrgId, StripeCustomerId, unix_now};
use lance_billing::startup::Application;
use lance_billing::store::{Pool, Store};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const TEST_KID: &str = "test-key-1";
pub const PUBLIC_URL: &str = "https://app.lance.test";
pub const PLANS_URL: &str = "https://app.lance.test/organization#/plans";
pub const STRIPE_KEY: &str = "sk_test_lance123";
pub const PORTAL_URL: &str = "https://billing.stripe.com/p/session/test_abc123";
pub const WEBHOOK_SECRET: &str = "whsec_test_secret";

pub const CLERK_KEY_PEM: &str = include_str!("../fixtures/clerk_test_key.pem");
pub const CLERK_PUBLIC_PEM: &str = include_str!("../fixtures/clerk_test_key.pub.pem");
pub const ATTACKER_KEY_PEM: &str = include_str!("../fixtures/attacker_key.pem");

static CLERK_KEY: LazyLock<EncodingKey> =
    LazyLock::new(|| EncodingKey::from_rsa_pem(CLERK_KEY_PEM.as_bytes()).unwrap());

/// Clerk's JWKS document for the test key, published under `kid`.
pub fn jwks_for(pem: &str, kid: &str) -> Value {
    let der = pem::parse(pem).unwrap();
    let pair = KeyPair::from_pkcs8(der.contents()).unwrap();
    let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
    json!({"keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e),
    }]})
}

/// Claims as Clerk's v2 tokens carry them, for a member of `org`.
pub fn claims_v2(org: &str) -> Value {
    let now = unix_now();
    json!({
        "sub": "user_2abc", "sid": "sess_1", "iat": now, "nbf": now, "exp": now + 600,
        "azp": "https://app.lance.test", "v": 2,
        "o": {"id": org, "rol": "admin", "slg": "acme", "per": "", "fpm": ""},
    })
}

/// Claims as Clerk's v1 tokens carry them.
pub fn claims_v1(org: &str) -> Value {
    let now = unix_now();
    json!({
        "sub": "user_2abc", "sid": "sess_1", "iat": now, "nbf": now, "exp": now + 600,
        "org_id": org, "org_role": "org:admin", "org_slug": "acme",
    })
}

pub fn claims_without_org() -> Value {
    let now = unix_now();
    json!({"sub": "user_2abc", "iat": now, "nbf": now, "exp": now + 600})
}

pub fn sign(claims: &Value) -> String {
    sign_with(claims, Algorithm::RS256, Some(TEST_KID), &CLERK_KEY)
}

pub fn sign_with(claims: &Value, alg: Algorithm, kid: Option<&str>, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

pub struct TestApp {
    pub address: String,
    pub database_url: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub stripe: MockServer,
    pub clerk: MockServer,
    _dir: tempfile::TempDir,
}

pub struct TestAppBuilder {
    env: HashMap<String, String>,
    serve_jwks: bool,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::builder().spawn().await
    }

    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            env: HashMap::new(),
            serve_jwks: true,
        }
    }

    pub fn portal_url(&self) -> String {
        format!("{}/api/v1/operations/payment/customer-portal", self.address)
    }

    /// GET the portal endpoint with `token` as a bearer token.
    pub async fn get_portal(&self, token: &str) -> reqwest::Response {
        self.client
            .get(self.portal_url())
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// An organization linked to a Stripe customer, as after its first purchase.
    pub async fn org_with_customer(&self, org: &str, customer: &str) {
        self.store
            .link_customer(
                &OrgId::parse(org).unwrap(),
                &StripeCustomerId::parse(customer).unwrap(),
                false,
            )
            .await
            .unwrap();
    }

    /// Stripe answers every portal-session request with `PORTAL_URL`.
    pub async fn stripe_creates_portal_sessions(&self) {
        Mock::given(method("POST"))
            .and(path("/v1/billing_portal/sessions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(portal_session_json()))
            .mount(&self.stripe)
            .await;
    }

    /// POSTs `event` to the webhook endpoint, signed as Stripe would.
    pub async fn post_event(&self, event: &Value) -> reqwest::Response {
        let body = serde_json::to_vec(event).unwrap();
        let header =
            lance_billing::stripe::webhook::signature_header(WEBHOOK_SECRET, unix_now(), &body);
        self.post_webhook(body, Some(&header)).await
    }

    pub async fn post_webhook(&self, body: Vec<u8>, signature: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/api/v1/webhooks/stripe", self.address))
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("Stripe-Signature", signature);
        }
        request.send().await.unwrap()
    }

    /// GET an authenticated JSON endpoint as a member of `org`.
    pub async fn get_json(&self, path: &str, org: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.address))
            .bearer_auth(sign(&claims_v2(org)))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A Stripe client aimed at this app's stand-in Stripe, as the CLI builds one.
    pub fn stripe_client(&self, max_retries: u32) -> lance_billing::stripe::StripeClient {
        let uri = self.stripe.uri();
        let retries = max_retries.to_string();
        let env = Env::from_pairs([
            ("STRIPE_SECRET_KEY", STRIPE_KEY),
            ("STRIPE_API_BASE", uri.as_str()),
            ("STRIPE_MAX_RETRIES", retries.as_str()),
        ]);
        let settings = lance_billing::config::StripeSettings::from_env(&env).unwrap();
        lance_billing::stripe::StripeClient::new(&settings).unwrap()
    }

    /// Runs a query returning one integer on whichever backend the app uses.
    pub async fn count(&self, sql: &'static str) -> i64 {
        match self.store.pool() {
            Pool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Pool::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }

    /// Runs a statement on whichever backend the app uses.
    pub async fn execute(&self, sql: &'static str) {
        match self.store.pool() {
            Pool::Sqlite(pool) => {
                sqlx::query(sql).execute(pool).await.unwrap();
            }
            Pool::Postgres(pool) => {
                sqlx::query(sql).execute(pool).await.unwrap();
            }
        }
    }

    /// GET a page as a browser signed in with `claims`: (status, headers, body).
    pub async fn page(
        &self,
        path: &str,
        claims: &Value,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.address))
            .header("Cookie", format!("__session={}", sign(claims)))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap())
    }

    /// Opens /organization like a browser: the session cookie and the form's CSRF token.
    pub async fn form_session(&self, claims: &Value) -> FormSession {
        self.form_session_at("/organization", claims).await
    }

    /// Opens the page at `path` like a browser: its session cookie and CSRF token.
    pub async fn form_session_at(&self, path: &str, claims: &Value) -> FormSession {
        let (status, headers, body) = self.page(path, claims).await;
        assert_eq!(status, 200, "{body}");
        let cookie = headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("lb_session="))
            .and_then(|c| c.split(';').next())
            .map(str::to_owned)
            .unwrap_or_default();
        let csrf = body
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_owned();
        FormSession {
            cookie,
            csrf,
            token: sign(claims),
        }
    }

    /// POSTs a form to `path` with the browser's cookies and `origin`.
    pub async fn post_form(
        &self,
        path: &str,
        session: &FormSession,
        origin: Option<&str>,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.address))
            .header(
                "Cookie",
                format!("__session={}; {}", session.token, session.cookie),
            )
            .form(fields);
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request.send().await.unwrap()
    }

    /// The acme organization, linked to a customer, with Stripe creating sessions.
    pub async fn paying_org(&self) {
        self.org_with_customer("org_acme", "cus_NciAYcXfLnqBoz")
            .await;
        self.stripe_creates_portal_sessions().await;
    }

    /// Every portal-session request Stripe received.
    pub async fn portal_requests(&self) -> Vec<wiremock::Request> {
        self.stripe_requests("/v1/billing_portal/sessions").await
    }

    /// Every request Stripe received at `at`.
    pub async fn stripe_requests(&self, at: &str) -> Vec<wiremock::Request> {
        self.stripe
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path() == at)
            .collect()
    }
}

pub struct FormSession {
    pub cookie: String,
    pub csrf: String,
    pub token: String,
}

pub fn form_fields(request: &wiremock::Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

pub fn portal_session_json() -> Value {
    json!({
        "id": "bps_1MqjBdLkdIwHu7ix", "object": "billing_portal.session",
        "configuration": "bpc_1MAhNDLkdIwHu7ixckACO1Jq", "created": 1680210737,
        "customer": "cus_NciAYcXfLnqBoz", "flow": null, "livemode": false, "locale": null,
        "on_behalf_of": null, "return_url": PLANS_URL, "url": PORTAL_URL,
    })
}

impl TestAppBuilder {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn without_env(mut self, key: &str) -> Self {
        self.env.insert(key.to_owned(), String::new());
        self
    }

    /// Leave the JWKS endpoint unmounted (tests mount their own).
    pub fn no_jwks(mut self) -> Self {
        self.serve_jwks = false;
        self
    }

    pub async fn spawn(self) -> TestApp {
        let _ = env_logger::builder().is_test(true).try_init();
        let stripe = MockServer::start().await;
        let clerk = MockServer::start().await;
        if self.serve_jwks {
            Mock::given(method("GET"))
                .and(path("/.well-known/jwks.json"))
                .respond_with(
                    ResponseTemplate::new(200).set_body_json(jwks_for(CLERK_KEY_PEM, TEST_KID)),
                )
                .mount(&clerk)
                .await;
        }
        let dir = tempfile::tempdir().unwrap();
        let database_url = fresh_database(&dir).await;
        let jwks_url = format!("{}/.well-known/jwks.json", clerk.uri());
        let mut vars: HashMap<String, String> = [
            ("BIND_ADDR", "127.0.0.1:0"),
            ("WORKERS", "1"),
            ("PUBLIC_URL", PUBLIC_URL),
            ("DATABASE_URL", &database_url),
            ("DATABASE_MAX_CONNECTIONS", "4"),
            ("STRIPE_SECRET_KEY", STRIPE_KEY),
            ("STRIPE_API_BASE", &stripe.uri()),
            ("STRIPE_TIMEOUT", "2s"),
            ("STRIPE_MAX_RETRIES", "2"),
            ("CLERK_JWKS_URL", &jwks_url),
            ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        vars.extend(self.env);
        let env = Env::from_pairs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let settings = Settings::from_env(&env).expect("test settings are valid");
        let db_settings = settings.database.clone();
        let database_url = vars["DATABASE_URL"].clone();
        let app = Application::build(settings).await.expect("app builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let store = Store::connect(&db_settings).await.unwrap();
        TestApp {
            address,
            database_url,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            store,
            stripe,
            clerk,
            _dir: dir,
        }
    }
}

/// A SQLite file in a temporary folder, or a new schema in TEST_DATABASE_URL.
async fn fresh_database(dir: &tempfile::TempDir) -> String {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(base) if base.starts_with("postgres") => fresh_postgres_schema(&base).await,
        _ => format!("sqlite://{}/test.db", dir.path().display()),
    }
}

async fn fresh_postgres_schema(base: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(base)
        .await
        .expect("TEST_DATABASE_URL is reachable");
    drop_stale_schemas(&mut conn).await;
    let schema = format!("lt_{}_{}", unix_now(), uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options[search_path]={schema}")
}

/// Schemas from runs more than an hour old, so the test database does not grow forever.
async fn drop_stale_schemas(conn: &mut sqlx::PgConnection) {
    let cutoff = unix_now() - 3600;
    let stale: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'lt\\_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|name: &String| {
                name.split('_')
                    .nth(1)
                    .and_then(|ts| ts.parse::<i64>().ok())
                    .is_some_and(|ts| ts < cutoff)
            })
            .collect();
    for schema in stale {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&mut *conn)
        .await;
    }
}
