//! Clerk session tokens signed by the test key, and the JWKS that publishes it.

use std::sync::LazyLock;

use aws_lc_rs::rsa::{KeyPair, PublicKeyComponents};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lance_billing::domain::unix_now;
use serde_json::{Value, json};

pub const TEST_KID: &str = "test-key-1";
pub const CLERK_KEY_PEM: &str = include_str!("../../fixtures/clerk_test_key.pem");
pub const CLERK_PUBLIC_PEM: &str = include_str!("../../fixtures/clerk_test_key.pub.pem");
pub const ATTACKER_KEY_PEM: &str = include_str!("../../fixtures/attacker_key.pem");

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
