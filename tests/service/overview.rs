//! The operators' overview and export, computed from known rows: several
//! currencies, intervals and statuses.

use lance_billing::billing::snapshot::take;
use lance_billing::domain::unix_now;
use serde_json::Value;

use crate::helpers::*;
use crate::stripe_fixtures::*;

const OPERATOR: &str = "user_2abc"; // the `sub` of claims_v2

async fn admin_app() -> TestApp {
    TestApp::builder()
        .env("ADMIN_USER_IDS", OPERATOR)
        .spawn()
        .await
}

/// (org, customer, status, currency, unit amount, quantity, interval, count)
type Seed = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    i64,
    i64,
    &'static str,
    i64,
);

const SEEDS: [Seed; 7] = [
    ("org_a", "cus_A", "active", "usd", 4900, 3, "month", 1),
    ("org_b", "cus_B", "past_due", "usd", 120_000, 1, "year", 1),
    ("org_c", "cus_C", "trialing", "usd", 4900, 1, "month", 1),
    ("org_d", "cus_D", "active", "eur", 9900, 1, "month", 1),
    ("org_e", "cus_E", "active", "jpy", 5000, 2, "week", 2),
    ("org_f", "cus_F", "unpaid", "usd", 4900, 1, "month", 1),
    ("org_g", "cus_G", "canceled", "usd", 4900, 1, "month", 1),
];

async fn seed(app: &TestApp) {
    let now = unix_now();
    for (i, (org, customer, status, currency, amount, quantity, interval, count)) in
        SEEDS.iter().enumerate()
    {
        app.org_with_customer(org, customer).await;
        let mut sub = subscription(&format!("sub_{org}"), customer, status);
        sub["currency"] = (*currency).into();
        let price = &mut sub["items"]["data"][0]["price"];
        price["currency"] = (*currency).into();
        price["unit_amount"] = (*amount).into();
        price["recurring"]["interval"] = (*interval).into();
        price["recurring"]["interval_count"] = (*count).into();
        sub["items"]["data"][0]["quantity"] = (*quantity).into();
        if *org == "org_d" {
            sub["cancel_at_period_end"] = true.into();
        }
        if *status == "canceled" {
            sub["canceled_at"] = (now - 3600).into();
        }
        let e = event(
            &format!("evt_{org}"),
            "customer.subscription.created",
            1000 + i as i64,
            sub,
        );
        assert_eq!(app.post_event(&e).await.status(), 200);
    }
    // Canceled long ago: not "canceled this month".
    let mut old = subscription("sub_old", "cus_G", "canceled");
    old["canceled_at"] = 1_600_000_000.into();
    old["created"] = 1_500_000_000.into();
    let e = event("evt_old", "customer.subscription.created", 900, old);
    assert_eq!(app.post_event(&e).await.status(), 200);
    app.execute("UPDATE organizations SET slug = 'Acme, \"Best\" Inc.' WHERE id = 'org_a'")
        .await;
}

#[tokio::test]
async fn the_overview_computes_mrr_counts_and_risk_from_the_rows() {
    let app = admin_app().await;
    seed(&app).await;
    let (status, _, html) = app.page("/admin", &claims_v2("org_ops")).await;
    assert_eq!(status, 200);
    // USD: 3 × $49.00 + $1,200.00 / 12 (past due still owed); trial apart.
    assert!(html.contains("<th scope=\"row\">USD</th><td class=\"num big\">$247.00</td><td class=\"num muted\">$49.00</td>"), "{html}");
    assert!(html.contains("<th scope=\"row\">EUR</th><td class=\"num big\">€99.00</td>"));
    // ¥5,000 × 2 every 2 weeks: × 52 ÷ 12 ÷ 2.
    assert!(html.contains("<th scope=\"row\">JPY</th><td class=\"num big\">¥21,667</td>"));
    for (count, label) in [
        (3, "Active"),
        (1, "In trial"),
        (1, "Past due"),
        (1, "Unpaid"),
        (1, "Canceled this month"),
        (0, "Paused"),
    ] {
        assert!(
            html.contains(&format!("<strong>{count}</strong> {label}</a>")),
            "{count} {label}"
        );
    }
    assert!(html.contains("href=\"/admin?status=past_due\""));
    assert!(html.contains("Discounts and taxes are not applied"));
    // At risk: the past-due, the unpaid, and the one set to cancel, with its date.
    assert!(html.contains("<a href=\"/admin/orgs/org_b\">org_b</a> — Past due"));
    assert!(html.contains("<a href=\"/admin/orgs/org_f\">org_f</a> — Unpaid"));
    assert!(html.contains("<a href=\"/admin/orgs/org_d\">org_d</a> — Cancels on"));
    assert!(
        !html.contains("org_a</a> — "),
        "a healthy subscription is not at risk"
    );
    // The charts are inline SVG with their figures beside them.
    assert!(html.contains("Events received per day, last 14 days"));
    assert!(html.contains("<svg class=\"chart\""));
}

#[tokio::test]
async fn the_snapshot_is_taken_once_a_day_however_many_instances_take_it() {
    let a = admin_app().await;
    seed(&a).await;
    let b = TestApp::builder()
        .env("DATABASE_URL", &a.database_url)
        .spawn()
        .await;
    let now = unix_now();
    let (first, second) = tokio::join!(take(&a.store, now), take(&b.store, now));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.today + second.today, 3, "usd, eur and jpy, once");
    let again = take(&b.store, now + 60).await.unwrap();
    assert_eq!(again.today, 0, "today is taken");
    assert_eq!(
        a.count("SELECT COUNT(*) FROM billing_snapshots WHERE estimate = FALSE")
            .await,
        3
    );
    assert_eq!(
        a.count("SELECT mrr FROM billing_snapshots WHERE estimate = FALSE AND currency = 'usd'")
            .await,
        24_700
    );
    // The run estimated the twelve month-ends before today.
    assert_eq!(
        a.count("SELECT COUNT(DISTINCT day) FROM billing_snapshots WHERE estimate = TRUE")
            .await,
        12
    );
    let (_, _, html) = a.page("/admin", &claims_v2("org_ops")).await;
    assert!(html.contains("MRR per month, USD"), "{html}");
    assert!(html.contains("$247.00"));
}

#[tokio::test]
async fn the_export_is_a_csv_of_every_subscription_for_operators_only() {
    let app = admin_app().await;
    seed(&app).await;
    // org_b's name came from Clerk, its customer's from Stripe.
    app.execute("UPDATE organizations SET name = 'Bravo GmbH' WHERE id = 'org_b'")
        .await;
    let mut bravo = customer("cus_B", Some("org_b"), None);
    bravo["name"] = "Bravo Billing".into();
    bravo["email"] = "billing@bravo.test".into();
    let updated = event("evt_cus_b", "customer.updated", 5_000, bravo);
    assert_eq!(app.post_event(&updated).await.status(), 200);
    let url = "/admin/export/subscriptions.csv";
    let (status, headers, csv) = app.page(url, &claims_v2("org_ops")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "organization,organization_name,customer_name,customer_email,subscription,status,plan,interval,quantity,currency,unit_amount,mrr,current_period_end,cancel_at_period_end,created"
    );
    assert_eq!(lines.len(), 1 + 8, "a row per subscription");
    let acme = lines.iter().find(|l| l.starts_with("org_a,")).unwrap();
    assert!(
        acme.starts_with("org_a,\"Acme, \"\"Best\"\" Inc.\",,,sub_org_a,active,"),
        "{acme}"
    );
    assert!(acme.contains(",month,3,usd,4900,14700,"), "{acme}");
    let bravo = lines.iter().find(|l| l.starts_with("org_b,")).unwrap();
    assert!(
        bravo.starts_with("org_b,Bravo GmbH,Bravo Billing,billing@bravo.test,sub_org_b,"),
        "{bravo}"
    );
    let (_, _, overview) = app.page("/admin", &claims_v2("org_ops")).await;
    assert!(
        overview.contains("<a href=\"/admin/orgs/org_b\">Bravo GmbH</a>"),
        "names in the lists"
    );
    let jpy = lines.iter().find(|l| l.starts_with("org_e,")).unwrap();
    assert!(jpy.contains(",2 week,2,jpy,5000,21667,"), "{jpy}");

    let mut stranger: Value = claims_v2("org_ops");
    stranger["sub"] = "user_stranger".into();
    let (status, _, _) = app.page(url, &stranger).await;
    assert_eq!(status, 404, "only operators");
}

/// Snapshots count every item of paying subscriptions only, and the
/// month-end estimates follow a state repaired after they were first made.
#[tokio::test]
async fn snapshots_count_every_paying_item_and_estimates_follow_repairs() {
    let app = TestApp::spawn().await;
    let now = unix_now();
    let long_ago = now - 400 * 86_400;
    let mut sub = subscription("sub_two", "cus_two", "active");
    sub["created"] = long_ago.into();
    let mut seats = sub["items"]["data"][0].clone();
    seats["id"] = "si_two_seats".into();
    seats["price"]["id"] = "price_seat".into();
    seats["price"]["unit_amount"] = 1000.into();
    seats["quantity"] = 2.into();
    sub["items"]["data"].as_array_mut().unwrap().push(seats);
    let created = event(
        "evt_two",
        "customer.subscription.created",
        long_ago,
        sub.clone(),
    );
    assert_eq!(app.post_event(&created).await.status(), 200);
    let mut never_paid = subscription("sub_inc", "cus_two", "incomplete");
    never_paid["created"] = long_ago.into();
    let e = event(
        "evt_inc",
        "customer.subscription.created",
        long_ago,
        never_paid,
    );
    assert_eq!(app.post_event(&e).await.status(), 200);

    take(&app.store, now).await.unwrap();
    let paying = 4900 * 3 + 1000 * 2;
    let today = "SELECT mrr FROM billing_snapshots WHERE estimate = FALSE AND currency = 'usd'";
    assert_eq!(app.count(today).await, paying);
    let counted =
        "SELECT subscriptions FROM billing_snapshots WHERE estimate = FALSE AND currency = 'usd'";
    assert_eq!(app.count(counted).await, 1);
    let estimated = "SELECT COUNT(*) FROM billing_snapshots WHERE estimate = TRUE AND mrr = 16700";
    assert_eq!(app.count(estimated).await, 12);

    // The catch-up finds it ended 200 days ago: the estimates after that are redone.
    let ended = now - 200 * 86_400;
    sub["status"] = "canceled".into();
    sub["ended_at"] = ended.into();
    sub["canceled_at"] = ended.into();
    let deleted = event("evt_two_end", "customer.subscription.deleted", ended, sub);
    assert_eq!(app.post_event(&deleted).await.status(), 200);
    take(&app.store, now + 60).await.unwrap();
    assert_eq!(app.count(today).await, paying, "a day taken is kept");
    let still = app.count(estimated).await;
    assert!(
        (5..=7).contains(&still),
        "month-ends before the end: {still}"
    );
}

/// Names others write (a product in Stripe's catalog, a Clerk slug) reach
/// the export as text a spreadsheet will not run.
#[tokio::test]
async fn the_export_defuses_cells_that_start_like_formulas() {
    let app = admin_app().await;
    app.org_with_customer("org_f", "cus_F").await;
    app.execute("UPDATE organizations SET slug = '@SUM(1+1)' WHERE id = 'org_f'")
        .await;
    let product = product("prod_pro", "=HYPERLINK(\"https://evil.test\",\"Pro\")");
    let sub = subscription("sub_f", "cus_F", "active");
    for e in [
        event("evt_prod", "product.created", 1, product),
        event("evt_sub", "customer.subscription.created", 2, sub),
    ] {
        assert_eq!(app.post_event(&e).await.status(), 200);
    }
    let (_, _, csv) = app
        .page("/admin/export/subscriptions.csv", &claims_v2("org_ops"))
        .await;
    let row = csv.lines().find(|l| l.starts_with("org_f,")).unwrap();
    assert!(
        row.starts_with(
            "org_f,'@SUM(1+1),,,sub_f,active,\"'=HYPERLINK(\"\"https://evil.test\"\",\"\"Pro\"\")\","
        ),
        "{row}"
    );
}
