use serde_json::Value;

use crate::db::fresh_database_url;
use crate::helpers::TestApp;

#[tokio::test]
async fn healthz_answers_while_the_process_is_up() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn readyz_reports_the_database() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    let expected = if std::env::var("TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres")) {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(body["database"], expected);
}

#[tokio::test]
async fn unknown_routes_get_the_json_not_found_shape() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/v1/nope",
        "/api/v1/internal/organizations/org_1/nope",
        "/admin/",
        "/admin/nope",
    ] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "NOT_FOUND", "{path}");
    }
}

#[tokio::test]
async fn the_home_page_renders_with_its_stylesheet() {
    let app = TestApp::spawn().await;
    let html = app
        .client
        .get(&app.address)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Manage billing"));
    let css = app
        .client
        .get(format!("{}/static/app.css", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
}

#[tokio::test]
async fn another_method_gets_405_with_allow_and_the_json_error() {
    let app = TestApp::spawn().await;
    for (method, path, allow) in [
        ("TRACE", "/healthz", "GET"),
        ("POST", "/api/v1/operations/payment/subscription", "GET"),
        ("GET", "/api/v1/webhooks/stripe", "POST"),
        (
            "GET",
            "/api/v1/internal/organizations/org_1/credits/debits",
            "POST",
        ),
    ] {
        let response = app
            .client
            .request(method.parse().unwrap(), format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allow);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED");
    }
}

#[tokio::test]
async fn every_answer_carries_a_request_id_kept_from_the_caller_when_well_formed() {
    let app = TestApp::spawn().await;
    let healthz = format!("{}/healthz", app.address);
    let id_of = |response: &reqwest::Response| {
        response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let generated = app.client.get(&healthz).send().await.unwrap();
    let id = id_of(&generated);
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    let kept = app
        .client
        .get(&healthz)
        .header("X-Request-Id", "lb-trace.42:a")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&kept), "lb-trace.42:a");
    let replaced = app
        .client
        .get(&healthz)
        .header("X-Request-Id", "two words")
        .send()
        .await
        .unwrap();
    assert_ne!(id_of(&replaced), "two words");
    // Errors too: the portal without a token.
    let refused = app
        .client
        .get(app.portal_url())
        .header("X-Request-Id", "refused-1")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(id_of(&refused), "refused-1");
}

/// PostgreSQL connections that broke while they sat idle in the pool (the
/// server restarted, a proxy dropped them) are replaced without failing a
/// request.
#[tokio::test]
async fn a_connection_broken_while_idle_costs_no_request() {
    let Some(base) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let name = format!("lt_idle_{}", uuid::Uuid::new_v4().simple());
    let url = fresh_database_url(dir.path(), Some(&base), "lt")
        .await
        .unwrap();
    let app = TestApp::builder()
        .env("DATABASE_URL", &format!("{url}&application_name={name}"))
        .spawn()
        .await;
    app.org_with_customer("org_acme", "cus_A").await;
    for _ in 0..3 {
        let (status, body) = app
            .get_json("/api/v1/operations/payment/usage", "org_acme")
            .await;
        assert_eq!(status, 200, "{body}");
    }

    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&base)
        .await
        .unwrap();
    let terminated: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = $1",
    )
    .bind(&name)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(terminated >= 1, "no connection of the server's pool");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let answers = futures_util::future::join_all(
        (0..8).map(|_| app.get_json("/api/v1/operations/payment/usage", "org_acme")),
    )
    .await;
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
}
