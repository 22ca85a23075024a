//! Where verification keys come from: the development key (by `kid`), Clerk's
//! JWKS (cached by `kid`, refreshed when an unknown `kid` appears, at most once
//! per `MIN_REFRESH_INTERVAL`), and Clerk's PEM key (networkless, any `kid`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

/// Unknown `kid`s are attacker-controlled: refetching for each would let anyone
/// make us hammer Clerk, so a refresh happens at most this often.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(5);
/// Keys Clerk has removed stop being trusted within this long.
const MAX_KEY_AGE: Duration = Duration::from_secs(3600);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no key matches kid {0:?}")]
    UnknownKey(Option<String>),
    #[error("Clerk's signing keys have not been fetched yet (JWKS unreachable)")]
    Unavailable,
}

pub struct KeyStore {
    by_kid: HashMap<String, Arc<DecodingKey>>,
    pem_key: Option<Arc<DecodingKey>>,
    jwks: Option<JwksCache>,
}

impl KeyStore {
    pub fn new(jwks: Option<JwksCache>, pem_key: Option<DecodingKey>) -> Self {
        Self {
            by_kid: HashMap::new(),
            pem_key: pem_key.map(Arc::new),
            jwks,
        }
    }

    /// Trusts `key` for tokens whose header names `kid` (the development key).
    pub fn with_key(mut self, kid: String, key: DecodingKey) -> Self {
        self.by_kid.insert(kid, Arc::new(key));
        self
    }

    pub async fn key_for(&self, kid: Option<&str>) -> Result<Arc<DecodingKey>, KeyError> {
        if let Some(key) = kid.and_then(|kid| self.by_kid.get(kid)) {
            return Ok(key.clone());
        }
        if let (Some(jwks), Some(kid)) = (&self.jwks, kid) {
            match jwks.get(kid).await {
                Ok(Some(key)) => return Ok(key),
                Ok(None) => {}
                Err(err) if self.pem_key.is_none() => return Err(err),
                Err(_) => {}
            }
        }
        self.pem_key
            .clone()
            .ok_or_else(|| KeyError::UnknownKey(kid.map(str::to_owned)))
    }
}

#[derive(Default)]
struct JwksState {
    keys: HashMap<String, Arc<DecodingKey>>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

pub struct JwksCache {
    inner: Arc<Jwks>,
}

struct Jwks {
    url: Url,
    bearer: Option<SecretString>,
    http: reqwest::Client,
    state: RwLock<JwksState>,
    /// Single flight: concurrent misses wait for one fetch instead of each fetching.
    refresh: tokio::sync::Mutex<()>,
    max_age: Duration,
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

impl JwksCache {
    /// `bearer` is Clerk's secret key, needed only for `api.clerk.com/v1/jwks`.
    pub fn new(url: Url, bearer: Option<SecretString>) -> Result<Self, reqwest::Error> {
        Ok(Self {
            inner: Arc::new(Jwks {
                url,
                bearer,
                http: reqwest::Client::builder().timeout(FETCH_TIMEOUT).build()?,
                state: RwLock::new(JwksState::default()),
                refresh: tokio::sync::Mutex::new(()),
                max_age: MAX_KEY_AGE,
            }),
        })
    }

    #[cfg(test)]
    fn with_max_age(mut self, max_age: Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.max_age = max_age;
        }
        self
    }

    async fn get(&self, kid: &str) -> Result<Option<Arc<DecodingKey>>, KeyError> {
        let jwks = &self.inner;
        if let Some(key) = jwks.cached(kid, true) {
            return Ok(Some(key));
        }
        // A known key past its age still answers while Clerk is asked again
        // behind it: no request waits for that fetch.
        if let Some(stale) = jwks.cached(kid, false) {
            self.refresh_behind();
            return Ok(Some(stale));
        }
        jwks.refresh_if_due().await;
        // After a failed refresh, stale keys are better than none.
        match jwks.cached(kid, false) {
            Some(key) => Ok(Some(key)),
            None if jwks.read().fetched_at.is_none() => Err(KeyError::Unavailable),
            None => Ok(None),
        }
    }

    /// Starts a refresh on its own task, unless one runs or ran a moment ago.
    fn refresh_behind(&self) {
        if self.inner.refreshed_recently() || self.inner.refresh.try_lock().is_err() {
            return;
        }
        let jwks = Arc::clone(&self.inner);
        tokio::spawn(async move { jwks.refresh_if_due().await });
    }
}

impl Jwks {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, JwksState> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cached(&self, kid: &str, fresh_only: bool) -> Option<Arc<DecodingKey>> {
        let state = self.read();
        let fresh = state.fetched_at.is_some_and(|t| t.elapsed() < self.max_age);
        if fresh_only && !fresh {
            return None;
        }
        state.keys.get(kid).cloned()
    }

    fn refreshed_recently(&self) -> bool {
        self.read()
            .last_attempt
            .is_some_and(|t| t.elapsed() < MIN_REFRESH_INTERVAL)
    }

    async fn refresh_if_due(&self) {
        let _single_flight = self.refresh.lock().await;
        if self.refreshed_recently() {
            return;
        }
        let fetched = self.fetch().await;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.last_attempt = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                crate::metrics::jwks_refresh("ok");
                log::info!("fetched {} signing key(s) from Clerk's JWKS", keys.len());
                state.keys = keys;
                state.fetched_at = Some(Instant::now());
            }
            Err(err) => {
                crate::metrics::jwks_refresh("error");
                log::warn!("could not refresh Clerk's JWKS from {}: {err:#}", self.url);
            }
        }
    }

    async fn fetch(&self) -> anyhow::Result<HashMap<String, Arc<DecodingKey>>> {
        let mut request = self.http.get(self.url.clone());
        if let Some(secret) = &self.bearer {
            request = request.bearer_auth(secret.expose_secret());
        }
        let document: JwksDocument = request.send().await?.error_for_status()?.json().await?;
        Ok(document.keys.into_iter().filter_map(usable_key).collect())
    }
}

/// RSA signing keys with a `kid`; anything else in the set is skipped.
fn usable_key(raw: serde_json::Value) -> Option<(String, Arc<DecodingKey>)> {
    let jwk: Jwk = serde_json::from_value(raw).ok()?;
    let for_signing = matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    );
    let is_rsa = matches!(
        jwk.algorithm,
        jsonwebtoken::jwk::AlgorithmParameters::RSA(_)
    );
    let kid = jwk.common.key_id.clone()?;
    if !(for_signing && is_rsa) {
        return None;
    }
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some((kid, Arc::new(key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
    use aws_lc_rs::signature::KeyPair as _;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn jwks(kid: &str) -> serde_json::Value {
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        serde_json::json!({"keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e),
        }]})
    }

    /// A key past its age keeps answering while Clerk is slow to give the
    /// set again: no request waits for the refresh.
    #[tokio::test]
    async fn a_known_key_answers_at_once_while_the_set_is_fetched_again() {
        let clerk = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(jwks("kid_1")))
            .up_to_n_times(1)
            .mount(&clerk)
            .await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(jwks("kid_1"))
                    .set_delay(Duration::from_secs(4)),
            )
            .mount(&clerk)
            .await;
        let url = Url::parse(&clerk.uri()).unwrap();
        let cache = JwksCache::new(url, None)
            .unwrap()
            .with_max_age(Duration::ZERO);
        assert!(cache.get("kid_1").await.unwrap().is_some());
        // Past its age, and the refresh due again.
        cache.inner.state.write().unwrap().last_attempt = None;
        let started = Instant::now();
        for _ in 0..3 {
            assert!(cache.get("kid_1").await.unwrap().is_some());
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "waited {:?} for a refresh",
            started.elapsed()
        );
        // The refresh runs behind: one more fetch, not one a request.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(clerk.received_requests().await.unwrap().len(), 2);
    }
}
