//! Debit requests parsed and fingerprinted.

use super::*;

fn parse(key: Option<&str>, body: &str) -> Result<Debit, String> {
    Debit::parse(OrgId::parse("org_1").unwrap(), key, body.as_bytes())
}

#[test]
fn a_debit_needs_a_key_a_positive_bounded_amount_and_a_reason() {
    let ok = r#"{"amount": 5, "reason": "export"}"#;
    assert!(parse(Some("k1"), ok).is_ok());
    assert!(parse(None, ok).unwrap_err().contains("Idempotency-Key"));
    assert!(parse(Some(""), ok).is_err());
    assert!(parse(Some("k é"), ok).is_err());
    for amount in ["0", "-1", "1000000000001", "1.5", "\"5\""] {
        let body = format!(r#"{{"amount": {amount}, "reason": "x"}}"#);
        assert!(parse(Some("k"), &body).is_err(), "{amount}");
    }
    assert!(parse(Some("k"), r#"{"amount": 5, "reason": "  "}"#).is_err());
    assert!(parse(Some("k"), r#"{"amount": 5, "reason": "x", "extra": 1}"#).is_err());
    assert!(
        parse(
            Some("k"),
            r#"{"amount": 5, "reason": "x", "metadata": [1]}"#
        )
        .is_err()
    );
    let big = format!(
        r#"{{"amount": 5, "reason": "x", "metadata": {{"a": "{}"}}}}"#,
        "x".repeat(5000)
    );
    assert!(parse(Some("k"), &big).is_err());
}

#[test]
fn the_fingerprint_is_the_content_whatever_the_order_of_keys() {
    let a = parse(
        Some("k"),
        r#"{"amount": 5, "reason": "x", "metadata": {"a": 1, "b": 2}}"#,
    )
    .unwrap();
    let b = parse(
        Some("k"),
        r#"{"metadata": {"b": 2, "a": 1}, "reason": "x", "amount": 5}"#,
    )
    .unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
    let c = parse(Some("k"), r#"{"amount": 6, "reason": "x"}"#).unwrap();
    assert_ne!(a.fingerprint(), c.fingerprint());
}
