//! The app under test: a real server on a random port, a fresh database per
//! test (SQLite file, or a Postgres schema when TEST_DATABASE_URL is set), a
//! wiremock Stripe and a wiremock Clerk JWKS.

use std::collections::HashMap;

use lance_billing::config::{Env, Settings};
use lance_billing::domain::{OrgId, StripeCustomerId};
use lance_billing::server::Application;
use lance_billing::store::Store;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{CLERK_KEY_PEM, TEST_KID, jwks_for};
use crate::db::{TestDb, fresh_database_url};

pub const PUBLIC_URL: &str = "https://app.lance.test";
pub const PLANS_URL: &str = "https://app.lance.test/organization#/plans";
pub const STRIPE_KEY: &str = "sk_test_lance123";
pub const WEBHOOK_SECRET: &str = "whsec_test_secret";

pub struct TestApp {
    pub address: String,
    pub database_url: String,
    pub client: reqwest::Client,
    pub store: Store,
    /// The same database, for the SQL a test runs itself.
    pub db: TestDb,
    pub stripe: MockServer,
    pub clerk: MockServer,
    _dir: tempfile::TempDir,
}

pub struct TestAppBuilder {
    env: HashMap<String, String>,
    serve_jwks: bool,
    listener: Option<std::net::TcpListener>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::builder().spawn().await
    }

    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            env: HashMap::new(),
            serve_jwks: true,
            listener: None,
        }
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

    /// Runs a query returning one integer.
    pub async fn count(&self, sql: &'static str) -> i64 {
        self.db.scalar(sql).await.unwrap()
    }

    /// Waits (up to 10 s) for a query written off the request path, such as
    /// the audit rows, to reach `expected`, then asserts it is exactly that.
    pub async fn count_reaches(&self, sql: &'static str, expected: i64) {
        let started = std::time::Instant::now();
        while self.count(sql).await < expected
            && started.elapsed() < std::time::Duration::from_secs(10)
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(self.count(sql).await, expected, "{sql}");
    }

    /// Runs a statement.
    pub async fn execute(&self, sql: &'static str) {
        self.db.execute(sql).await.unwrap();
    }
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

    /// Serve on this bound socket instead of a port of the server's choosing
    /// (for a test that must know the port before the settings).
    pub fn listener(mut self, listener: std::net::TcpListener) -> Self {
        self.listener = Some(listener);
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
        let postgres = std::env::var("TEST_DATABASE_URL").ok();
        let database_url = fresh_database_url(dir.path(), postgres.as_deref(), "lt")
            .await
            .expect("TEST_DATABASE_URL is reachable");
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
            // Tests that want the scheduled catch-up turn it on.
            ("STRIPE_CATCHUP_INTERVAL", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        vars.extend(self.env);
        let env = Env::from_pairs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let settings = Settings::from_env(&env).expect("test settings are valid");
        let db_settings = settings.database.clone();
        let database_url = vars["DATABASE_URL"].clone();
        let app = match self.listener {
            Some(listener) => Application::build_on(settings, listener).await,
            None => Application::build(settings).await,
        }
        .expect("app builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let store = Store::connect(&db_settings).await.unwrap();
        let db = TestDb::connect(&database_url).await.unwrap();
        TestApp {
            address,
            database_url,
            db,
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
