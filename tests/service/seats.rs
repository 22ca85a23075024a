//! Seats that follow members: a membership created and deleted moves the
//! per-seat quantity in Stripe up and back down, once each, and a burst of
//! invitations makes one request. Stripe is a stand-in that keeps the
//! quantity it is sent.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::clerk_webhooks::deliver;
use crate::helpers::*;
use crate::stripe_fixtures::*;

/// The secret `clerk_webhooks::deliver` signs with.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Stripe's subscription `sub_seats`, whose item `si_sub_seats` keeps
/// the quantity last posted to it.
#[derive(Clone)]
struct SeatStripe {
    quantity: Arc<Mutex<i64>>,
}

impl Respond for SeatStripe {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut quantity = self.quantity.lock().expect("not poisoned");
        if request.method.as_str() == "POST" {
            let form = String::from_utf8_lossy(&request.body).to_string();
            let posted = form
                .split('&')
                .find_map(|pair| pair.strip_prefix("quantity="))
                .and_then(|q| q.parse().ok());
            if let Some(posted) = posted {
                *quantity = posted;
            }
            return ResponseTemplate::new(200).set_body_json(json!({"id": "si_sub_seats"}));
        }
        let mut sub = subscription("sub_seats", "cus_A", "active");
        sub["items"]["data"][0]["quantity"] = (*quantity).into();
        ResponseTemplate::new(200).set_body_json(sub)
    }
}

async fn seats_app() -> (TestApp, SeatStripe) {
    let app = TestApp::builder()
        .env("CLERK_WEBHOOK_SECRET", SECRET)
        .env("BILLING_SEATS", "members")
        .env("BILLING_SEAT_DEBOUNCE", "1s")
        .env("BILLING_SEAT_LIMIT", "plan")
        .env(
            "INTERNAL_API_TOKENS",
            "svc_0123456789abcdef0123456789abcdef",
        )
        .env("ADMIN_USER_IDS", "user_2abc")
        .spawn()
        .await;
    app.org_with_customer("org_acme", "cus_A").await;
    let mut sub = subscription("sub_seats", "cus_A", "active");
    sub["items"]["data"][0]["quantity"] = 1.into();
    let created = event("evt_sub", "customer.subscription.created", 1_000, sub);
    assert_eq!(app.post_event(&created).await.status(), 200);
    let stripe = SeatStripe {
        quantity: Arc::new(Mutex::new(1)),
    };
    for (verb, at) in [
        ("GET", "/v1/subscriptions/sub_seats"),
        ("POST", "/v1/subscription_items/si_sub_seats"),
    ] {
        Mock::given(method(verb))
            .and(path(at))
            .respond_with(stripe.clone())
            .mount(&app.stripe)
            .await;
    }
    (app, stripe)
}

async fn membership(app: &TestApp, kind: &str, user: &str, version: i64) {
    let event = json!({"type": kind, "object": "event", "timestamp": version,
        "data": {"object": "organization_membership", "id": format!("orgmem_{user}"),
            "role": "org:member", "created_at": version, "updated_at": version,
            "organization": {"id": "org_acme"}, "public_user_data": {"user_id": user}}});
    let (status, body) = deliver(app, &format!("msg_{kind}_{user}"), &event).await;
    assert_eq!(status, 200, "{body}");
}

/// The quantity updates sent to Stripe so far: `(quantity, proration, key)`.
async fn updates(app: &TestApp) -> Vec<(String, String, String)> {
    app.stripe_requests("/v1/subscription_items/si_sub_seats")
        .await
        .iter()
        .map(|r| {
            let fields = form_fields(r);
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let key = r
                .headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (field("quantity"), field("proration_behavior"), key)
        })
        .collect()
}

/// Waits (up to 10 s) until no seat update waits.
async fn settled(app: &TestApp) {
    let started = std::time::Instant::now();
    while app.count("SELECT COUNT(*) FROM seat_syncs").await > 0
        && started.elapsed() < std::time::Duration::from_secs(10)
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let waiting = app.count("SELECT COUNT(*) FROM seat_syncs").await;
    assert_eq!(waiting, 0, "a seat update still waits");
}

#[tokio::test]
async fn a_member_added_and_removed_moves_the_quantity_up_and_down_once_each() {
    let (app, stripe) = seats_app().await;
    membership(&app, "organizationMembership.created", "user_a", 1_000).await;
    settled(&app).await;
    // One member: already the one seat Stripe has; nothing sent.
    assert!(updates(&app).await.is_empty());

    membership(&app, "organizationMembership.created", "user_b", 2_000).await;
    settled(&app).await;
    membership(&app, "organizationMembership.deleted", "user_b", 3_000).await;
    settled(&app).await;
    let sent = updates(&app).await;
    assert_eq!(
        sent.iter()
            .map(|(q, p, _)| (q.as_str(), p.as_str()))
            .collect::<Vec<_>>(),
        vec![("2", "create_prorations"), ("1", "create_prorations")]
    );
    assert!(
        sent[0].2.starts_with("seats-sub_seats-si_sub_seats-2-"),
        "{sent:?}"
    );
    assert_eq!(*stripe.quantity.lock().unwrap(), 1);
    app.count_reaches(
        "SELECT COUNT(*) FROM billing_audit WHERE action = 'seats' AND org_id = 'org_acme'",
        2,
    )
    .await;
}

#[tokio::test]
async fn a_burst_of_ten_invitations_makes_one_request() {
    let (app, stripe) = seats_app().await;
    let invitations = (0..10).map(|i| {
        let app = &app;
        async move {
            let user = format!("user_{i}");
            membership(app, "organizationMembership.created", &user, 1_000 + i).await;
        }
    });
    futures_util::future::join_all(invitations).await;
    settled(&app).await;
    let sent = updates(&app).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, "10");
    assert_eq!(*stripe.quantity.lock().unwrap(), 10);
    // The entitlements answer the seats used and paid (as synced).
    let (status, body) = app
        .get_internal(
            "/api/v1/internal/organizations/org_acme/entitlements",
            Some("svc_0123456789abcdef0123456789abcdef"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["seats"], json!({"used": 10, "paid": 1}));
    let _: Value = body;
}

#[tokio::test]
async fn operators_see_seats_out_of_step_and_update_them_now() {
    let (app, stripe) = seats_app().await;
    membership(&app, "organizationMembership.created", "user_a", 1_000).await;
    membership(&app, "organizationMembership.created", "user_b", 1_001).await;
    settled(&app).await;
    assert_eq!(updates(&app).await.len(), 1);
    // Someone set it back in the portal; the synced quantity is still 1.
    *stripe.quantity.lock().unwrap() = 1;
    let admin = claims_v2("org_acme");
    let (_, _, page) = app.page("/organization", &admin).await;
    assert!(page.contains("2 of 1 seats used"), "{page}");
    let (_, _, list) = app.page("/admin", &admin).await;
    assert!(list.contains("Seats out of step"), "{list}");
    assert!(
        list.contains("action=\"/admin/orgs/org_acme/seats\""),
        "{list}"
    );
    let session = app.form_session_at("/admin", &admin).await;
    let response = app
        .submit_form("/admin/orgs/org_acme/seats", &session, &[])
        .await;
    assert_eq!(response.status().as_u16(), 303);
    settled(&app).await;
    let sent = updates(&app).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1].0, "2");
    assert_eq!(*stripe.quantity.lock().unwrap(), 2);
}

#[tokio::test]
async fn a_refused_update_waits_and_is_tried_again_later() {
    let app = TestApp::builder()
        .env("CLERK_WEBHOOK_SECRET", SECRET)
        .env("BILLING_SEATS", "members")
        .env("BILLING_SEAT_DEBOUNCE", "0s")
        .spawn()
        .await;
    app.org_with_customer("org_acme", "cus_A").await;
    let sub = subscription("sub_seats", "cus_A", "active");
    let created = event(
        "evt_sub",
        "customer.subscription.created",
        1_000,
        sub.clone(),
    );
    assert_eq!(app.post_event(&created).await.status(), 200);
    Mock::given(method("GET"))
        .and(path("/v1/subscriptions/sub_seats"))
        .respond_with(ResponseTemplate::new(200).set_body_json(sub))
        .mount(&app.stripe)
        .await;
    let refusal = json!({"error": {"type": "invalid_request_error", "message": "No such item"}});
    Mock::given(method("POST"))
        .and(path("/v1/subscription_items/si_sub_seats"))
        .respond_with(ResponseTemplate::new(400).set_body_json(refusal))
        .mount(&app.stripe)
        .await;
    membership(&app, "organizationMembership.created", "user_a", 1_000).await;
    app.count_reaches(
        "SELECT COUNT(*) FROM seat_syncs WHERE attempts = 1 AND last_error LIKE '%No such item%'",
        1,
    )
    .await;
    // Not before its backoff.
    assert_eq!(updates(&app).await.len(), 1);
}

#[tokio::test]
async fn seats_of_an_organization_clerk_deleted_are_left_to_an_operator() {
    let (app, _stripe) = seats_app().await;
    app.execute("UPDATE organizations SET deleted_at = 1 WHERE id = 'org_acme'")
        .await;
    membership(&app, "organizationMembership.created", "user_a", 1_000).await;
    membership(&app, "organizationMembership.created", "user_b", 1_001).await;
    settled(&app).await;
    assert!(updates(&app).await.is_empty());
}
