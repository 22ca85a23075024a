//! Credits that expire (`CREDITS_EXPIRE_AFTER`): each grant is a lot, spent
//! soonest-expiring first; an expired lot leaves the balance at once, and
//! the sweep writes what it held off the ledger. Time passes here by moving
//! a lot's expiry into the past.

use lance_billing::billing::credits::expiry::expire_due;
use lance_billing::domain::unix_now;
use serde_json::{Value, json};

use crate::credits::*;
use crate::helpers::*;
use crate::stripe_fixtures::*;

const DAY: i64 = 86_400;

async fn expiring_app() -> TestApp {
    TestApp::builder()
        .env("INTERNAL_API_TOKENS", TOKEN)
        .env("CREDITS_EXPIRE_AFTER", "30d")
        .spawn()
        .await
}

/// `(amount, expires_at)` of each lot the balance route lists.
async fn expiring(app: &TestApp, org: &str) -> Vec<(i64, i64)> {
    let (status, body) = balance(app, org, Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    body["expiring"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|lot| {
            (
                lot["amount"].as_i64().unwrap_or(-1),
                lot["expires_at"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

/// No organization's lots hold more than its balance (or anything while
/// it is below zero).
async fn assert_lots_within_balances(app: &TestApp) {
    let over = app
        .count(
            "SELECT COUNT(*) FROM credit_balances b WHERE (SELECT COALESCE(SUM(remaining), 0) \
             FROM credit_lots l WHERE l.org_id = b.org_id) \
             > CASE WHEN b.balance > 0 THEN b.balance ELSE 0 END",
        )
        .await;
    assert_eq!(over, 0, "lots hold more than their balance");
}

#[tokio::test]
async fn credits_are_spent_soonest_expiring_first_and_leave_the_balance_when_they_expire() {
    let app = expiring_app().await;
    let before = unix_now();
    bought(&app, "org_acme", "cus_A", "cs_a", 100).await;
    // The first purchase expires a day before the second.
    app.execute("UPDATE credit_lots SET expires_at = expires_at - 86400 WHERE source_id = 'cs_a'")
        .await;
    bought(&app, "org_acme", "cus_A", "cs_b", 50).await;
    let lots = expiring(&app, "org_acme").await;
    assert_eq!(lots.iter().map(|l| l.0).collect::<Vec<_>>(), vec![100, 50]);
    let lifetime = lots[1].1 - before;
    assert!((30 * DAY..=30 * DAY + 5).contains(&lifetime), "{lifetime}");

    let (_, _, page) = app.page("/organization", &claims_v2("org_acme")).await;
    assert!(page.contains("100 credits expire on"), "{page}");

    let spend = json!({"amount": 30, "reason": "export"});
    let (status, body) = debit(&app, "org_acme", Some("k1"), &spend).await;
    assert_eq!((status, body["balance"].as_i64()), (200, Some(120)));
    let lots = expiring(&app, "org_acme").await;
    assert_eq!(lots.iter().map(|l| l.0).collect::<Vec<_>>(), vec![70, 50]);

    // The first purchase's day comes: its 70 are gone before any sweep.
    app.execute("UPDATE credit_lots SET expires_at = 1 WHERE source_id = 'cs_a'")
        .await;
    assert_eq!(balance_of(&app, "org_acme").await, 50);
    assert_eq!(expiring(&app, "org_acme").await.len(), 1);
    let too_much = json!({"amount": 60, "reason": "export"});
    let (status, body) = debit(&app, "org_acme", Some("k2"), &too_much).await;
    assert_eq!((status, body["balance"].as_i64()), (402, Some(50)));
    let (_, history) = app
        .get_json("/api/v1/operations/payment/credits", "org_acme")
        .await;
    assert_eq!(history["balance"], 50);

    // The sweep writes them off the ledger, once.
    assert_eq!(expire_due(&app.store, unix_now()).await.unwrap(), 1);
    assert_eq!(expire_due(&app.store, unix_now()).await.unwrap(), 0);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM credit_ledger WHERE source_type = 'expiry' \
             AND source_id = 'checkout_session:cs_a' AND amount = -70"
        )
        .await,
        1
    );
    assert_balances_are_their_ledgers(&app).await;
    assert_eq!(balance_of(&app, "org_acme").await, 50);
    let (_, history) = app
        .get_json("/api/v1/operations/payment/credits", "org_acme")
        .await;
    assert_eq!(history["data"][0]["kind"], "expiry");
    assert_eq!(history["data"][0]["amount"], -70);

    let rest = json!({"amount": 50, "reason": "export"});
    let (status, body) = debit(&app, "org_acme", Some("k3"), &rest).await;
    assert_eq!((status, body["balance"].as_i64()), (200, Some(0)));
    assert_lots_within_balances(&app).await;
}

#[tokio::test]
async fn a_grant_pays_back_a_balance_below_zero_before_anything_of_it_can_expire() {
    let app = expiring_app().await;
    let mut paid = checkout("cs_buy", "org_acme", "cus_A", "payment", "paid", Some(400));
    paid["payment_intent"] = "pi_buy".into();
    delivered(&app, "evt_buy", "checkout.session.completed", 100, paid).await;
    let spend = json!({"amount": 300, "reason": "used"});
    assert_eq!(debit(&app, "org_acme", Some("spent"), &spend).await.0, 200);
    let refund = refunded_charge("ch_buy", "pi_buy", 2000, 2000);
    delivered(&app, "evt_refund", "charge.refunded", 200, refund).await;
    assert_eq!(balance_of(&app, "org_acme").await, -300);
    assert!(expiring(&app, "org_acme").await.is_empty());

    bought(&app, "org_acme", "cus_A", "cs_more", 500).await;
    assert_eq!(balance_of(&app, "org_acme").await, 200);
    let lots = expiring(&app, "org_acme").await;
    assert_eq!(lots.iter().map(|l| l.0).collect::<Vec<_>>(), vec![200]);
    app.execute("UPDATE credit_lots SET expires_at = 1").await;
    assert_eq!(expire_due(&app.store, unix_now()).await.unwrap(), 1);
    assert_eq!(balance_of(&app, "org_acme").await, 0);
    assert_balances_are_their_ledgers(&app).await;
    assert_lots_within_balances(&app).await;
}

#[tokio::test]
async fn operators_grant_lots_and_take_from_the_soonest() {
    let app = TestApp::builder()
        .env("INTERNAL_API_TOKENS", TOKEN)
        .env("CREDITS_EXPIRE_AFTER", "7d")
        .env("ADMIN_USER_IDS", "user_2abc")
        .spawn()
        .await;
    bought(&app, "org_acme", "cus_A", "cs_a", 100).await;
    let session = app
        .form_session_at("/admin/orgs/org_acme", &claims_v2("org_acme"))
        .await;
    for (amount, reason) in [("40", "goodwill"), ("-120", "correction")] {
        let fields = [("amount", amount), ("reason", reason)];
        let response = app
            .submit_form("/admin/orgs/org_acme/credits", &session, &fields)
            .await;
        assert_eq!(response.status().as_u16(), 303, "{amount}");
    }
    // 140 granted in two lots; the correction took the purchase's 100 first.
    let lots = expiring(&app, "org_acme").await;
    assert_eq!(lots.iter().map(|l| l.0).collect::<Vec<_>>(), vec![20]);
    assert_eq!(balance_of(&app, "org_acme").await, 20);
    assert_balances_are_their_ledgers(&app).await;
    assert_lots_within_balances(&app).await;
}

#[tokio::test]
async fn credits_do_not_expire_unless_configured() {
    let app = wallet_app().await;
    bought(&app, "org_acme", "cus_A", "cs_a", 100).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM credit_lots").await, 0);
    let body: Value = balance(&app, "org_acme", Some(TOKEN)).await.1;
    assert_eq!(body["expiring"], json!([]));
}

/// The random mix of the wallet's tests, with lots expiring and swept
/// between its steps.
#[tokio::test]
async fn any_mix_with_expiring_lots_keeps_each_balance_its_ledger() {
    let app = expiring_app().await;
    mix_of_movements(&app, |dice| {
        let app = &app;
        async move {
            if dice == 0 {
                app.execute(
                    "UPDATE credit_lots SET expires_at = 1 WHERE (source_type, source_id) = \
                     (SELECT source_type, source_id FROM credit_lots \
                      WHERE remaining > 0 AND expires_at > 1 ORDER BY expires_at, source_id LIMIT 1)",
                )
                .await;
            }
            if dice <= 1 {
                expire_due(&app.store, unix_now()).await.unwrap();
            }
            assert_lots_within_balances(app).await;
        }
    })
    .await;
    assert!(
        app.count("SELECT COUNT(*) FROM credit_ledger WHERE source_type = 'expiry'")
            .await
            > 0,
        "the mix wrote something off"
    );
}
