//! Typed configuration read from environment variables (and `.env`, loaded by
//! `main`). Each command parses only the sections it needs, so `migrate` works
//! without Stripe keys. Every error names the variable and never its secret value.

mod clerk;
mod env;
mod seats;
mod stripe;
#[cfg(test)]
mod tests;

pub use clerk::ClerkApiSettings;
use clerk::clerk_webhook_secrets;
pub use env::{ConfigError, Env, parse_duration};
pub use seats::SeatSettings;
pub use stripe::{StripeSettings, WebhookSettings};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// May hold a password, so it is kept secret and never logged.
    pub url: SecretString,
    pub max_connections: u32,
    /// How long the Plans tab's reads may be served from memory; writes made
    /// through this instance drop them at once, so this bounds only how long
    /// another instance's writes can go unseen. Zero turns the cache off.
    pub plans_cache_ttl: Duration,
    /// Tasks writing webhook batches at once. One keeps batches whole (its
    /// transaction opens while the queue fills); more overlap round trips,
    /// which pays off only when each takes long (a distant database).
    pub ingest_writers: usize,
    /// The writers run on a thread of their own held to one core, beside
    /// their write connections (see `billing::ingest`).
    pub ingest_pinned: bool,
    /// On SQLite, each HTTP worker is held to one core and reads through
    /// connections of its own, opened from it (see `store::worker_reads`).
    pub reads_pinned: bool,
    /// How long a processed event's payload is kept (`EVENT_PAYLOAD_RETENTION`);
    /// its id stays for deduplication. `None` keeps payloads forever.
    pub event_payload_retention: Option<Duration>,
    /// How long granted credits last (`CREDITS_EXPIRE_AFTER`); `None`: for good.
    pub credits_expire_after: Option<Duration>,
}

impl DatabaseSettings {
    pub const DEFAULT_URL: &'static str = "sqlite://lance-billing.db";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let url = env.get("DATABASE_URL").unwrap_or(Self::DEFAULT_URL);
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "must start with sqlite:// or postgres://",
            ));
        }
        Self::readable(url)?;
        Ok(Self {
            url: SecretString::from(url.to_owned()),
            max_connections: env.parse_or("DATABASE_MAX_CONNECTIONS", 10, "a positive integer")?,
            plans_cache_ttl: env.duration_or("PLANS_CACHE_TTL", Duration::from_secs(1))?,
            ingest_writers: match env.parse_or("INGEST_WRITERS", 1usize, "a positive integer")? {
                0 => return Err(ConfigError::new("INGEST_WRITERS", "must be at least 1")),
                writers => writers,
            },
            ingest_pinned: env.flag_or("INGEST_PIN", true)?,
            reads_pinned: env.flag_or("READS_PIN", true)?,
            event_payload_retention: Some(
                env.duration_or("EVENT_PAYLOAD_RETENTION", Duration::from_secs(90 * 86_400))?,
            )
            .filter(|kept| !kept.is_zero()),
            credits_expire_after: Some(env.duration_or("CREDITS_EXPIRE_AFTER", Duration::ZERO)?)
                .filter(|lifetime| !lifetime.is_zero()),
        })
    }

    /// Refuses at start a URL the driver cannot read, rather than at the
    /// first connection. Its reasons never quote the URL, which may hold a
    /// password.
    fn readable(url: &str) -> Result<(), ConfigError> {
        use std::str::FromStr;
        let (read, hint) = if url.starts_with("sqlite:") {
            (
                sqlx::sqlite::SqliteConnectOptions::from_str(url).map(drop),
                "",
            )
        } else {
            (
                sqlx::postgres::PgConnectOptions::from_str(url).map(drop),
                " (a Unix socket is written postgres://user@localhost/db?host=/var/run/postgresql)",
            )
        };
        read.map_err(|e| ConfigError::new("DATABASE_URL", format!("cannot be read: {e}{hint}")))
    }

    pub fn is_postgres(&self) -> bool {
        self.url.expose_secret().starts_with("postgres")
    }
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub jwks_url: Option<Url>,
    /// Clerk's PEM public key for networkless verification.
    pub jwt_key_pem: Option<String>,
    pub issuer: Option<String>,
    pub authorized_parties: Vec<String>,
    /// Clerk's secret key, sent only to fetch `https://api.clerk.com/v1/jwks`.
    pub clerk_secret_key: Option<SecretString>,
    /// The locally generated development key file, trusted only when `DEV_AUTH` is on.
    pub dev_key_file: Option<PathBuf>,
    /// Signing secrets of Clerk's webhook endpoint (`whsec_…`, several while rotating).
    pub clerk_webhook_secrets: Vec<SecretString>,
}

impl AuthSettings {
    pub const DEFAULT_DEV_KEY_FILE: &'static str = ".lance-dev/dev-key.pem";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let jwks_url = env
            .get("CLERK_JWKS_URL")
            .map(|raw| env.url("CLERK_JWKS_URL", raw))
            .transpose()?;
        // Clerk's dashboard shows the key with newlines; one-line env files often
        // carry it with literal `\n`, so accept both.
        let jwt_key_pem = env.get("CLERK_JWT_KEY").map(|k| k.replace("\\n", "\n"));
        if let Some(pem) = &jwt_key_pem {
            jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| {
                ConfigError::new("CLERK_JWT_KEY", "is not a PEM-encoded RSA public key")
            })?;
        }
        let dev_key_file = env.flag("DEV_AUTH")?.then(|| Self::dev_key_path(env));
        if jwks_url.is_none() && jwt_key_pem.is_none() && dev_key_file.is_none() {
            return Err(ConfigError::new(
                "CLERK_JWKS_URL",
                "is not set: set CLERK_JWKS_URL or CLERK_JWT_KEY to verify Clerk sessions (or DEV_AUTH=true for local development)",
            ));
        }
        Ok(Self {
            jwks_url,
            jwt_key_pem,
            issuer: env.get("CLERK_ISSUER").map(str::to_owned),
            authorized_parties: env.list("CLERK_AUTHORIZED_PARTIES"),
            clerk_secret_key: env
                .get("CLERK_SECRET_KEY")
                .map(|k| SecretString::from(k.to_owned())),
            dev_key_file,
            clerk_webhook_secrets: clerk_webhook_secrets(env)?,
        })
    }

    pub fn dev_key_path(env: &Env) -> PathBuf {
        PathBuf::from(
            env.get("DEV_KEY_FILE")
                .unwrap_or(Self::DEFAULT_DEV_KEY_FILE),
        )
    }
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub bind_addr: SocketAddr,
    /// The origin users reach (`https://{host}`); the only source of URLs we
    /// hand to Stripe, never the request's Host header.
    pub public_url: Url,
    pub workers: Option<usize>,
    /// How long a client may take to send a request's head (slow clients
    /// are answered 408 and closed).
    pub client_request_timeout: Duration,
    /// How long a request body may take to arrive.
    pub client_body_timeout: Duration,
    /// How long an idle keep-alive connection is kept open.
    pub keep_alive: Duration,
    /// How long a stop waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// The bearer token `GET /metrics` asks for on the main address (`METRICS_TOKEN`).
    pub metrics_token: Option<SecretString>,
    /// An address serving `GET /metrics` alone, without a token (`METRICS_ADDR`).
    pub metrics_addr: Option<SocketAddr>,
}

impl ServerSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let raw = env.require(
            "PUBLIC_URL",
            "set it to the https://host users reach this service at (http://localhost:8080 for local use)",
        )?;
        let public_url = env.url("PUBLIC_URL", raw)?;
        if public_url.path() != "/"
            || public_url.query().is_some()
            || public_url.fragment().is_some()
        {
            return Err(ConfigError::new(
                "PUBLIC_URL",
                "must be an origin only, like https://app.example.com (no path, query or fragment)",
            ));
        }
        let workers = match env.get("WORKERS") {
            None => None,
            Some(_) => Some(env.parse_or("WORKERS", 1usize, "a positive integer")?),
        };
        Ok(Self {
            bind_addr: env.parse_or(
                "BIND_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8080)),
                "an address like 127.0.0.1:8080",
            )?,
            public_url,
            workers: workers.filter(|w| *w > 0),
            client_request_timeout: env
                .duration_or("CLIENT_REQUEST_TIMEOUT", Duration::from_secs(5))?,
            client_body_timeout: env.duration_or("CLIENT_BODY_TIMEOUT", Duration::from_secs(10))?,
            keep_alive: env.duration_or("KEEP_ALIVE", Duration::from_secs(15))?,
            shutdown_timeout: env.duration_or("SHUTDOWN_TIMEOUT", Duration::from_secs(10))?,
            metrics_token: match env.get("METRICS_TOKEN") {
                Some(token) if token.len() < 16 => {
                    return Err(ConfigError::new(
                        "METRICS_TOKEN",
                        "must be at least 16 characters long",
                    ));
                }
                token => token.map(|t| SecretString::from(t.to_owned())),
            },
            metrics_addr: env
                .get("METRICS_ADDR")
                .map(|raw| {
                    raw.parse().map_err(|_| {
                        ConfigError::new("METRICS_ADDR", "must be an address like 127.0.0.1:9090")
                    })
                })
                .transpose()?,
        })
    }

    /// `{PUBLIC_URL}/organization#/plans`: where Stripe's portal sends users back.
    pub fn plans_url(&self) -> String {
        format!("{}/organization#/plans", self.origin())
    }

    pub fn origin(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_owned()
    }
}

/// The pages: who may do what, and what is for sale.
#[derive(Debug, Clone)]
pub struct PagesSettings {
    /// Where unauthenticated page loads go (Clerk's hosted sign-in); a 401 page when unset.
    pub sign_in_url: Option<Url>,
    /// Organization roles (`org:admin`) that may open the portal and start checkout; empty = every member.
    pub manage_roles: Vec<String>,
    /// Clerk user ids of operators allowed into `/admin`.
    pub admin_user_ids: Vec<String>,
    /// Prices offered when no catalog has been synced yet.
    pub price_ids: Vec<String>,
    /// The one-time price credits are bought with, if credits are sold.
    pub credits_price_id: Option<String>,
    /// Credits one unit of `credits_price_id` buys, unless its synced `metadata.credits` says otherwise.
    pub credits_per_unit: i64,
    /// At or below this balance the Plans tab says credits are running low.
    pub credits_low_balance: Option<i64>,
    /// Signs the session cookie (CSRF tokens); 64+ bytes. Random per process when unset.
    pub session_key: Option<SecretString>,
}

impl PagesSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let price_ids = env.list("STRIPE_PRICE_IDS");
        if price_ids.iter().any(|p| !p.starts_with("price_")) {
            return Err(ConfigError::new(
                "STRIPE_PRICE_IDS",
                "must be a comma list of price_… ids",
            ));
        }
        let credits_price_id = env.get("STRIPE_CREDITS_PRICE_ID").map(str::to_owned);
        if credits_price_id
            .as_ref()
            .is_some_and(|p| !p.starts_with("price_"))
        {
            return Err(ConfigError::new(
                "STRIPE_CREDITS_PRICE_ID",
                "must be a price_… id",
            ));
        }
        let session_key = env
            .get("SESSION_KEY")
            .map(|k| SecretString::from(k.to_owned()));
        if session_key
            .as_ref()
            .is_some_and(|k| k.expose_secret().len() < 64)
        {
            return Err(ConfigError::new(
                "SESSION_KEY",
                "must be at least 64 characters long",
            ));
        }
        Ok(Self {
            sign_in_url: env
                .get("CLERK_SIGN_IN_URL")
                .map(|raw| env.url("CLERK_SIGN_IN_URL", raw))
                .transpose()?,
            manage_roles: env.list("BILLING_MANAGE_ROLES"),
            admin_user_ids: env.list("ADMIN_USER_IDS"),
            price_ids,
            credits_price_id,
            credits_per_unit: match env.parse_or(
                "CREDITS_PER_UNIT",
                1i64,
                "a positive whole number",
            )? {
                n if n >= 1 => n,
                _ => return Err(ConfigError::new("CREDITS_PER_UNIT", "must be at least 1")),
            },
            credits_low_balance: env
                .get("CREDITS_LOW_BALANCE")
                .map(|raw| {
                    raw.trim().parse::<i64>().map_err(|_| {
                        ConfigError::new("CREDITS_LOW_BALANCE", "must be a whole number of credits")
                    })
                })
                .transpose()?,
            session_key,
        })
    }
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub stripe: StripeSettings,
    pub webhooks: Option<WebhookSettings>,
    pub auth: AuthSettings,
    pub pages: PagesSettings,
    pub access: AccessSettings,
    pub seats: SeatSettings,
}

/// What organizations may use, and who else may ask.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// How long a past-due subscription keeps its features (`BILLING_GRACE_PERIOD`).
    pub grace_period: Duration,
    /// Tokens the product's other services present to the internal routes;
    /// none configured means those routes answer 404.
    pub internal_tokens: Vec<SecretString>,
}

impl AccessSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let internal_tokens: Vec<SecretString> = env
            .list("INTERNAL_API_TOKENS")
            .into_iter()
            .map(SecretString::from)
            .collect();
        if internal_tokens.iter().any(|t| t.expose_secret().len() < 32) {
            return Err(ConfigError::new(
                "INTERNAL_API_TOKENS",
                "must be comma-separated tokens of at least 32 characters each",
            ));
        }
        Ok(Self {
            grace_period: env
                .duration_or("BILLING_GRACE_PERIOD", Duration::from_secs(7 * 86_400))?,
            internal_tokens,
        })
    }
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let settings = Self {
            server: ServerSettings::from_env(env)?,
            database: DatabaseSettings::from_env(env)?,
            stripe: StripeSettings::from_env(env)?,
            webhooks: WebhookSettings::from_env(env)?,
            auth: AuthSettings::from_env(env)?,
            pages: PagesSettings::from_env(env)?,
            access: AccessSettings::from_env(env)?,
            seats: SeatSettings::from_env(env)?,
        };
        if settings.auth.dev_key_file.is_some() && settings.stripe.is_live() {
            return Err(ConfigError::new(
                "DEV_AUTH",
                "must not be enabled with a live Stripe key: development sign-in would let anyone open any organization's billing",
            ));
        }
        Ok(settings)
    }
}
