//! Stripe webhook signatures: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…][,v0=…]`.
//! The signature is hex(HMAC-SHA256(secret, "{t}.{raw body}")), checked on the
//! raw bytes before any parsing. Only `v1` counts; any `v1` may match any of
//! our secrets (several while a secret is being rolled).

use aws_lc_rs::{constant_time, hmac};
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("the Stripe-Signature header has no v1 signature")]
    NoV1,
    #[error("the signature timestamp is {age_secs} s from now, outside the tolerance")]
    OutsideTolerance { age_secs: i64 },
    #[error("no v1 signature matches a configured secret")]
    NoMatch,
}

pub struct WebhookVerifier {
    secrets: Vec<SecretString>,
    tolerance_secs: i64,
}

struct SignatureHeader {
    timestamp: i64,
    v1: Vec<Vec<u8>>,
}

impl WebhookVerifier {
    pub fn new(secrets: Vec<SecretString>, tolerance_secs: i64) -> Self {
        Self {
            secrets,
            tolerance_secs,
        }
    }

    pub fn verify(
        &self,
        header: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        let header = parse_header(header.ok_or(SignatureError::Missing)?)?;
        // Saturating: a timestamp near i64's ends must be refused, not overflow.
        let age_secs = now.saturating_sub(header.timestamp);
        if age_secs.unsigned_abs() > self.tolerance_secs.unsigned_abs() {
            return Err(SignatureError::OutsideTolerance { age_secs });
        }
        let matches = self.secrets.iter().any(|secret| {
            let expected = sign(secret.expose_secret(), header.timestamp, body);
            header.v1.iter().any(|candidate| {
                constant_time::verify_slices_are_equal(expected.as_ref(), candidate).is_ok()
            })
        });
        if matches {
            Ok(())
        } else {
            Err(SignatureError::NoMatch)
        }
    }
}

/// The key is the whole secret string, `whsec_` prefix included.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    context.sign()
}

/// `Stripe-Signature` for `body` at `timestamp`, as Stripe would send it (tests, benchmarks).
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(sign(secret, timestamp, body).as_ref())
    )
}

fn parse_header(header: &str) -> Result<SignatureHeader, SignatureError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" if timestamp.is_none() => {
                timestamp = Some(value.parse().map_err(|_| SignatureError::Malformed)?);
            }
            "t" => return Err(SignatureError::Malformed),
            // A v1 that is not 32 bytes of hex cannot match; skip it rather
            // than fail, like Stripe's libraries.
            "v1" => v1.extend(hex::decode(value).ok().filter(|sig| sig.len() == 32)),
            _ => {} // v0 and future schemes are ignored.
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if v1.is_empty() {
        return Err(SignatureError::NoV1);
    }
    Ok(SignatureHeader { timestamp, v1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";

    fn verifier(secrets: &[&str]) -> WebhookVerifier {
        WebhookVerifier::new(
            secrets
                .iter()
                .map(|s| SecretString::from(s.to_string()))
                .collect(),
            300,
        )
    }

    #[test]
    fn stripes_published_vectors_match() {
        let body = br#"{"id":"evt_test_webhook","object":"event"}"#;
        assert_eq!(
            signature_header(SECRET, 1_700_000_000, body),
            "t=1700000000,v1=d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990"
        );
        let pretty = b"{\n  \"id\": \"evt_test_webhook\",\n  \"object\": \"event\",\n  \"data\": { \"object\": { \"id\": \"rdr_123\", \"object\": \"terminal.reader\" } }\n}";
        assert_eq!(
            signature_header(SECRET, 12345, pretty),
            "t=12345,v1=07b1ede164afb7b5de91267ffa656f568c65d6e0783ce0ac55ee094643578eda"
        );
        let header = "t=12345,v1=07b1ede164afb7b5de91267ffa656f568c65d6e0783ce0ac55ee094643578eda";
        assert_eq!(
            verifier(&[SECRET]).verify(Some(header), pretty, 12345 + 10),
            Ok(())
        );
    }

    #[test]
    fn any_v1_may_match_any_secret_and_other_schemes_are_ignored() {
        let body = b"{}";
        let good = hex::encode(sign(SECRET, 100, body).as_ref());
        let header = format!("t=100,v1={},v1={good},v0=deadbeef", "00".repeat(32));
        assert_eq!(
            verifier(&["whsec_old", SECRET]).verify(Some(&header), body, 100),
            Ok(())
        );
        let only_v0 = format!("t=100,v0={good}");
        assert_eq!(
            verifier(&[SECRET]).verify(Some(&only_v0), body, 100),
            Err(SignatureError::NoV1)
        );
    }

    #[test]
    fn every_kind_of_bad_signature_is_rejected() {
        let body = b"{\"id\":\"evt_1\"}";
        let v = verifier(&[SECRET]);
        let good = signature_header(SECRET, 1000, body);
        assert_eq!(v.verify(None, body, 1000), Err(SignatureError::Missing));
        assert_eq!(
            v.verify(Some("garbage"), body, 1000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            v.verify(Some("v1=abcd"), body, 1000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            v.verify(Some("t=x,v1=ab"), body, 1000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            v.verify(Some(&good), b"{\"id\":\"evt_2\"}", 1000),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verifier(&["whsec_other"]).verify(Some(&good), body, 1000),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            v.verify(Some(&good), body, 1301),
            Err(SignatureError::OutsideTolerance { age_secs: 301 })
        );
        assert_eq!(v.verify(Some(&good), body, 1300), Ok(()));
        assert!(
            v.verify(Some(&good), body, 600).is_err(),
            "far-future timestamps are refused too"
        );
    }
}

/// Property-based fuzzing of the parser that faces the internet: any header
/// and body give an answer, never a panic. `PROPTEST_CASES` raises the count
/// for longer runs (see docs/ARCHITECTURE.md).
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    fn verifier() -> WebhookVerifier {
        WebhookVerifier::new(vec![SecretString::from("whsec_fuzz".to_owned())], 300)
    }

    /// Headers near the real shape: `t=…` and `v1=…`/`v0=…` parts with
    /// numbers, hex and junk, in any order and count.
    fn header() -> impl Strategy<Value = String> {
        let part = prop_oneof![
            any::<i64>().prop_map(|t| format!("t={t}")),
            "[0-9a-f]{0,80}".prop_map(|h| format!("v1={h}")),
            "[0-9a-f]{0,80}".prop_map(|h| format!("v0={h}")),
            ".{0,20}",
            "[a-z0-9]{0,3}=[^,]{0,20}",
        ];
        prop::collection::vec(part, 0..6).prop_map(|parts| parts.join(","))
    }

    /// Found by `any_signature_header_is_answered`: `now - t` overflowed.
    #[test]
    fn extreme_timestamps_are_refused_not_overflowed() {
        for t in [i64::MIN, i64::MAX, i64::MIN + 1] {
            let header = format!("t={t},v1=00");
            let refused = verifier().verify(Some(&header), b"{}", 1_700_000_000);
            assert!(refused.is_err(), "{t}: {refused:?}");
        }
    }

    proptest! {
        #![proptest_config(crate::fuzz_config())]

        #[test]
        fn any_signature_header_is_answered(header in header(), body in prop::collection::vec(any::<u8>(), 0..256), now in any::<i64>()) {
            let _ = verifier().verify(Some(&header), &body, now);
        }

        #[test]
        fn any_text_as_a_header_is_answered(header in ".{0,200}", now in any::<i64>()) {
            let _ = verifier().verify(Some(&header), b"{}", now);
        }
    }
}
