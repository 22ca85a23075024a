//! Slow, idle and oversized clients do not stall anyone else: a request head
//! that trickles is cut off after CLIENT_REQUEST_TIMEOUT, a body that
//! trickles after CLIENT_BODY_TIMEOUT, a thousand idle connections leave
//! the others served, and bodies over the limits are refused.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

async fn slow_app() -> TestApp {
    TestApp::builder()
        .env("CLIENT_REQUEST_TIMEOUT", "1s")
        .env("CLIENT_BODY_TIMEOUT", "1s")
        .spawn()
        .await
}

fn host(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// A normal request answers promptly.
async fn answers_promptly(app: &TestApp) {
    let started = Instant::now();
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "took {:?}",
        started.elapsed()
    );
}

/// Reads until the server closes the connection (or `limit` passes).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while started.elapsed() < limit {
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_request_head_that_trickles_is_cut_off_while_others_are_served() {
    let app = slow_app().await;
    let mut slow = TcpStream::connect(host(&app)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let trickle = async {
        for _ in 0..10 {
            if slow.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            answers_promptly(&app).await;
        }
    };
    trickle.await;
    let (answer, waited) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "the slow connection was closed"
    );
}

#[tokio::test]
async fn a_body_that_trickles_is_refused_in_time() {
    let app = slow_app().await;
    let mut slow = TcpStream::connect(host(&app)).await.unwrap();
    slow.write_all(
        b"POST /api/v1/webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Stripe-Signature: t=1,v1=00\r\nContent-Length: 1000\r\n\r\n{\"id\":",
    )
    .await
    .unwrap();
    answers_promptly(&app).await;
    let (answer, waited) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("did not arrive in time"), "{answer}");
    assert!(waited < Duration::from_secs(3));
}

#[tokio::test]
async fn a_thousand_idle_connections_do_not_stall_other_requests() {
    let app = TestApp::spawn().await;
    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        idle.push(TcpStream::connect(host(&app)).await.unwrap());
    }
    for _ in 0..5 {
        answers_promptly(&app).await;
    }
    drop(idle);
}

#[tokio::test]
async fn bodies_over_the_limits_are_refused_with_a_clear_error() {
    let app = TestApp::spawn().await;
    // A webhook over 1 MiB.
    let response = app
        .post_webhook(vec![b' '; 1024 * 1024 + 1], Some("t=1,v1=00"))
        .await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
    // A form over 256 KiB.
    let session = app.form_session(&claims_v2("org_big")).await;
    let huge = "x".repeat(300 * 1024);
    let response = app
        .submit_form(
            "/organization/checkout/subscription",
            &session,
            &[("price", &huge)],
        )
        .await;
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("The form could not be read")
    );
    answers_promptly(&app).await;
}
