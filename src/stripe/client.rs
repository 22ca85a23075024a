//! One client for Stripe's REST API: form-encoded requests with bracketed
//! keys, a pinned `Stripe-Version`, an `Idempotency-Key` on every POST, and
//! bounded retries with exponential backoff and jitter.

use std::time::Duration;

use rand::Rng;
use reqwest::{Method, StatusCode, header::HeaderMap};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use url::Url;

use crate::config::StripeSettings;
use crate::metrics;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// Full exponential backoff with jitter in [50 %, 100 %] so that many
    /// clients failing together do not retry in lockstep.
    fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.max_delay);
        exp.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

/// The `error` object of Stripe's error responses.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ApiErrorBody {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub code: Option<String>,
    pub message: Option<String>,
    pub param: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error(
        "Stripe answered {status} {kind} (code {code:?}, param {param:?}, request {request_id:?}): {message}",
        kind = body.kind, code = body.code, param = body.param,
        message = body.message.as_deref().unwrap_or("no message")
    )]
    Api {
        status: StatusCode,
        body: ApiErrorBody,
        request_id: Option<String>,
    },
    #[error("could not reach Stripe: {0}")]
    Network(#[source] reqwest::Error),
    #[error("Stripe answered {status} with a body we could not read: {reason}")]
    InvalidResponse { status: StatusCode, reason: String },
    /// An error status whose body is not Stripe's error JSON (a proxy's
    /// page, an empty body): still an error with its status, never a
    /// parse failure.
    #[error("Stripe answered {status} ({excerpt:?})")]
    Http { status: StatusCode, excerpt: String },
    #[error("could not encode the request for Stripe: {0}")]
    Encode(String),
}

impl StripeError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. }
            | Self::InvalidResponse { status, .. }
            | Self::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for Stripe's "no such object" answers.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ApiErrorBody,
}

/// Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    api_base: Url,
    secret_key: SecretString,
    api_version: String,
    /// The key is a live-mode key (else a test-mode one).
    live: bool,
    retry: RetryPolicy,
}

impl StripeClient {
    pub fn new(settings: &StripeSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("lance-billing/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            api_base: settings.api_base.clone(),
            secret_key: settings.secret_key.clone(),
            api_version: settings.api_version.clone(),
            live: settings.is_live(),
            retry: RetryPolicy {
                max_retries: settings.max_retries,
                base_delay: Duration::from_millis(300),
                max_delay: Duration::from_secs(5),
            },
        })
    }

    /// The API version requests are pinned to (`STRIPE_API_VERSION`).
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// Whether the key is a live-mode one: events of the other mode are
    /// another account's business, never applied.
    pub fn is_live(&self) -> bool {
        self.live
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// POSTs `params` form-encoded. Stripe replays the first result for a
    /// repeated key, so every retry reuses the caller's `idempotency_key`.
    pub async fn post<P: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        params: &P,
        idempotency_key: &str,
    ) -> Result<R, StripeError> {
        let form = serde_qs::to_string(params).map_err(|e| StripeError::Encode(e.to_string()))?;
        self.send(Method::POST, path, Some(form), Some(idempotency_key))
            .await
    }

    pub async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R, StripeError> {
        self.send(Method::GET, path, None, None).await
    }

    /// GETs `path` with `query`'s name and value pairs form-encoded
    /// (`limit=100&starting_after=…`). Pairs, not any `Serialize`: a list
    /// of pairs would encode as `0[0]=limit&0[1]=100`, which Stripe refuses
    /// as an unknown parameter.
    pub async fn get_with_query<'q, R: DeserializeOwned>(
        &self,
        path: &str,
        query: impl IntoIterator<Item = (&'q str, &'q str)>,
    ) -> Result<R, StripeError> {
        self.get(&format!("{path}?{}", query_of(query))).await
    }

    async fn send<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        form: Option<String>,
        idempotency_key: Option<&str>,
    ) -> Result<R, StripeError> {
        let url = self
            .api_base
            .join(path)
            .map_err(|e| StripeError::Encode(format!("bad path {path:?}: {e}")))?;
        let mut retry = 0;
        loop {
            let (result, retryable) = self
                .attempt(method.clone(), url.clone(), form.clone(), idempotency_key)
                .await;
            match result {
                Err(err) if retryable && retry < self.retry.max_retries => {
                    metrics::stripe_retry();
                    let delay = self.retry.delay(retry);
                    log::warn!(
                        "Stripe {method} {} failed ({err}); retry {} of {} in {delay:?}",
                        url.path(),
                        retry + 1,
                        self.retry.max_retries
                    );
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                other => return other,
            }
        }
    }

    /// One HTTP exchange; also says whether a failure may be retried.
    async fn attempt<R: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        form: Option<String>,
        idempotency_key: Option<&str>,
    ) -> (Result<R, StripeError>, bool) {
        let (verb, path) = (method.as_str().to_owned(), url.path().to_owned());
        let started = std::time::Instant::now();
        let observed = |status: &str| {
            metrics::stripe_request(&verb, &path, status, started.elapsed().as_secs_f64());
        };
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(self.secret_key.expose_secret())
            .header("Stripe-Version", &self.api_version);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(form) = form {
            request = request
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(form);
        }
        let response = match request.send().await {
            Ok(response) => response,
            // Connection failures and timeouts: safe to retry because every
            // POST carries an idempotency key and GETs change nothing.
            Err(err) => {
                observed("error");
                return (Err(StripeError::Network(err)), true);
            }
        };
        let status = response.status();
        observed(status.as_str());
        let retryable = should_retry(status, response.headers());
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(err) => return (Err(StripeError::Network(err)), true),
        };
        (
            parse_response(status, &body, retryable.request_id),
            retryable.retry,
        )
    }
}

struct RetryVerdict {
    retry: bool,
    request_id: Option<String>,
}

/// Stripe's `Stripe-Should-Retry` header, when present, overrides our own
/// judgement; otherwise 409 (idempotency/lock contention), 429 and 5xx retry.
fn should_retry(status: StatusCode, headers: &HeaderMap) -> RetryVerdict {
    let request_id = headers
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let header = headers
        .get("stripe-should-retry")
        .and_then(|v| v.to_str().ok());
    let retry = match header {
        Some("true") => true,
        Some("false") => false,
        _ => {
            status == StatusCode::CONFLICT
                || status == StatusCode::TOO_MANY_REQUESTS
                || status.is_server_error()
        }
    };
    RetryVerdict {
        retry: retry && !status.is_success(),
        request_id,
    }
}

fn parse_response<R: DeserializeOwned>(
    status: StatusCode,
    body: &[u8],
    request_id: Option<String>,
) -> Result<R, StripeError> {
    let invalid = |e: serde_json::Error| StripeError::InvalidResponse {
        status,
        reason: e.to_string(),
    };
    if status.is_success() {
        return serde_json::from_slice(body).map_err(invalid);
    }
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(envelope) => Err(StripeError::Api {
            status,
            body: envelope.error,
            request_id,
        }),
        Err(_) => Err(StripeError::Http {
            status,
            excerpt: excerpt(body),
        }),
    }
}

/// `query`'s pairs as a URL's query, each name and value form-encoded.
fn query_of<'q>(query: impl IntoIterator<Item = (&'q str, &'q str)>) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query)
        .finish()
}

/// The start of a body, as text, for an error message.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "empty body".to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_and_is_capped() {
        let policy = RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for (retry, full_ms) in [(0u32, 100u64), (1, 200), (2, 400), (5, 1000), (30, 1000)] {
            let d = policy.delay(retry);
            let full = Duration::from_millis(full_ms);
            assert!(d <= full && d >= full / 2, "retry {retry}: {d:?}");
        }
    }

    #[test]
    fn retry_rules_follow_status_and_stripes_header() {
        let none = HeaderMap::new();
        for (status, expected) in [
            (429, true),
            (500, true),
            (503, true),
            (409, true),
            (400, false),
            (401, false),
            (402, false),
            (404, false),
        ] {
            let s = StatusCode::from_u16(status).unwrap();
            assert_eq!(should_retry(s, &none).retry, expected, "{status}");
        }
        let mut no = HeaderMap::new();
        no.insert("stripe-should-retry", "false".parse().unwrap());
        assert!(!should_retry(StatusCode::SERVICE_UNAVAILABLE, &no).retry);
        let mut yes = HeaderMap::new();
        yes.insert("stripe-should-retry", "true".parse().unwrap());
        assert!(should_retry(StatusCode::BAD_REQUEST, &yes).retry);
    }

    #[test]
    fn a_query_is_its_pairs_form_encoded() {
        assert_eq!(query_of([("limit", "1")]), "limit=1");
        assert_eq!(
            query_of([("query", "metadata['org_id']:'org_1'"), ("limit", "100")]),
            "query=metadata%5B%27org_id%27%5D%3A%27org_1%27&limit=100"
        );
    }

    #[test]
    fn error_bodies_become_typed_errors() {
        let body = br#"{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such customer: 'cus_x'","param":"customer"}}"#;
        let err =
            parse_response::<serde_json::Value>(StatusCode::NOT_FOUND, body, Some("req_1".into()))
                .unwrap_err();
        assert!(err.is_not_found());
        let StripeError::Api {
            body, request_id, ..
        } = err
        else {
            panic!("expected Api error")
        };
        assert_eq!(body.kind, "invalid_request_error");
        assert_eq!(body.code.as_deref(), Some("resource_missing"));
        assert_eq!(request_id.as_deref(), Some("req_1"));
        let garbage = parse_response::<serde_json::Value>(StatusCode::NOT_FOUND, b"<html>", None)
            .unwrap_err();
        assert!(garbage.is_not_found(), "{garbage}");
        assert!(garbage.to_string().contains("404"), "{garbage}");
        let unreadable =
            parse_response::<serde_json::Value>(StatusCode::OK, b"<html>", None).unwrap_err();
        assert!(matches!(unreadable, StripeError::InvalidResponse { .. }));
    }
}
