//! The credits wallet over HTTP: purchases add, debits take (never below
//! zero, once per idempotency key, also when they race), members read their
//! history, and the balance is always the sum of the ledger.

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::stripe_fixtures::*;

pub(crate) const TOKEN: &str = "svc_0123456789abcdef0123456789abcdef";

pub(crate) async fn wallet_app() -> TestApp {
    TestApp::builder()
        .env("INTERNAL_API_TOKENS", TOKEN)
        .spawn()
        .await
}

/// `org` buys `credits` through Checkout (and is linked to `customer`).
pub(crate) async fn bought(app: &TestApp, org: &str, customer: &str, session: &str, credits: i64) {
    let paid = checkout(session, org, customer, "payment", "paid", Some(credits));
    let delivered = event(
        &format!("evt_{session}"),
        "checkout.session.completed",
        100,
        paid,
    );
    assert_eq!(app.post_event(&delivered).await.status().as_u16(), 200);
}

pub(crate) async fn debit(
    app: &TestApp,
    org: &str,
    key: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut request = app
        .client
        .post(format!(
            "{}/api/v1/internal/organizations/{org}/credits/debits",
            app.address
        ))
        .bearer_auth(TOKEN)
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn balance(app: &TestApp, org: &str, token: Option<&str>) -> (u16, Value) {
    let path = format!("/api/v1/internal/organizations/{org}/credits");
    app.get_internal(&path, token).await
}

pub(crate) async fn assert_balances_are_their_ledgers(app: &TestApp) {
    let mismatches = app.store.credit_mismatches().await.unwrap();
    assert!(mismatches.is_empty(), "{mismatches:?}");
}

#[tokio::test]
async fn a_debit_takes_once_per_key_and_never_below_zero() {
    let app = wallet_app().await;
    bought(&app, "org_acme", "cus_A", "cs_500", 500).await;
    assert_eq!(
        balance(&app, "org_acme", Some(TOKEN)).await,
        (
            200,
            json!({"organization": "org_acme", "balance": 500, "expiring": []})
        )
    );

    let export = json!({"amount": 200, "reason": "export", "metadata": {"job": "j1"}});
    let (status, first) = debit(&app, "org_acme", Some("k1"), &export).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["balance"], 300);
    assert_eq!(first["debit"]["amount"], 200);
    assert_eq!(first["debit"]["reason"], "export");
    assert_eq!(first["debit"]["metadata"], json!({"job": "j1"}));
    assert!(first["debit"]["id"].as_str().unwrap().starts_with("debit:"));

    // The same key again: the same answer, nothing more taken.
    let again = debit(&app, "org_acme", Some("k1"), &export).await;
    assert_eq!(again, (200, first.clone()));
    assert_eq!(
        balance(&app, "org_acme", Some(TOKEN)).await.1["balance"],
        300
    );
    // The same key with another request is refused.
    let other = json!({"amount": 201, "reason": "export", "metadata": {"job": "j1"}});
    let (status, body) = debit(&app, "org_acme", Some("k1"), &other).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "CONFLICT");

    // More than the balance: refused with the balance, nothing taken, and
    // the refusal is the key's answer.
    let big = json!({"amount": 301, "reason": "export"});
    let (status, body) = debit(&app, "org_acme", Some("k2"), &big).await;
    assert_eq!(status, 402);
    assert_eq!(body["error"]["code"], "INSUFFICIENT_CREDITS");
    assert_eq!(body["balance"], 300);
    assert_eq!(debit(&app, "org_acme", Some("k2"), &big).await.0, 402);
    let exact = json!({"amount": 300, "reason": "export"});
    assert_eq!(
        debit(&app, "org_acme", Some("k3"), &exact).await.1["balance"],
        0
    );
    // A key is its organization's own: another's "k1" is a debit of its own.
    bought(&app, "org_globex", "cus_G", "cs_250", 250).await;
    let (status, body) = debit(&app, "org_globex", Some("k1"), &export).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balance"], 50);
    assert_ne!(body["debit"]["id"], first["debit"]["id"]);

    assert_eq!(
        app.count("SELECT COUNT(*) FROM credit_ledger WHERE source_type = 'debit'")
            .await,
        3
    );
    assert_balances_are_their_ledgers(&app).await;
}

#[tokio::test]
async fn bad_debit_requests_are_refused_with_a_reason() {
    let app = wallet_app().await;
    bought(&app, "org_acme", "cus_A", "cs_10", 10).await;
    let ok = json!({"amount": 1, "reason": "x"});
    let cases = [
        ("no key", None, ok.clone(), 400),
        ("zero", Some("a"), json!({"amount": 0, "reason": "x"}), 400),
        (
            "negative",
            Some("b"),
            json!({"amount": -5, "reason": "x"}),
            400,
        ),
        (
            "huge",
            Some("c"),
            json!({"amount": 1_000_000_000_001_i64, "reason": "x"}),
            400,
        ),
        (
            "fraction",
            Some("d"),
            json!({"amount": 1.5, "reason": "x"}),
            400,
        ),
        ("no reason", Some("e"), json!({"amount": 1}), 400),
        (
            "unknown field",
            Some("f"),
            json!({"amount": 1, "reason": "x", "to": "y"}),
            400,
        ),
    ];
    for (name, key, body, status) in cases {
        let (got, answer) = debit(&app, "org_acme", key, &body).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert_eq!(answer["error"]["code"], "VALIDATION_ERROR", "{name}");
    }
    assert_eq!(debit(&app, "org_nobody", Some("g"), &ok).await.0, 404);
    assert_eq!(debit(&app, "not-an-org", Some("h"), &ok).await.0, 400);
    assert_eq!(balance(&app, "org_acme", None).await.0, 401);
    assert_eq!(balance(&app, "org_acme", Some("wrong")).await.0, 401);
    assert_eq!(
        balance(&app, "org_acme", Some(TOKEN)).await.1["balance"],
        10
    );
}

#[tokio::test]
async fn two_hundred_racing_debits_against_fifty_credits_take_exactly_fifty() {
    let app = wallet_app().await;
    bought(&app, "org_race", "cus_R", "cs_50", 50).await;
    let one = json!({"amount": 1, "reason": "race"});
    let racing = (0..200).map(|i| {
        let key = format!("race-{i}");
        let (app, one) = (&app, &one);
        async move { debit(app, "org_race", Some(&key), one).await.0 }
    });
    let statuses = join_all(racing).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 50);
    assert_eq!(statuses.iter().filter(|s| **s == 402).count(), 150);
    assert_eq!(balance(&app, "org_race", Some(TOKEN)).await.1["balance"], 0);
    assert_balances_are_their_ledgers(&app).await;
}

#[tokio::test]
async fn one_key_sent_many_times_at_once_debits_once() {
    let app = wallet_app().await;
    bought(&app, "org_twice", "cus_T", "cs_100", 100).await;
    let body = json!({"amount": 7, "reason": "retry storm"});
    let answers = join_all((0..20).map(|_| debit(&app, "org_twice", Some("same"), &body))).await;
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, 200);
    assert_eq!(
        balance(&app, "org_twice", Some(TOKEN)).await.1["balance"],
        93
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM credit_ledger WHERE source_type = 'debit'")
            .await,
        1
    );
}

#[tokio::test]
async fn members_read_their_balance_and_history_a_page_at_a_time() {
    let app = wallet_app().await;
    bought(&app, "org_acme", "cus_A", "cs_first", 100).await;
    for (key, amount) in [("a", 10), ("b", 20), ("c", 30)] {
        let body = json!({"amount": amount, "reason": format!("job {key}")});
        assert_eq!(debit(&app, "org_acme", Some(key), &body).await.0, 200);
    }
    let (status, page) = app
        .get_json("/api/v1/operations/payment/credits?limit=2", "org_acme")
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["balance"], 40);
    assert_eq!(page["has_more"], true);
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let last = page["data"][1]["id"].as_str().unwrap().to_owned();
    let (_, rest) = app
        .get_json(
            &format!("/api/v1/operations/payment/credits?limit=10&starting_after={last}"),
            "org_acme",
        )
        .await;
    assert_eq!(rest["has_more"], false);
    let all: Vec<&Value> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["data"].as_array().unwrap())
        .collect();
    assert_eq!(all.len(), 4);
    let total: i64 = all.iter().map(|e| e["amount"].as_i64().unwrap()).sum();
    assert_eq!(total, 40, "the history adds up to the balance");
    assert!(
        all.iter()
            .any(|e| e["kind"] == "checkout_session" && e["amount"] == 100)
    );
    assert!(
        all.iter()
            .any(|e| e["kind"] == "debit" && e["reason"] == "job b")
    );

    let (status, _) = app
        .get_json(
            "/api/v1/operations/payment/credits?starting_after=debit:nope",
            "org_acme",
        )
        .await;
    assert_eq!(status, 400);
    let (_, other) = app
        .get_json("/api/v1/operations/payment/credits", "org_other")
        .await;
    assert_eq!(other["balance"], 0);
    assert_eq!(other["data"], json!([]));
}

#[tokio::test]
async fn credits_granted_before_the_customer_is_linked_count_once_it_is() {
    let app = wallet_app().await;
    let mut price = object("price");
    price["id"] = "price_credits_100".into();
    price["product"] = "prod_credits".into();
    price["metadata"] = json!({"credits": "100"});
    let priced = event("evt_price", "price.created", 50, price);
    assert_eq!(app.post_event(&priced).await.status().as_u16(), 200);
    let mut paid = invoice("in_early", "cus_U", "sub_1", "paid", 100);
    paid["lines"]["data"][0]["pricing"] = json!({"type": "price_details", "price_details": {"price": "price_credits_100", "product": "prod_credits"}});
    let early = event("evt_early", "invoice.paid", 100, paid);
    assert_eq!(app.post_event(&early).await.status().as_u16(), 200);

    // The customer's checkout links it; the grant is the organization's now.
    let linking = checkout("cs_link", "org_late", "cus_U", "subscription", "paid", None);
    let linked = event("evt_link", "checkout.session.completed", 101, linking);
    assert_eq!(app.post_event(&linked).await.status().as_u16(), 200);
    assert_eq!(
        balance(&app, "org_late", Some(TOKEN)).await.1["balance"],
        100
    );
    assert_balances_are_their_ledgers(&app).await;
}

/// On PostgreSQL, two instances: the same key sent to both at once debits
/// once, and racing debits on both never overdraw.
#[tokio::test]
async fn two_instances_debit_once_per_key_and_never_overdraw() {
    let a = wallet_app().await;
    let postgres = std::env::var("TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"));
    if !postgres {
        return; // SQLite serves one instance.
    }
    let b = TestApp::builder()
        .env("INTERNAL_API_TOKENS", TOKEN)
        .env("DATABASE_URL", &a.database_url)
        .spawn()
        .await;
    bought(&a, "org_two", "cus_2", "cs_two", 30).await;
    let same = json!({"amount": 5, "reason": "both"});
    let answers = join_all((0..10).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        debit(app, "org_two", Some("shared"), &same)
    }))
    .await;
    assert!(answers.iter().all(|x| *x == answers[0]), "{answers:?}");
    let one = json!({"amount": 1, "reason": "race"});
    let statuses = join_all((0..60).map(|i| {
        let key = format!("two-{i}");
        let (app, one) = (if i % 2 == 0 { &a } else { &b }, &one);
        async move { debit(app, "org_two", Some(&key), one).await.0 }
    }))
    .await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 25);
    assert_eq!(balance(&b, "org_two", Some(TOKEN)).await.1["balance"], 0);
    assert_balances_are_their_ledgers(&a).await;
}

/// An organization that never had credits has no balance to decide its
/// keys under: one key sent to two instances at once is still answered
/// once, the same everywhere, and stored once.
#[tokio::test]
async fn a_key_raced_on_two_instances_without_credits_is_answered_once() {
    let a = wallet_app().await;
    let postgres = std::env::var("TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"));
    // SQLite serves one instance: there the race is within it.
    let other = match postgres {
        true => Some(
            TestApp::builder()
                .env("INTERNAL_API_TOKENS", TOKEN)
                .env("DATABASE_URL", &a.database_url)
                .spawn()
                .await,
        ),
        false => None,
    };
    let b = other.as_ref().unwrap_or(&a);
    let linking = checkout(
        "cs_broke",
        "org_broke",
        "cus_K",
        "subscription",
        "paid",
        None,
    );
    let delivered = event("evt_broke", "checkout.session.completed", 100, linking);
    assert_eq!(a.post_event(&delivered).await.status().as_u16(), 200);
    for round in 0..5 {
        let key = format!("broke-{round}");
        let body = json!({"amount": 3, "reason": "nothing to take"});
        let answers = join_all((0..8).map(|i| {
            let app = if i % 2 == 0 { &a } else { b };
            debit(app, "org_broke", Some(&key), &body)
        }))
        .await;
        assert!(answers.iter().all(|x| *x == answers[0]), "{answers:?}");
        assert_eq!(answers[0].0, 402);
        assert_eq!(answers[0].1["error"]["code"], "INSUFFICIENT_CREDITS");
    }
    assert_eq!(
        a.count("SELECT COUNT(*) FROM credit_debit_requests WHERE org_id = 'org_broke'")
            .await,
        5
    );
    assert_eq!(
        a.count("SELECT COUNT(*) FROM credit_ledger WHERE org_id = 'org_broke'")
            .await,
        0
    );
}

#[tokio::test]
async fn the_plans_tab_shows_the_balance_its_last_entries_and_a_low_balance() {
    let app = TestApp::builder()
        .env("INTERNAL_API_TOKENS", TOKEN)
        .env("CREDITS_LOW_BALANCE", "50")
        .spawn()
        .await;
    bought(&app, "org_acme", "cus_A", "cs_page", 100).await;
    let (_, _, page) = app.page("/organization", &claims_v2("org_acme")).await;
    assert!(page.contains("<strong>100</strong> credits"), "{page}");
    assert!(page.contains("Purchase") && page.contains("+100"), "{page}");
    assert!(!page.contains("running low"), "{page}");

    let body = json!({"amount": 60, "reason": "Report export"});
    assert_eq!(debit(&app, "org_acme", Some("p1"), &body).await.0, 200);
    let (_, _, page) = app.page("/organization", &claims_v2("org_acme")).await;
    assert!(page.contains("<strong>40</strong> credits"), "{page}");
    assert!(
        page.contains("Report export") && page.contains("-60"),
        "{page}"
    );
    assert!(page.contains("Your credits are running low."), "{page}");
}

/// A charge of `amount` that paid `payment_intent`, `refunded` so far.
pub(crate) fn refunded_charge(id: &str, payment_intent: &str, amount: i64, refunded: i64) -> Value {
    let mut charge = object("charge");
    charge["id"] = id.into();
    charge["payment_intent"] = payment_intent.into();
    charge["amount"] = amount.into();
    charge["amount_refunded"] = refunded.into();
    charge["refunded"] = (refunded == amount).into();
    charge
}

pub(crate) async fn delivered(app: &TestApp, id: &str, kind: &str, created: i64, object: Value) {
    let response = app.post_event(&event(id, kind, created, object)).await;
    assert_eq!(response.status().as_u16(), 200, "{kind}");
}

/// 400 credits bought through a session paid by `pi_buy`.
async fn bought_with_payment(app: &TestApp) {
    let mut paid = checkout("cs_buy", "org_acme", "cus_A", "payment", "paid", Some(400));
    paid["payment_intent"] = "pi_buy".into();
    delivered(app, "evt_buy", "checkout.session.completed", 100, paid).await;
}

pub(crate) async fn balance_of(app: &TestApp, org: &str) -> i64 {
    balance(app, org, Some(TOKEN)).await.1["balance"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn refunds_take_back_their_share_once_in_any_order() {
    let app = wallet_app().await;
    bought_with_payment(&app).await;
    // A quarter refunded, then half in all; the quarter's event comes again late.
    let quarter = refunded_charge("ch_buy", "pi_buy", 2000, 500);
    let half = refunded_charge("ch_buy", "pi_buy", 2000, 1000);
    delivered(&app, "evt_r1", "charge.refunded", 200, quarter.clone()).await;
    assert_eq!(balance_of(&app, "org_acme").await, 300);
    delivered(&app, "evt_r2", "charge.refunded", 300, half).await;
    assert_eq!(balance_of(&app, "org_acme").await, 200);
    delivered(&app, "evt_r1_late", "charge.refunded", 200, quarter).await;
    assert_eq!(
        balance_of(&app, "org_acme").await,
        200,
        "nothing given back"
    );
    // A refund of another payment takes nothing.
    let other = refunded_charge("ch_other", "pi_other", 900, 900);
    delivered(&app, "evt_r3", "charge.refunded", 301, other).await;
    assert_eq!(balance_of(&app, "org_acme").await, 200);
    assert_balances_are_their_ledgers(&app).await;
}

#[tokio::test]
async fn a_lost_dispute_after_spending_leaves_a_negative_balance_that_refuses_debits() {
    let app = TestApp::builder()
        .env("INTERNAL_API_TOKENS", TOKEN)
        .env("ADMIN_USER_IDS", "user_2abc")
        .spawn()
        .await;
    bought_with_payment(&app).await;
    let spend = json!({"amount": 300, "reason": "used"});
    assert_eq!(debit(&app, "org_acme", Some("spent"), &spend).await.0, 200);
    let mut dispute = object("dispute");
    dispute["id"] = "dp_buy".into();
    dispute["payment_intent"] = "pi_buy".into();
    dispute["status"] = "under_review".into();
    delivered(
        &app,
        "evt_d1",
        "charge.dispute.closed",
        200,
        dispute.clone(),
    )
    .await;
    assert_eq!(
        balance_of(&app, "org_acme").await,
        100,
        "not lost: nothing taken"
    );
    dispute["status"] = "lost".into();
    delivered(&app, "evt_d2", "charge.dispute.closed", 201, dispute).await;
    assert_eq!(balance_of(&app, "org_acme").await, -300);
    let one = json!({"amount": 1, "reason": "x"});
    let (status, body) = debit(&app, "org_acme", Some("after"), &one).await;
    assert_eq!((status, body["balance"].as_i64()), (402, Some(-300)));
    assert_balances_are_their_ledgers(&app).await;
    let (_, _, page) = app
        .page("/admin/orgs/org_acme", &claims_v2("org_acme"))
        .await;
    assert!(page.contains("The credit balance is below zero"), "{page}");
}

#[tokio::test]
async fn a_refund_that_arrives_before_its_purchase_is_settled_when_it_comes() {
    let app = wallet_app().await;
    let all = refunded_charge("ch_buy", "pi_buy", 2000, 2000);
    delivered(&app, "evt_r_early", "charge.refunded", 300, all).await;
    bought_with_payment(&app).await;
    assert_eq!(balance_of(&app, "org_acme").await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM credit_ledger WHERE source_type = 'clawback'")
            .await,
        1
    );
    assert_balances_are_their_ledgers(&app).await;
}

#[tokio::test]
async fn a_credit_note_takes_back_its_share_of_an_invoice_that_granted_credits() {
    let app = wallet_app().await;
    app.org_with_customer("org_acme", "cus_A").await;
    let mut price = object("price");
    price["id"] = "price_credits_100".into();
    price["product"] = "prod_credits".into();
    price["metadata"] = json!({"credits": "100"});
    delivered(&app, "evt_price", "price.created", 50, price).await;
    let mut paid = invoice("in_credits", "cus_A", "sub_1", "paid", 100);
    paid["total"] = 4000.into();
    paid["lines"]["data"][0]["quantity"] = 4.into();
    paid["lines"]["data"][0]["pricing"] = json!({"type": "price_details", "price_details": {"price": "price_credits_100", "product": "prod_credits"}});
    delivered(&app, "evt_paid", "invoice.paid", 100, paid).await;
    assert_eq!(balance_of(&app, "org_acme").await, 400);
    let mut note = object("credit_note");
    note["id"] = "cn_1".into();
    note["invoice"] = "in_credits".into();
    note["total"] = 1000.into();
    delivered(&app, "evt_cn", "credit_note.created", 200, note.clone()).await;
    delivered(&app, "evt_cn_again", "credit_note.created", 200, note).await;
    assert_eq!(balance_of(&app, "org_acme").await, 300);
    let (_, page) = app
        .get_json("/api/v1/operations/payment/credits", "org_acme")
        .await;
    let clawbacks: Vec<&Value> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "clawback")
        .collect();
    assert_eq!(clawbacks.len(), 1, "{page}");
    assert_eq!(clawbacks[0]["amount"], -100);
    assert_balances_are_their_ledgers(&app).await;
}

#[tokio::test]
async fn one_key_sent_at_once_with_two_bodies_debits_once_and_refuses_the_other() {
    let app = wallet_app().await;
    bought(&app, "org_mixed", "cus_M", "cs_mixed", 100).await;
    let bodies = [
        json!({"amount": 1, "reason": "a"}),
        json!({"amount": 2, "reason": "b"}),
    ];
    let answers =
        join_all((0..10).map(|i| debit(&app, "org_mixed", Some("mixed"), &bodies[i % 2]))).await;
    let taken: Vec<&(u16, Value)> = answers.iter().filter(|a| a.0 == 200).collect();
    assert!(!taken.is_empty());
    assert!(taken.iter().all(|a| a.1 == taken[0].1), "{answers:?}");
    assert_eq!(
        taken.len() + answers.iter().filter(|a| a.0 == 409).count(),
        10
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM credit_ledger WHERE source_type = 'debit'")
            .await,
        1
    );
    assert_balances_are_their_ledgers(&app).await;
}

/// Any mix of purchases, debits (new keys and repeats), refunds and lost
/// disputes, in any order: every balance stays the sum of its ledger, and
/// debits never take one below zero.
#[tokio::test]
async fn any_mix_of_movements_keeps_each_balance_its_ledger() {
    mix_of_movements(&wallet_app().await, |_| async {}).await;
}

/// Purchases, debits, refunds and lost disputes at random, with `also` run
/// after each step; each balance stays its ledger.
pub(crate) async fn mix_of_movements<F, Fut>(app: &TestApp, also: F)
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    app.org_with_customer("org_mix", "cus_mix").await;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let mut purchases = 0;
    for step in 0..60 {
        match next(5) {
            0 => {
                purchases += 1;
                let session = format!("cs_mix{purchases}");
                let mut paid =
                    checkout(&session, "org_mix", "cus_mix", "payment", "paid", Some(100));
                paid["payment_intent"] = format!("pi_mix{purchases}").into();
                delivered(
                    app,
                    &format!("evt_buy{step}"),
                    "checkout.session.completed",
                    100,
                    paid,
                )
                .await;
            }
            1 | 2 => {
                let key = format!("mix{}", next(20));
                let body = json!({"amount": 1 + next(60) as i64, "reason": "mix"});
                let (status, _) = debit(app, "org_mix", Some(&key), &body).await;
                assert!([200, 402, 409].contains(&status), "{status}");
            }
            3 if purchases > 0 => {
                let which = 1 + next(purchases);
                let refunded = 1 + next(2000) as i64;
                let charge = refunded_charge(
                    &format!("ch_mix{which}"),
                    &format!("pi_mix{which}"),
                    2000,
                    refunded,
                );
                delivered(
                    app,
                    &format!("evt_ref{step}"),
                    "charge.refunded",
                    200,
                    charge,
                )
                .await;
            }
            4 if purchases > 0 => {
                let which = 1 + next(purchases);
                let mut dispute = object("dispute");
                dispute["id"] = format!("dp_mix{which}").into();
                dispute["payment_intent"] = format!("pi_mix{which}").into();
                dispute["status"] = "lost".into();
                delivered(
                    app,
                    &format!("evt_dp{step}"),
                    "charge.dispute.closed",
                    300,
                    dispute,
                )
                .await;
            }
            _ => {}
        }
        also(next(4)).await;
        assert_balances_are_their_ledgers(app).await;
    }
    let debited = app
        .count("SELECT COUNT(*) FROM credit_ledger WHERE source_type = 'debit'")
        .await;
    assert!(debited > 0, "the mix debited something");
}
