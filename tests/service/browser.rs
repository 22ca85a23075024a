//! The billing journey in headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over WebDriver. Screenshots of each page land
//! in target/screenshots/. Without chromedriver the test fails under CI and
//! is skipped (with a note) elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use lance_billing::domain::unix_now;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use crate::stripe_fixtures::*;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

struct Driver {
    process: Child,
    port: u16,
}

impl Driver {
    fn start() -> Option<Self> {
        if !Path::new(CHROMEDRIVER).exists() {
            assert!(
                std::env::var("CI").is_err(),
                "CI must install chromium-driver for the browser tests"
            );
            eprintln!(
                "note: {CHROMEDRIVER} not found; browser test skipped (apt-get install chromium chromium-driver)"
            );
            return None;
        }
        // Port 0: chromedriver picks a free port and says which (a port
        // picked here could be taken by another test before it binds it).
        // It picks one free on IPv6 and exits when that port is taken on
        // IPv4 (by one of the other tests' connections): it gets another go.
        let (process, port) = (1..=5)
            .find_map(|_| {
                let mut process = Command::new(CHROMEDRIVER)
                    .arg("--port=0")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("chromedriver starts");
                let stdout = process.stdout.take().expect("piped");
                match maybe_announced(stdout, "started successfully on port ") {
                    Some(port) => {
                        Some((process, port.parse::<u16>().expect("chromedriver's port")))
                    }
                    None => {
                        let _ = process.kill();
                        let _ = process.wait();
                        None
                    }
                }
            })
            .expect("chromedriver started on a port within five tries");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self { process, port })
    }

    async fn browser(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({"binary": CHROMIUM, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-quic", "--no-first-run",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                format!("--user-data-dir={}", tempfile::tempdir().unwrap().keep().display()),
            ]}),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).unwrap();
}

/// Waits until the page's source contains `needle`.
async fn wait_for(browser: &Client, needle: &str) -> String {
    let started = Instant::now();
    loop {
        let source = browser.source().await.unwrap();
        if source.contains(needle) {
            return source;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "page never showed {needle:?}:\n{source}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sign_in_as(browser: &Client, origin: &str, claims: &Value) {
    // Clerk's frontend sets `__session` from the page; so do we.
    browser.goto(&format!("{origin}/healthz")).await.unwrap();
    let cookie = format!("__session={}; path=/", sign(claims));
    browser
        .execute(
            "document.cookie = arguments[0];",
            vec![Value::String(cookie)],
        )
        .await
        .unwrap();
}

async fn html(app: &TestApp, at: &str, body: &str) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/html")
                .set_body_string(body),
        )
        .mount(&app.stripe)
        .await;
}

async fn stripe_json(app: &TestApp, verb: &str, at: &str, customer: Option<&str>, body: Value) {
    let mut mock = Mock::given(method(verb)).and(path(at));
    if let Some(customer) = customer {
        mock = mock.and(query_param("customer", customer));
    }
    mock.respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&app.stripe)
        .await;
}

fn list(data: Vec<Value>) -> Value {
    json!({"object": "list", "data": data, "has_more": false})
}

/// What Stripe holds for a customer, for the refresh after a return.
async fn stripe_customer(
    app: &TestApp,
    customer_id: &str,
    org: &str,
    subscription: Value,
    cards: Vec<Value>,
    invoices: Vec<Value>,
) {
    stripe_json(
        app,
        "GET",
        &format!("/v1/customers/{customer_id}"),
        None,
        customer(customer_id, Some(org), None),
    )
    .await;
    stripe_json(
        app,
        "GET",
        "/v1/subscriptions",
        Some(customer_id),
        list(vec![subscription]),
    )
    .await;
    stripe_json(
        app,
        "GET",
        "/v1/invoices",
        Some(customer_id),
        list(invoices),
    )
    .await;
    stripe_json(
        app,
        "GET",
        &format!("/v1/customers/{customer_id}/payment_methods"),
        None,
        list(cards),
    )
    .await;
}

#[tokio::test]
async fn the_billing_journey_in_a_real_browser() {
    let Some(driver) = Driver::start() else {
        return;
    };
    // Bound here and kept: the origin must be known before the settings.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let app = TestApp::builder()
        .listener(listener)
        .env("PUBLIC_URL", &origin)
        .env("ADMIN_USER_IDS", "user_2abc")
        .spawn()
        .await;
    let stripe = app.stripe.uri();

    // A paying organization with a synced plan, card, invoice and catalog.
    let customer_id = "cus_NciAYcXfLnqBoz";
    app.org_with_customer("org_acme", customer_id).await;
    let mut price = object("price");
    price["id"] = "price_pro_monthly".into();
    price["product"] = "prod_pro".into();
    price["unit_amount"] = 4900.into();
    // Times as a real account would show them today, so the screenshots do.
    let (now, day) = (unix_now(), 86_400);
    let period_end = now + 20 * day;
    let mut sub = subscription("sub_acme", customer_id, "active");
    sub["created"] = (now - 40 * day).into();
    sub["items"]["data"][0]["current_period_start"] = (now - 10 * day).into();
    sub["items"]["data"][0]["current_period_end"] = period_end.into();
    let mut paid = invoice("in_1", customer_id, "sub_acme", "paid", now - 10 * day);
    paid["period_start"] = (now - 10 * day).into();
    paid["period_end"] = period_end.into();
    for e in [
        event(
            "evt_p",
            "product.created",
            now - 60 * day,
            product("prod_pro", "Pro"),
        ),
        event("evt_pr", "price.created", now - 60 * day, price),
        event(
            "evt_s",
            "customer.subscription.created",
            now - 40 * day,
            sub.clone(),
        ),
        event(
            "evt_pm",
            "payment_method.attached",
            now - 2 * 3600,
            payment_method("pm_1", Some(customer_id), "4242"),
        ),
        event("evt_in", "invoice.paid", now - 10 * day, paid.clone()),
    ] {
        assert_eq!(app.post_event(&e).await.status().as_u16(), 200);
    }
    let portal_page = format!("{stripe}/p/session/test_browser");
    let mut session = portal_session_json();
    session["url"] = portal_page.clone().into();
    stripe_json(&app, "POST", "/v1/billing_portal/sessions", None, session).await;
    html(
        &app,
        "/p/session/test_browser",
        "<!doctype html><title>Stripe portal</title><h1>Stand-in Stripe portal</h1>",
    )
    .await;

    let browser = driver.browser().await;
    sign_in_as(&browser, &origin, &claims_v2("org_acme")).await;

    // The page Stripe's portal returns to opens on the Plans tab.
    browser
        .goto(&format!("{origin}/organization#/plans"))
        .await
        .unwrap();
    wait_for(&browser, "Renews on").await;
    let plans_tab = browser.find(Locator::Id("tab-plans")).await.unwrap();
    assert_eq!(
        plans_tab.attr("aria-selected").await.unwrap().as_deref(),
        Some("true")
    );
    let general = browser
        .find(Locator::Css(r#"[id="/general"]"#))
        .await
        .unwrap();
    assert!(
        !general.is_displayed().await.unwrap(),
        "other tabs are hidden"
    );
    let plans = browser
        .find(Locator::Css(r#"[id="/plans"]"#))
        .await
        .unwrap();
    let text = plans.text().await.unwrap();
    assert!(
        text.contains("Pro") && text.contains("Active") && text.contains("$49.00 / month"),
        "{text}"
    );
    screenshot(&browser, "organization-plans").await;

    // Keyboard: arrow keys move between tabs.
    plans_tab.send_keys("\u{E012}").await.unwrap(); // ArrowLeft
    let general_tab = browser.find(Locator::Id("tab-general")).await.unwrap();
    assert_eq!(
        general_tab.attr("aria-selected").await.unwrap().as_deref(),
        Some("true")
    );
    screenshot(&browser, "organization-general").await;
    browser
        .goto(&format!("{origin}/organization#/plans"))
        .await
        .unwrap();

    // Manage billing opens Stripe's portal; there the user cancels at period end.
    let mut canceling = sub.clone();
    canceling["cancel_at_period_end"] = true.into();
    let cards = vec![payment_method("pm_1", Some(customer_id), "4242")];
    let invoices = vec![paid.clone()];
    stripe_customer(&app, customer_id, "org_acme", canceling, cards, invoices).await;
    browser
        .find(Locator::Id("manage-billing"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&browser, "Stand-in Stripe portal").await;
    assert_eq!(browser.current_url().await.unwrap().as_str(), portal_page);
    screenshot(&browser, "stripe-portal-stand-in").await;

    // Back on the page the change shows at once, before any webhook.
    browser
        .goto(&format!("{origin}/organization#/plans"))
        .await
        .unwrap();
    let cancels_on = format!(
        "Cancels on {}",
        lance_billing::views::format::date(period_end)
    );
    let page = wait_for(&browser, &cancels_on).await;
    assert!(
        page.contains("Visa •••• 4242"),
        "the card Stripe still lists stays"
    );
    screenshot(&browser, "organization-after-portal").await;

    // A new organization subscribes through checkout.
    let checkout_page = format!("{stripe}/c/pay/cs_browser");
    stripe_json(
        &app,
        "POST",
        "/v1/customers",
        None,
        json!({"id": "cus_Created", "object": "customer"}),
    )
    .await;
    stripe_json(
        &app,
        "POST",
        "/v1/checkout/sessions",
        None,
        json!({"id": "cs_browser", "url": checkout_page}),
    )
    .await;
    html(
        &app,
        "/c/pay/cs_browser",
        "<!doctype html><title>Checkout</title><h1>Stand-in Stripe Checkout</h1>",
    )
    .await;
    sign_in_as(&browser, &origin, &claims_v2("org_newco")).await;
    browser
        .goto(&format!("{origin}/organization#/plans"))
        .await
        .unwrap();
    wait_for(&browser, "Choose a plan").await;
    screenshot(&browser, "organization-no-customer").await;
    browser
        .find(Locator::Css("form.offer button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&browser, "Stand-in Stripe Checkout").await;
    assert_eq!(browser.current_url().await.unwrap().as_str(), checkout_page);

    // Stripe sends the user back with the session id.
    stripe_json(
        &app,
        "GET",
        "/v1/checkout/sessions/cs_browser",
        None,
        checkout(
            "cs_browser",
            "org_newco",
            "cus_Created",
            "subscription",
            "paid",
            None,
        ),
    )
    .await;
    stripe_customer(
        &app,
        "cus_Created",
        "org_newco",
        subscription("sub_newco", "cus_Created", "active"),
        vec![],
        vec![],
    )
    .await;
    browser
        .goto(&format!("{origin}/organization?checkout=cs_browser#/plans"))
        .await
        .unwrap();
    wait_for(&browser, "Thank you! Your purchase is complete.").await;
    wait_for(&browser, "Manage billing").await;
    screenshot(&browser, "organization-after-checkout").await;

    // The operators' view, with the revenue snapshot the server takes daily.
    lance_billing::billing::snapshot::take(&app.store, lance_billing::domain::unix_now())
        .await
        .unwrap();
    sign_in_as(&browser, &origin, &claims_v2("org_acme")).await;
    browser.goto(&format!("{origin}/admin")).await.unwrap();
    wait_for(&browser, "org_newco").await;
    wait_for(&browser, "MRR per month, USD").await;
    screenshot(&browser, "admin-overview").await;
    browser
        .find(Locator::Css(r#"a[href="/admin/orgs/org_acme"]"#))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&browser, "Resync from Stripe").await;
    screenshot(&browser, "admin-detail").await;
    browser
        .goto(&format!("{origin}/admin/webhooks"))
        .await
        .unwrap();
    wait_for(&browser, "Recent events").await;
    screenshot(&browser, "admin-webhooks").await;

    // Down to a phone.
    browser.set_window_size(390, 844).await.unwrap();
    browser
        .goto(&format!("{origin}/organization#/plans"))
        .await
        .unwrap();
    wait_for(&browser, "Cancels on").await;
    screenshot(&browser, "organization-phone").await;
    let overflow = browser
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the page scrolls sideways on a phone by {overflow}px"
    );

    browser.close().await.unwrap();
}
