//! `lance-billing webhooks setup` against a stand-in Stripe: creating the
//! endpoint, bringing an existing one up to date, and the run that changes
//! nothing.

use lance_billing::billing::rules::HANDLED_EVENTS;
use lance_billing::billing::webhook_setup::{EndpointSetup, VersionCheck, setup_endpoint};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

const URL: &str = "https://app.lance.test/api/v1/webhooks/stripe";
const OURS: &str = "2025-09-30.clover";

fn endpoint(id: &str, url: &str, events: &[&str], version: Option<&str>, status: &str) -> Value {
    json!({
        "id": id, "object": "webhook_endpoint", "api_version": version, "application": null,
        "created": 1_700_000_000, "description": null, "enabled_events": events,
        "livemode": false, "metadata": {}, "status": status, "url": url,
    })
}

async fn stripe_has_endpoints(app: &TestApp, endpoints: Vec<Value>) {
    Mock::given(method("GET"))
        .and(path("/v1/webhook_endpoints"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"object": "list", "data": endpoints, "has_more": false, "url": "/v1/webhook_endpoints"}),
        ))
        .mount(&app.stripe)
        .await;
}

async fn stripe_answers_post(app: &TestApp, at: &str, body: Value) {
    Mock::given(method("POST"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&app.stripe)
        .await;
}

async fn setup(app: &TestApp) -> EndpointSetup {
    setup_endpoint(&app.stripe_client(0), URL, false)
        .await
        .unwrap()
}

/// `enabled_events[i]` of a form, in order.
fn enabled_events(request: &wiremock::Request) -> Vec<String> {
    form_fields(request)
        .into_iter()
        .filter(|(k, _)| k.starts_with("enabled_events["))
        .map(|(_, v)| v)
        .collect()
}

#[tokio::test]
async fn setup_creates_an_endpoint_for_exactly_the_handled_events_at_our_version() {
    let app = TestApp::spawn().await;
    stripe_has_endpoints(
        &app,
        vec![endpoint(
            "we_other",
            "https://elsewhere.test/hook",
            &["*"],
            None,
            "enabled",
        )],
    )
    .await;
    let mut created = endpoint("we_new", URL, HANDLED_EVENTS, Some(OURS), "enabled");
    created["secret"] = "whsec_created_once".into();
    stripe_answers_post(&app, "/v1/webhook_endpoints", created).await;

    let outcome = setup(&app).await;

    assert_eq!(
        outcome,
        EndpointSetup::Created {
            id: "we_new".into(),
            secret: Some("whsec_created_once".into())
        }
    );
    assert!(outcome.to_string().contains("whsec_created_once"));
    let posts = app.stripe_requests("/v1/webhook_endpoints").await;
    let post = posts.iter().find(|r| r.method.as_str() == "POST").unwrap();
    let fields = form_fields(post);
    assert!(fields.contains(&("url".into(), URL.into())));
    assert!(fields.contains(&("api_version".into(), OURS.into())));
    assert_eq!(enabled_events(post), HANDLED_EVENTS);
    assert!(post.headers.contains_key("idempotency-key"));
}

#[tokio::test]
async fn setup_updates_the_events_of_an_existing_endpoint_and_tells_what_differs() {
    let app = TestApp::spawn().await;
    let mut events: Vec<&str> = HANDLED_EVENTS
        .iter()
        .copied()
        .filter(|e| *e != "invoice.paid")
        .collect();
    events.push("charge.succeeded");
    stripe_has_endpoints(
        &app,
        vec![endpoint(
            "we_1",
            URL,
            &events,
            Some("2019-12-03"),
            "disabled",
        )],
    )
    .await;
    let updated = endpoint("we_1", URL, HANDLED_EVENTS, Some("2019-12-03"), "enabled");
    stripe_answers_post(&app, "/v1/webhook_endpoints/we_1", updated).await;

    let outcome = setup(&app).await;

    assert_eq!(
        outcome,
        EndpointSetup::Updated {
            id: "we_1".into(),
            added: vec!["invoice.paid".into()],
            removed: vec!["charge.succeeded".into()],
            reenabled: true,
            version: VersionCheck::Other {
                endpoint: Some("2019-12-03".into()),
                ours: OURS.into()
            },
        }
    );
    let text = outcome.to_string();
    assert!(text.contains("now also receives: invoice.paid"), "{text}");
    assert!(
        text.contains("no longer receives: charge.succeeded"),
        "{text}"
    );
    assert!(
        text.contains("--new"),
        "says how to roll the version: {text}"
    );
    let update = app.stripe_requests("/v1/webhook_endpoints/we_1").await;
    assert_eq!(update.len(), 1);
    assert_eq!(enabled_events(&update[0]), HANDLED_EVENTS);
    assert!(form_fields(&update[0]).contains(&("disabled".into(), "false".into())));
}

#[tokio::test]
async fn a_second_setup_changes_nothing_and_says_so() {
    let app = TestApp::spawn().await;
    stripe_has_endpoints(
        &app,
        vec![endpoint("we_1", URL, HANDLED_EVENTS, Some(OURS), "enabled")],
    )
    .await;

    let outcome = setup(&app).await;

    assert_eq!(
        outcome,
        EndpointSetup::UpToDate {
            id: "we_1".into(),
            version: VersionCheck::Same
        }
    );
    assert!(outcome.to_string().contains("up to date: nothing changed"));
    let posts = app
        .stripe
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .count();
    assert_eq!(posts, 0, "nothing was sent to change");
}

#[tokio::test]
async fn the_command_prints_the_outcome() {
    let app = TestApp::spawn().await;
    stripe_has_endpoints(
        &app,
        vec![endpoint("we_1", URL, HANDLED_EVENTS, Some(OURS), "enabled")],
    )
    .await;
    let stripe_base = app.stripe.uri();
    let env = lance_billing::config::Env::from_pairs([
        ("STRIPE_SECRET_KEY", STRIPE_KEY),
        ("STRIPE_API_BASE", stripe_base.as_str()),
    ]);
    let cli = <lance_billing::cli::Cli as clap::Parser>::parse_from([
        "lance-billing",
        "webhooks",
        "setup",
        "--url",
        URL,
    ]);
    lance_billing::cli::run(cli, &env).await.unwrap();
}

#[test]
fn the_api_docs_list_exactly_the_handled_events() {
    let readme = include_str!("../../docs/api.md");
    let section = readme
        .split("Other event types are recorded")
        .nth(1)
        .and_then(|rest| rest.split("**Events at another API version.**").next())
        .unwrap();
    let listed: Vec<&str> = section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.contains('.'))
        .collect();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort_unstable();
    let mut handled = HANDLED_EVENTS.to_vec();
    handled.sort_unstable();
    assert_eq!(listed_sorted, handled);
}
