//! The configuration: defaults, every bad value named, secrets kept out of errors.

use super::*;

fn minimal() -> Vec<(&'static str, &'static str)> {
    vec![
        ("PUBLIC_URL", "https://app.example.com"),
        ("STRIPE_SECRET_KEY", "sk_test_123"),
        (
            "CLERK_JWKS_URL",
            "https://clerk.example.com/.well-known/jwks.json",
        ),
    ]
}

fn with(extra: &[(&'static str, &'static str)]) -> Result<Settings, ConfigError> {
    let mut pairs = minimal();
    for (k, v) in extra {
        pairs.retain(|(key, _)| key != k);
        pairs.push((k, v));
    }
    Settings::from_env(&Env::from_pairs(pairs))
}

#[test]
fn defaults_apply_when_only_required_variables_are_set() {
    let s = with(&[]).unwrap();
    assert_eq!(s.server.bind_addr.to_string(), "127.0.0.1:8080");
    assert_eq!(s.database.url.expose_secret(), "sqlite://lance-billing.db");
    assert_eq!(s.stripe.api_base.as_str(), "https://api.stripe.com/");
    assert_eq!(s.stripe.api_version, StripeSettings::DEFAULT_API_VERSION);
    assert_eq!(s.stripe.timeout, Duration::from_secs(10));
    assert_eq!(
        s.server.plans_url(),
        "https://app.example.com/organization#/plans"
    );
    assert!(s.auth.dev_key_file.is_none());
    assert!(s.database.ingest_pinned);
    assert!(s.database.credits_expire_after.is_none());
    let expiring = with(&[("CREDITS_EXPIRE_AFTER", "365d")]).unwrap();
    assert_eq!(
        expiring.database.credits_expire_after,
        Some(Duration::from_secs(365 * 86_400))
    );
    assert!(
        !with(&[("INGEST_PIN", "false")])
            .unwrap()
            .database
            .ingest_pinned
    );
    assert!(s.database.reads_pinned);
    assert!(!with(&[("READS_PIN", "no")]).unwrap().database.reads_pinned);
}

#[test]
fn each_bad_value_names_its_variable() {
    let cases: &[(&str, &str)] = &[
        ("PUBLIC_URL", "not a url"),
        ("PUBLIC_URL", "https://app.example.com/path"),
        ("PUBLIC_URL", "ftp://app.example.com"),
        ("STRIPE_SECRET_KEY", "pk_test_123"),
        ("STRIPE_API_BASE", "nope"),
        ("STRIPE_TIMEOUT", "ten seconds"),
        ("STRIPE_MAX_RETRIES", "-1"),
        ("STRIPE_PORTAL_CONFIGURATION", "config_1"),
        ("BIND_ADDR", "localhost"),
        ("DATABASE_URL", "mysql://x"),
        ("CLERK_JWKS_URL", "::"),
        (
            "CLERK_JWT_KEY",
            "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----",
        ),
        ("DEV_AUTH", "maybe"),
        ("INGEST_PIN", "sometimes"),
        ("READS_PIN", "sometimes"),
        ("STRIPE_WEBHOOK_SECRET", "sk_test_oops"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_a, nope"),
        ("STRIPE_WEBHOOK_TOLERANCE", "soon"),
        ("STRIPE_PRICE_IDS", "price_a,prod_b"),
        ("STRIPE_CREDITS_PRICE_ID", "credits"),
        ("CREDITS_PER_UNIT", "many"),
        ("CREDITS_PER_UNIT", "0"),
        ("CREDITS_PER_UNIT", "-5"),
        ("EVENT_PAYLOAD_RETENTION", "a while"),
        ("CREDITS_EXPIRE_AFTER", "a year"),
        ("BILLING_SEATS", "everyone"),
        ("BILLING_SEAT_PRORATION", "sometimes"),
        ("BILLING_SEAT_LIMIT", "hard"),
        ("BILLING_SEAT_PRICE_IDS", "prod_seat"),
        ("BILLING_SEAT_DEBOUNCE", "soon"),
        (
            "CLERK_WEBHOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw,not-a-secret",
        ),
        ("SESSION_KEY", "short"),
        ("CLERK_SIGN_IN_URL", "not a url"),
    ];
    for (var, value) in cases {
        let err = with(&[(var, value)]).unwrap_err();
        assert_eq!(err.var, *var, "{var}={value}: {err}");
        assert!(err.to_string().starts_with(var));
    }
}

#[test]
fn missing_required_variables_are_named() {
    for var in ["PUBLIC_URL", "STRIPE_SECRET_KEY", "CLERK_JWKS_URL"] {
        let pairs: Vec<_> = minimal().into_iter().filter(|(k, _)| *k != var).collect();
        let err = Settings::from_env(&Env::from_pairs(pairs)).unwrap_err();
        assert_eq!(err.var, var);
    }
}

#[test]
fn secrets_never_appear_in_errors_or_debug_output() {
    let err = with(&[("STRIPE_SECRET_KEY", "pk_live_supersecret")]).unwrap_err();
    assert!(!err.to_string().contains("supersecret"));
    let s = with(&[("STRIPE_SECRET_KEY", "sk_test_supersecret")]).unwrap();
    assert!(!format!("{s:?}").contains("supersecret"));
}

#[test]
fn dev_auth_is_refused_with_live_keys() {
    let err = with(&[("DEV_AUTH", "true"), ("STRIPE_SECRET_KEY", "sk_live_x")]).unwrap_err();
    assert_eq!(err.var, "DEV_AUTH");
    assert!(
        with(&[("DEV_AUTH", "true")])
            .unwrap()
            .auth
            .dev_key_file
            .is_some()
    );
}

#[test]
fn durations_accept_common_units() {
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("3s"), Some(Duration::from_secs(3)));
    assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
    assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
    assert_eq!(parse_duration("72h"), Some(Duration::from_secs(259_200)));
    assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
    assert_eq!(parse_duration("ms"), None);
    assert_eq!(parse_duration("1w"), None);
}

#[test]
fn several_webhook_secrets_can_be_configured_for_rotation() {
    assert!(with(&[]).unwrap().webhooks.is_none());
    let s = with(&[("STRIPE_WEBHOOK_SECRET", "whsec_new, whsec_old")]).unwrap();
    let webhooks = s.webhooks.unwrap();
    assert_eq!(webhooks.secrets.len(), 2);
    assert_eq!(webhooks.tolerance, Duration::from_secs(300));
}

#[test]
fn authorized_parties_are_split_and_trimmed() {
    let s = with(&[(
        "CLERK_AUTHORIZED_PARTIES",
        " https://a.com, https://b.com ,",
    )])
    .unwrap();
    assert_eq!(
        s.auth.authorized_parties,
        ["https://a.com", "https://b.com"]
    );
}

#[test]
fn a_database_url_the_driver_cannot_read_is_refused_with_the_socket_form() {
    let err = with(&[(
        "DATABASE_URL",
        "postgres://app:hunter2@/billing?host=/var/run/postgresql",
    )])
    .unwrap_err();
    assert_eq!(err.var, "DATABASE_URL");
    assert!(
        err.to_string()
            .contains("postgres://user@localhost/db?host=/var/run/postgresql"),
        "{err}"
    );
    assert!(!err.to_string().contains("hunter2"), "{err}");
    for usable in [
        "postgres://app@localhost/billing?host=/var/run/postgresql",
        "postgresql://app:pw@db.internal:5432/billing?sslmode=require",
        "sqlite://lance-billing.db",
    ] {
        assert!(with(&[("DATABASE_URL", usable)]).is_ok(), "{usable}");
    }
}
