//! Svix signatures, as Clerk's webhooks carry them: `svix-id`,
//! `svix-timestamp` (unix seconds) and `svix-signature` (`v1,<base64>`,
//! several separated by spaces), where each signature is
//! base64(HMAC-SHA256(key, "{id}.{timestamp}.{raw body}")) and the key is
//! the base64 after `whsec_` in the endpoint's signing secret. Checked on
//! the raw bytes before any parsing; any listed signature may match any of
//! our secrets (several while one is being rotated).
//!
//! Written here rather than taken from the `svix` crate: that crate is
//! Svix's whole API client (an HTTP stack of its own) around these forty
//! lines of HMAC, which `aws-lc-rs` and `base64` already give us.

use aws_lc_rs::{constant_time, hmac};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};

/// How far a delivery's timestamp may be from now, either way (Svix's own).
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SvixError {
    #[error("no {0} header")]
    Missing(&'static str),
    #[error("the svix-timestamp header is not a unix time")]
    BadTimestamp,
    #[error("the signature timestamp is {age_secs} s from now, outside the tolerance")]
    OutsideTolerance { age_secs: i64 },
    #[error("no v1 signature matches a configured secret")]
    NoMatch,
}

/// A signing secret, `whsec_<base64 key>`, that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a Clerk webhook secret must be whsec_ followed by a base64 key")]
pub struct BadSecret;

/// The headers of a delivery, as they came.
#[derive(Debug, Clone, Copy, Default)]
pub struct SvixHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

pub struct SvixVerifier {
    keys: Vec<hmac::Key>,
}

impl SvixVerifier {
    /// From the endpoint's signing secrets (`whsec_…`).
    pub fn new(secrets: &[SecretString]) -> Result<Self, BadSecret> {
        let keys = secrets
            .iter()
            .map(|secret| key_of(secret.expose_secret()))
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    /// Checks a delivery; returns its `svix-id`.
    pub fn verify<'a>(
        &self,
        headers: SvixHeaders<'a>,
        body: &[u8],
        now: i64,
    ) -> Result<&'a str, SvixError> {
        let id = headers.id.ok_or(SvixError::Missing("svix-id"))?;
        let raw_timestamp = headers
            .timestamp
            .ok_or(SvixError::Missing("svix-timestamp"))?;
        let signatures = headers
            .signature
            .ok_or(SvixError::Missing("svix-signature"))?;
        let timestamp: i64 = raw_timestamp
            .trim()
            .parse()
            .map_err(|_| SvixError::BadTimestamp)?;
        let age_secs = now.saturating_sub(timestamp);
        if age_secs.unsigned_abs() > TOLERANCE_SECS.unsigned_abs() {
            return Err(SvixError::OutsideTolerance { age_secs });
        }
        let candidates: Vec<Vec<u8>> = signatures
            .split(' ')
            .filter_map(|listed| listed.strip_prefix("v1,"))
            .filter_map(|sig| STANDARD.decode(sig).ok())
            .collect();
        let matches = self.keys.iter().any(|key| {
            let expected = sign_with(key, id, timestamp, body);
            candidates.iter().any(|candidate| {
                constant_time::verify_slices_are_equal(expected.as_ref(), candidate).is_ok()
            })
        });
        if matches {
            Ok(id)
        } else {
            Err(SvixError::NoMatch)
        }
    }
}

fn key_of(secret: &str) -> Result<hmac::Key, BadSecret> {
    let encoded = secret.strip_prefix("whsec_").ok_or(BadSecret)?;
    let key = STANDARD.decode(encoded).map_err(|_| BadSecret)?;
    if key.is_empty() {
        return Err(BadSecret);
    }
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &key))
}

fn sign_with(key: &hmac::Key, id: &str, timestamp: i64, body: &[u8]) -> hmac::Tag {
    let mut context = hmac::Context::with_key(key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    context.sign()
}

/// `svix-signature` for a delivery, as Svix would send it (tests).
pub fn svix_signature(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, BadSecret> {
    let tag = sign_with(&key_of(secret)?, id, timestamp, body);
    Ok(format!("v1,{}", STANDARD.encode(tag.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const OTHER: &str = "whsec_c2VjcmV0LW9mLWFub3RoZXItZW5kcG9pbnQ=";
    const NOW: i64 = 1_800_000_000;

    fn verifier(secrets: &[&str]) -> SvixVerifier {
        let secrets: Vec<SecretString> = secrets
            .iter()
            .map(|s| SecretString::from((*s).to_owned()))
            .collect();
        SvixVerifier::new(&secrets).unwrap()
    }

    fn headers<'a>(id: &'a str, timestamp: &'a str, signature: &'a str) -> SvixHeaders<'a> {
        SvixHeaders {
            id: Some(id),
            timestamp: Some(timestamp),
            signature: Some(signature),
        }
    }

    #[test]
    fn svix_published_example_verifies() {
        let body = br#"{"test": 2432232314}"#;
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(
            svix_signature(SECRET, id, 1_614_265_330, body).unwrap(),
            signature
        );
        let at =
            verifier(&[SECRET]).verify(headers(id, "1614265330", signature), body, 1_614_265_400);
        assert_eq!(at, Ok(id));
    }

    #[test]
    fn a_delivery_signed_with_any_configured_secret_is_accepted() {
        let body = br#"{"type":"organization.created"}"#;
        let signed = svix_signature(SECRET, "msg_1", NOW, body).unwrap();
        let ts = NOW.to_string();
        assert_eq!(
            verifier(&[SECRET]).verify(headers("msg_1", &ts, &signed), body, NOW),
            Ok("msg_1")
        );
        // Rotation: the old and the new secret both configured.
        assert!(
            verifier(&[OTHER, SECRET])
                .verify(headers("msg_1", &ts, &signed), body, NOW + 299)
                .is_ok()
        );
        // Svix lists several signatures: any one may match.
        let listed = format!("v1,bm90IGl0 v2,whatever {signed}");
        assert!(
            verifier(&[SECRET])
                .verify(headers("msg_1", &ts, &listed), body, NOW)
                .is_ok()
        );
    }

    #[test]
    fn hostile_deliveries_are_refused_with_the_reason() {
        let body = br#"{"type":"organization.created"}"#;
        let signed = svix_signature(SECRET, "msg_1", NOW, body).unwrap();
        let ts = NOW.to_string();
        let ours = verifier(&[SECRET]);
        assert_eq!(
            verifier(&[OTHER]).verify(headers("msg_1", &ts, &signed), body, NOW),
            Err(SvixError::NoMatch),
            "another endpoint's secret"
        );
        assert_eq!(
            ours.verify(headers("msg_1", &ts, &signed), b"{\"type\":\"x\"}", NOW),
            Err(SvixError::NoMatch),
            "an altered body"
        );
        assert_eq!(
            ours.verify(headers("msg_2", &ts, &signed), body, NOW),
            Err(SvixError::NoMatch),
            "another delivery's id"
        );
        assert_eq!(
            ours.verify(headers("msg_1", &ts, &signed), body, NOW + 301),
            Err(SvixError::OutsideTolerance { age_secs: 301 }),
            "replayed later"
        );
        assert!(matches!(
            ours.verify(headers("msg_1", &ts, &signed), body, NOW - 301),
            Err(SvixError::OutsideTolerance { .. })
        ));
        assert_eq!(
            ours.verify(headers("msg_1", "soon", &signed), body, NOW),
            Err(SvixError::BadTimestamp)
        );
        let unsigned = SvixHeaders {
            signature: None,
            ..headers("msg_1", &ts, &signed)
        };
        assert_eq!(
            ours.verify(unsigned, body, NOW),
            Err(SvixError::Missing("svix-signature"))
        );
        assert_eq!(
            ours.verify(SvixHeaders::default(), body, NOW),
            Err(SvixError::Missing("svix-id"))
        );
        let v0 = signed.replace("v1,", "v0,");
        assert_eq!(
            ours.verify(headers("msg_1", &ts, &v0), body, NOW),
            Err(SvixError::NoMatch)
        );
    }

    #[test]
    fn secrets_must_be_svix_secrets() {
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_",
            "whsec_not base64!",
        ] {
            let secrets = [SecretString::from(bad.to_owned())];
            assert!(SvixVerifier::new(&secrets).is_err(), "{bad}");
        }
    }
}
