//! Clerk session-token verification, through the portal endpoint.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use lance_billing::auth::dev::{DevKey, DevTokenRequest};
use lance_billing::domain::{OrgId, UserId, unix_now};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

/// A valid token reaches the handler: with no customer linked, that is a 404.
async fn accepted(app: &TestApp, token: &str) -> bool {
    match app.get_portal(token).await.status().as_u16() {
        404 => true,
        401 => false,
        other => panic!("unexpected status {other}"),
    }
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

fn unsigned(header: Value, claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.", part(&header), part(claims))
}

#[tokio::test]
async fn every_kind_of_bad_token_is_rejected_with_401() {
    let app = TestApp::spawn().await;
    let good = claims_v2("org_acme");
    let now = unix_now();
    let attacker = EncodingKey::from_rsa_pem(ATTACKER_KEY_PEM.as_bytes()).unwrap();
    let public_key_as_hmac_secret = EncodingKey::from_secret(CLERK_PUBLIC_PEM.as_bytes());
    let valid = sign(&good);
    let (head, rest) = valid.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let other_payload =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims_v2("org_victim")).unwrap());

    let cases: Vec<(&str, String)> = vec![
        ("garbage", "not-a-jwt".to_owned()),
        (
            "alg none",
            unsigned(json!({"alg": "none", "typ": "JWT", "kid": TEST_KID}), &good),
        ),
        (
            "HS256 keyed with the public key",
            sign_with(
                &good,
                Algorithm::HS256,
                Some(TEST_KID),
                &public_key_as_hmac_secret,
            ),
        ),
        (
            "unknown kid",
            sign_with(&good, Algorithm::RS256, Some("kid-nobody-knows"), &attacker),
        ),
        (
            "no kid",
            sign_with(&good, Algorithm::RS256, None, &attacker),
        ),
        (
            "signed by another key",
            sign_with(&good, Algorithm::RS256, Some(TEST_KID), &attacker),
        ),
        (
            "payload swapped after signing",
            format!("{head}.{other_payload}.{signature}"),
        ),
        ("expired", sign(&with(good.clone(), "exp", json!(now - 60)))),
        (
            "not yet valid",
            sign(&with(good.clone(), "nbf", json!(now + 60))),
        ),
        (
            "issued in the future",
            sign(&with(good.clone(), "iat", json!(now + 60))),
        ),
        ("no exp", sign(&without(good.clone(), "exp"))),
        ("no sub", sign(&without(good.clone(), "sub"))),
        (
            "sub not a string",
            sign(&with(good.clone(), "sub", json!(42))),
        ),
        (
            "malformed organization id",
            sign(&with(good.clone(), "o", json!({"id": "acme; DROP"}))),
        ),
        ("huge token", "a".repeat(20_000)),
    ];
    for (name, token) in cases {
        let response = app.get_portal(&token).await;
        assert_eq!(response.status().as_u16(), 401, "{name} must be rejected");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNAUTHORIZED", "{name}");
    }
    assert!(accepted(&app, &valid).await, "the untampered token passes");
}

#[tokio::test]
async fn a_typ_other_than_jwt_is_rejected() {
    let app = TestApp::spawn().await;
    let key = EncodingKey::from_rsa_pem(CLERK_KEY_PEM.as_bytes()).unwrap();
    let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
    header.kid = Some(TEST_KID.into());
    header.typ = Some("at+jwt".into());
    let token = jsonwebtoken::encode(&header, &claims_v2("org_acme"), &key).unwrap();
    assert!(!accepted(&app, &token).await);
}

#[tokio::test]
async fn malformed_authorization_headers_are_rejected() {
    let app = TestApp::spawn().await;
    for value in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc"] {
        let response = app
            .client
            .get(app.portal_url())
            .header("Authorization", value)
            .header(
                "Cookie",
                format!("__session={}", sign(&claims_v2("org_acme"))),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{value:?}");
    }
}

#[tokio::test]
async fn rs384_and_rs512_are_accepted_and_5_seconds_of_skew_tolerated() {
    let app = TestApp::spawn().await;
    let key = EncodingKey::from_rsa_pem(CLERK_KEY_PEM.as_bytes()).unwrap();
    let good = claims_v2("org_acme");
    for alg in [Algorithm::RS384, Algorithm::RS512] {
        assert!(
            accepted(&app, &sign_with(&good, alg, Some(TEST_KID), &key)).await,
            "{alg:?}"
        );
    }
    let now = unix_now();
    let just_expired = with(good.clone(), "exp", json!(now - 2));
    assert!(
        accepted(&app, &sign(&just_expired)).await,
        "within the skew"
    );
    let slightly_early = with(with(good, "nbf", json!(now + 2)), "iat", json!(now + 2));
    assert!(
        accepted(&app, &sign(&slightly_early)).await,
        "within the skew"
    );
}

#[tokio::test]
async fn the_issuer_is_enforced_when_configured() {
    let app = TestApp::builder()
        .env("CLERK_ISSUER", "https://clerk.lance.test")
        .spawn()
        .await;
    let good = with(
        claims_v2("org_acme"),
        "iss",
        json!("https://clerk.lance.test"),
    );
    assert!(accepted(&app, &sign(&good)).await);
    let wrong = with(
        claims_v2("org_acme"),
        "iss",
        json!("https://clerk.evil.test"),
    );
    assert!(!accepted(&app, &sign(&wrong)).await);
    assert!(
        !accepted(&app, &sign(&claims_v2("org_acme"))).await,
        "iss missing"
    );
}

#[tokio::test]
async fn azp_must_be_an_authorized_party_when_both_are_present() {
    let app = TestApp::builder()
        .env(
            "CLERK_AUTHORIZED_PARTIES",
            "https://app.lance.test,https://admin.lance.test",
        )
        .spawn()
        .await;
    let claims = claims_v2("org_acme");
    assert!(accepted(&app, &sign(&claims)).await);
    assert!(
        accepted(
            &app,
            &sign(&with(
                claims.clone(),
                "azp",
                json!("https://admin.lance.test")
            ))
        )
        .await
    );
    assert!(
        !accepted(
            &app,
            &sign(&with(claims.clone(), "azp", json!("https://evil.test")))
        )
        .await
    );
    assert!(
        accepted(&app, &sign(&without(claims, "azp"))).await,
        "absent azp is allowed"
    );
}

#[tokio::test]
async fn a_rotated_signing_key_is_picked_up_from_the_jwks() {
    let app = TestApp::builder().no_jwks().spawn().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks_for(CLERK_KEY_PEM, TEST_KID)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.clerk)
        .await;
    assert!(accepted(&app, &sign(&claims_v2("org_acme"))).await);

    // Clerk rotates to a new key with a new kid.
    Mock::given(method("GET"))
        .and(path("/.well-known/jwks.json"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(jwks_for(ATTACKER_KEY_PEM, "rotated-key")),
        )
        .mount(&app.clerk)
        .await;
    let rotated = EncodingKey::from_rsa_pem(ATTACKER_KEY_PEM.as_bytes()).unwrap();
    let token = sign_with(
        &claims_v2("org_acme"),
        Algorithm::RS256,
        Some("rotated-key"),
        &rotated,
    );
    // The refresh is rate limited; wait out the interval once.
    tokio::time::sleep(std::time::Duration::from_millis(5100)).await;
    assert!(accepted(&app, &token).await);
}

#[tokio::test]
async fn unknown_kids_do_not_make_us_hammer_clerk() {
    let app = TestApp::spawn().await;
    let attacker = EncodingKey::from_rsa_pem(ATTACKER_KEY_PEM.as_bytes()).unwrap();
    for i in 0..20 {
        let token = sign_with(
            &claims_v2("org_acme"),
            Algorithm::RS256,
            Some(&format!("kid-{i}")),
            &attacker,
        );
        assert!(!accepted(&app, &token).await);
    }
    let fetches = app.clerk.received_requests().await.unwrap().len();
    assert!(
        fetches <= 2,
        "JWKS fetched {fetches} times for 20 unknown kids"
    );
}

#[tokio::test]
async fn an_unreachable_jwks_is_our_outage_not_a_401() {
    let app = TestApp::builder().no_jwks().spawn().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/jwks.json"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&app.clerk)
        .await;
    let response = app.get_portal(&sign(&claims_v2("org_acme"))).await;
    assert_eq!(response.status().as_u16(), 500);
}

#[tokio::test]
async fn the_pem_key_verifies_tokens_without_any_network() {
    let one_line_pem = CLERK_PUBLIC_PEM.trim().replace('\n', "\\n");
    let app = TestApp::builder()
        .without_env("CLERK_JWKS_URL")
        .env("CLERK_JWT_KEY", &one_line_pem)
        .spawn()
        .await;
    assert!(accepted(&app, &sign(&claims_v1("org_acme"))).await);
    let attacker = EncodingKey::from_rsa_pem(ATTACKER_KEY_PEM.as_bytes()).unwrap();
    assert!(
        !accepted(
            &app,
            &sign_with(
                &claims_v1("org_acme"),
                Algorithm::RS256,
                Some(TEST_KID),
                &attacker
            )
        )
        .await
    );
    assert!(app.clerk.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn development_tokens_are_trusted_only_in_development_mode() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("dev-key.pem");
    let key_file = key_file.to_str().unwrap();
    let dev_app = TestApp::builder()
        .env("DEV_AUTH", "true")
        .env("DEV_KEY_FILE", key_file)
        .spawn()
        .await;
    let strict_app = TestApp::spawn().await;

    let key = DevKey::load_or_create(std::path::Path::new(key_file)).unwrap();
    let token = key
        .mint(&DevTokenRequest {
            user: &UserId::parse("user_dev").unwrap(),
            org: Some(&OrgId::parse("org_demo").unwrap()),
            role: "admin",
            slug: Some("demo"),
            ttl_secs: 600,
        })
        .unwrap();

    assert!(accepted(&dev_app, &token).await);
    assert!(!accepted(&strict_app, &token).await);
}
