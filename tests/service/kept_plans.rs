//! Each customer's kept Plans document (`synced_plans`): a page read from
//! one shows what the rows hold, every change clears it in its own commit,
//! and a document read before a change is never kept.

use std::time::Duration;

use lance_billing::store::{PLANS_HISTORY, Plans};
use serde_json::Value;

use crate::helpers::*;
use crate::stripe_fixtures::*;

const KEPT: &str =
    "SELECT COUNT(*) FROM synced_plans WHERE customer_id = 'cus_K' AND document IS NOT NULL";
const VERSION: &str = "SELECT version FROM synced_plans WHERE customer_id = 'cus_K'";

/// The Plans cache off, so every read is the store's.
async fn uncached() -> TestApp {
    let app = TestApp::builder().env("PLANS_CACHE_TTL", "0").spawn().await;
    app.org_with_customer("org_kept", "cus_K").await;
    app
}

/// Builds every document to build, settled or not, as an instance does at
/// start (the test's store is not the server's, whose commits it misses).
async fn build_all(app: &TestApp) -> usize {
    app.store.look_for_synced_plans_to_build();
    let built = app.store.build_synced_plans(Duration::ZERO, 1_000);
    built.await.unwrap()
}

async fn plans(app: &TestApp, history: i64) -> Plans {
    let read = app.store.plans("org_kept", Some("cus_K"), history).await;
    read.unwrap().as_ref().clone()
}

async fn plans_html(app: &TestApp) -> String {
    app.plans_html("org_kept").await
}

/// A product, two subscriptions, a card, more invoices than the history
/// shows, and credits.
fn a_customer_with_everything() -> Vec<Value> {
    let mut events = vec![
        event("evt_p", "product.created", 1, product("prod_pro", "Pro")),
        event(
            "evt_s1",
            "customer.subscription.created",
            100,
            subscription("sub_1", "cus_K", "active"),
        ),
        event(
            "evt_s2",
            "customer.subscription.created",
            101,
            subscription("sub_2", "cus_K", "trialing"),
        ),
        event(
            "evt_pm",
            "payment_method.attached",
            102,
            payment_method("pm_1", Some("cus_K"), "4242"),
        ),
        event(
            "evt_cs",
            "checkout.session.completed",
            103,
            checkout("cs_1", "org_kept", "cus_K", "payment", "paid", Some(1500)),
        ),
    ];
    for n in 0..PLANS_HISTORY + 6 {
        let created = 1_700_000_000 + n * 10;
        let paid = invoice(&format!("in_{n:02}"), "cus_K", "sub_1", "paid", created);
        events.push(event(&format!("evt_in_{n}"), "invoice.paid", 200 + n, paid));
    }
    events
}

#[tokio::test]
async fn a_kept_document_reads_as_the_rows_do() {
    let app = uncached().await;
    app.post_events(&a_customer_with_everything()).await;

    for history in [PLANS_HISTORY, 5, 0] {
        app.execute("UPDATE synced_plans SET document = NULL").await;
        let from_rows = plans(&app, history).await;
        build_all(&app).await;
        assert_eq!(app.count(KEPT).await, 1);
        let from_document = plans(&app, history).await;
        assert_eq!(from_document, from_rows, "{history} invoices");
        assert_eq!(from_document.invoices.len() as i64, history);
        assert_eq!(from_document.billing.subscriptions.len(), 2);
        assert!(from_document.billing.payment_method.is_some());
        assert_eq!(from_document.billing.credit_balance, 1500);
    }
    // A longer history than a document keeps is read from the rows.
    let longer = plans(&app, PLANS_HISTORY + 6).await;
    assert_eq!(longer.invoices.len() as i64, PLANS_HISTORY + 6);
    assert_eq!(app.count(KEPT).await, 1);
}

#[tokio::test]
async fn every_change_clears_the_kept_document_in_its_commit() {
    let app = uncached().await;
    let steps: Vec<(Value, &str)> = vec![
        (
            event(
                "evt_k1",
                "customer.subscription.created",
                100,
                subscription("sub_k", "cus_K", "active"),
            ),
            ">Active</span>",
        ),
        (
            event(
                "evt_k2",
                "customer.subscription.updated",
                101,
                subscription("sub_k", "cus_K", "past_due"),
            ),
            ">Past due</span>",
        ),
        // A product's name shows on every subscription to it.
        (
            event(
                "evt_k3",
                "product.updated",
                102,
                product("prod_pro", "Scale"),
            ),
            "<h3>Scale</h3>",
        ),
        (
            event(
                "evt_k4",
                "payment_method.attached",
                103,
                payment_method("pm_k", Some("cus_K"), "1881"),
            ),
            "•••• 1881",
        ),
        (
            event(
                "evt_k5",
                "invoice.paid",
                104,
                invoice("in_kept", "cus_K", "sub_k", "paid", 1_700_000_000),
            ),
            "https://invoice.stripe.com/i/in_kept",
        ),
    ];
    for (event, shown) in steps {
        build_all(&app).await;
        assert_eq!(app.count(KEPT).await, 1);
        let version = app.count(VERSION).await;
        assert!(!plans_html(&app).await.contains(shown), "{shown} before");
        app.post_events(&[event]).await;
        assert!(app.count(VERSION).await > version, "{shown} moved it on");
        assert!(plans_html(&app).await.contains(shown), "{shown} after");
        build_all(&app).await;
        assert!(plans_html(&app).await.contains(shown), "{shown} kept");
    }
    // A card leaving a customer the event does not name clears every document.
    build_all(&app).await;
    let detached = payment_method("pm_k", None, "1881");
    app.post_events(&[event("evt_k6", "payment_method.detached", 105, detached)])
        .await;
    assert!(!plans_html(&app).await.contains("•••• 1881"));
}

#[tokio::test]
async fn a_document_read_before_a_change_is_not_kept() {
    let app = uncached().await;
    app.post_events(&a_customer_with_everything()[..3]).await;
    build_all(&app).await;
    let version = app.count(VERSION).await;

    let read_before = app.store.build_synced_plans_of("cus_K").await.unwrap();
    let late = invoice("in_late", "cus_K", "sub_1", "paid", 1_800_000_000);
    app.post_events(&[event("evt_late", "invoice.paid", 300, late)])
        .await;
    let kept = app
        .store
        .keep_synced_plans(read_before.into_iter().collect());

    assert_eq!(kept.await.unwrap(), 0, "the version moved on");
    assert!(app.count(VERSION).await > version);
    assert!(
        plans_html(&app)
            .await
            .contains("https://invoice.stripe.com/i/in_late")
    );
    build_all(&app).await;
    assert_eq!(app.count(KEPT).await, 1);
    assert!(
        plans_html(&app)
            .await
            .contains("https://invoice.stripe.com/i/in_late")
    );
}

#[tokio::test]
async fn a_customer_linked_now_has_a_document_to_build() {
    let app = TestApp::spawn().await;
    app.org_with_customer("org_kept", "cus_K").await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM synced_plans WHERE customer_id = 'cus_K'")
            .await,
        1
    );
    build_all(&app).await;
    assert_eq!(app.count(KEPT).await, 1);
    let plans = plans(&app, PLANS_HISTORY).await;
    assert!(plans.billing.subscriptions.is_empty() && plans.invoices.is_empty());
}

#[tokio::test]
async fn the_server_builds_a_document_once_its_customer_settles() {
    let app = uncached().await;
    build_all(&app).await;
    app.post_events(&a_customer_with_everything()[..2]).await;
    let cleared = std::time::Instant::now();
    assert_eq!(app.count(KEPT).await, 0, "cleared by the delivery's commit");
    app.count_reaches(KEPT, 1).await;
    assert!(
        cleared.elapsed() >= Duration::from_secs(1),
        "not before it settles"
    );
    let plans = plans(&app, PLANS_HISTORY).await;
    assert_eq!(plans.billing.subscriptions.len(), 1);
}

/// A command that writes and exits builds the documents it cleared: no
/// server hears of its commits.
#[tokio::test]
async fn a_command_builds_the_documents_its_writes_cleared() {
    let app = TestApp::spawn().await;
    let env = lance_billing::config::Env::from_pairs([("DATABASE_URL", app.database_url.as_str())]);
    let link = [
        "lance-billing",
        "org",
        "link",
        "--org",
        "org_kept",
        "--customer",
        "cus_K",
        "--no-verify",
    ];
    let cli = <lance_billing::cli::Cli as clap::Parser>::parse_from(link);
    lance_billing::cli::run(cli, &env).await.unwrap();

    assert_eq!(app.count(KEPT).await, 1);
}
