//! Clerk session tokens: where they come from (`Authorization: Bearer` or the
//! `__session` cookie) and how they are verified. The web layer turns an
//! `Identity` into the guards a handler asks for (`crate::web::guards`).

mod claims;
pub mod dev;
mod keys;

pub use claims::{Identity, OrgMembership};
pub use keys::{JwksCache, KeyError, KeyStore};

use actix_web::{HttpRequest, http::header};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::config::AuthSettings;
use crate::domain::unix_now;
use claims::ClerkClaims;
use dev::DevKey;

/// Clerk signs with RSA; HMAC and `none` are never accepted, so a token
/// "signed" with our public key as an HMAC secret cannot pass.
const ALLOWED_ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512];
const CLOCK_SKEW_SECS: u64 = 5;
/// Real session tokens are around 1 KiB; anything far larger is not one.
const MAX_TOKEN_LEN: usize = 16 * 1024;
pub const SESSION_COOKIE: &str = "__session";

/// Why a token was refused. Logged for operators; clients only see 401.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no session token in the Authorization header or __session cookie")]
    Missing,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("typ {0:?} is not JWT")]
    WrongType(String),
    #[error("algorithm {0:?} is not allowed")]
    Algorithm(Algorithm),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("token rejected: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("iat is in the future")]
    IssuedInFuture,
    #[error("azp {0:?} is not an authorized party")]
    UnauthorizedParty(String),
    #[error("claims rejected: {0}")]
    Claims(#[from] claims::ClaimsError),
}

pub struct Authenticator {
    keys: KeyStore,
    validation: Validation,
    authorized_parties: Vec<String>,
    verified: VerifiedTokens,
}

/// Tokens that passed every check, by SHA-256, until their `exp`. A browser
/// sends the same short-lived token with each request, and an RSA check per
/// request is most of the endpoint's CPU. Only successes are cached, so
/// forged tokens cannot fill it; it is bounded and swept when full.
struct VerifiedTokens {
    entries: std::sync::Mutex<std::collections::HashMap<[u8; 32], (Identity, i64)>>,
}

impl VerifiedTokens {
    const CAPACITY: usize = 50_000;

    fn key(token: &str) -> [u8; 32] {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        key
    }

    fn get(&self, key: &[u8; 32], now: i64) -> Option<Identity> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(_, exp)| now < *exp)
            .map(|(identity, _)| identity.clone())
    }

    fn insert(&self, key: [u8; 32], identity: Identity, exp: i64, now: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= Self::CAPACITY {
            entries.retain(|_, (_, e)| now < *e);
            if entries.len() >= Self::CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, (identity, exp));
    }
}

impl Authenticator {
    pub fn new(keys: KeyStore, issuer: Option<&str>, authorized_parties: Vec<String>) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = ALLOWED_ALGORITHMS.to_vec();
        validation.leeway = CLOCK_SKEW_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(issuer) = issuer {
            // set_issuer only compares an `iss` that is present; a configured
            // issuer must also make the claim mandatory.
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".to_owned());
        }
        Self {
            keys,
            validation,
            authorized_parties,
            verified: VerifiedTokens {
                entries: Default::default(),
            },
        }
    }

    /// Builds the key sources `settings` names. Reads (or creates) the
    /// development key when `DEV_AUTH` is on.
    pub fn from_settings(settings: &AuthSettings) -> anyhow::Result<Self> {
        let jwks = settings
            .jwks_url
            .clone()
            .map(|url| JwksCache::new(url, settings.clerk_secret_key.clone()))
            .transpose()?;
        let pem = settings
            .jwt_key_pem
            .as_deref()
            .map(|pem| DecodingKey::from_rsa_pem(pem.as_bytes()))
            .transpose()?;
        let mut keys = KeyStore::new(jwks, pem);
        if let Some(path) = &settings.dev_key_file {
            let dev = DevKey::load_or_create(path)?;
            log::warn!(
                "DEV_AUTH is on: tokens signed by {} (kid {}) are trusted. Never enable this in production.",
                path.display(),
                dev.kid
            );
            keys = keys.with_key(dev.kid.clone(), dev.decoding_key());
        }
        Ok(Self::new(
            keys,
            settings.issuer.as_deref(),
            settings.authorized_parties.clone(),
        ))
    }

    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed);
        }
        let now = unix_now();
        let cache_key = VerifiedTokens::key(token);
        if let Some(identity) = self.verified.get(&cache_key, now) {
            return Ok(identity);
        }
        let (identity, exp) = self.verify_uncached(token).await?;
        self.verified.insert(cache_key, identity.clone(), exp, now);
        Ok(identity)
    }

    async fn verify_uncached(&self, token: &str) -> Result<(Identity, i64), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if let Some(typ) = header
            .typ
            .as_deref()
            .filter(|t| !t.eq_ignore_ascii_case("JWT"))
        {
            return Err(AuthError::WrongType(typ.to_owned()));
        }
        if !ALLOWED_ALGORITHMS.contains(&header.alg) {
            return Err(AuthError::Algorithm(header.alg));
        }
        let key = self.keys.key_for(header.kid.as_deref()).await?;
        let claims = jsonwebtoken::decode::<ClerkClaims>(token, &key, &self.validation)?.claims;
        self.check_claims(&claims)?;
        let exp = claims.exp;
        Ok((claims.into_identity()?, exp))
    }

    /// The checks Clerk's SDK makes that `jsonwebtoken` does not.
    fn check_claims(&self, claims: &ClerkClaims) -> Result<(), AuthError> {
        if claims
            .iat
            .is_some_and(|iat| iat > unix_now() + CLOCK_SKEW_SECS as i64)
        {
            return Err(AuthError::IssuedInFuture);
        }
        match &claims.azp {
            Some(azp)
                if !self.authorized_parties.is_empty()
                    && !self.authorized_parties.contains(azp) =>
            {
                Err(AuthError::UnauthorizedParty(azp.clone()))
            }
            _ => Ok(()),
        }
    }
}

/// The bearer token, else the `__session` cookie. A non-Bearer Authorization
/// header is a client error, not a reason to fall back to the cookie.
pub fn token_from_request(req: &HttpRequest) -> Result<String, AuthError> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| AuthError::Malformed)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::Malformed);
        }
        return Ok(token.trim().to_owned());
    }
    req.cookie(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or(AuthError::Missing)
}

/// Property-based fuzzing of session-token parsing: any text in the
/// `Authorization` header or the cookie, and tokens whose header and claims
/// are any JSON, are verified or refused, never a panic.
#[cfg(test)]
mod fuzz {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use proptest::prelude::*;

    use super::*;

    fn authenticator() -> Authenticator {
        let pem = include_str!("../../tests/fixtures/clerk_test_key.pub.pem");
        let key = DecodingKey::from_rsa_pem(pem.as_bytes()).ok();
        Authenticator::new(
            KeyStore::new(None, key),
            Some("https://clerk.test"),
            Vec::new(),
        )
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,40}".prop_map(|json| URL_SAFE_NO_PAD.encode(json)),
            r#"\{"(alg|typ|kid|sub|exp|nbf|iat|azp|o|org_id|v)":("[A-Za-z0-9_]{0,8}"|-?[0-9]{1,20}|null|\{\})\}"#
                .prop_map(|json| URL_SAFE_NO_PAD.encode(json)),
            "[A-Za-z0-9_-]{0,40}",
        ]
    }

    proptest! {
        #![proptest_config(crate::fuzz_config())]

        #[test]
        fn any_token_is_verified_or_refused(
            parts in prop::collection::vec(segment(), 0..5),
            raw in ".{0,100}",
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let auth = authenticator();
            runtime.block_on(async {
                let _ = auth.verify(&parts.join(".")).await;
                let _ = auth.verify(&raw).await;
            });
        }

        #[test]
        fn any_authorization_header_is_read_or_refused(value in "[ -~]{0,80}") {
            let req = actix_web::test::TestRequest::default()
                .insert_header((header::AUTHORIZATION, value.as_str()))
                .to_http_request();
            let _ = token_from_request(&req);
        }
    }
}
