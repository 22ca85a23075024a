//! Speaking to the app as its callers do: an API client with a bearer
//! token, Stripe delivering a signed webhook, a browser with cookies and forms.

use serde_json::Value;

use super::{PUBLIC_URL, TestApp, WEBHOOK_SECRET, claims_v2, sign};
use lance_billing::domain::unix_now;

impl TestApp {
    pub fn portal_url(&self) -> String {
        format!("{}/api/v1/operations/payment/customer-portal", self.address)
    }

    /// GET the portal endpoint with `token` as a bearer token.
    pub async fn get_portal(&self, token: &str) -> reqwest::Response {
        self.client
            .get(self.portal_url())
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// POSTs `event` to the webhook endpoint, signed as Stripe would.
    pub async fn post_event(&self, event: &Value) -> reqwest::Response {
        let body = serde_json::to_vec(event).unwrap();
        let header =
            lance_billing::stripe::webhook::signature_header(WEBHOOK_SECRET, unix_now(), &body);
        self.post_webhook(body, Some(&header)).await
    }

    /// POSTs each of `events` in turn, each answered 200.
    pub async fn post_events(&self, events: &[Value]) {
        for event in events {
            let status = self.post_event(event).await.status().as_u16();
            assert_eq!(status, 200, "{}", event["id"]);
        }
    }

    /// The Plans tab of `org`, signed in as its admin (`claims_v2`), answered 200.
    pub async fn plans_html(&self, org: &str) -> String {
        let (status, _, body) = self.page("/organization", &claims_v2(org)).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn post_webhook(&self, body: Vec<u8>, signature: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/api/v1/webhooks/stripe", self.address))
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("Stripe-Signature", signature);
        }
        request.send().await.unwrap()
    }

    /// GET an authenticated JSON endpoint as a member of `org`.
    pub async fn get_json(&self, path: &str, org: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.address))
            .bearer_auth(sign(&claims_v2(org)))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// GET an internal route as another service, with `token` as its bearer.
    pub async fn get_internal(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.client.get(format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// GET a page as a browser signed in with `claims`: (status, headers, body).
    pub async fn page(
        &self,
        path: &str,
        claims: &Value,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.address))
            .header("Cookie", format!("__session={}", sign(claims)))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap())
    }

    /// Opens /organization like a browser: the session cookie and the form's CSRF token.
    pub async fn form_session(&self, claims: &Value) -> FormSession {
        self.form_session_at("/organization", claims).await
    }

    /// Opens the page at `path` like a browser: its session cookie and CSRF token.
    pub async fn form_session_at(&self, path: &str, claims: &Value) -> FormSession {
        let (status, headers, body) = self.page(path, claims).await;
        assert_eq!(status, 200, "{body}");
        let cookie = headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("lb_session="))
            .and_then(|c| c.split(';').next())
            .map(str::to_owned)
            .unwrap_or_default();
        let csrf = body
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_owned();
        FormSession {
            cookie,
            csrf,
            token: sign(claims),
        }
    }

    /// POSTs a form to `path` with the browser's cookies and `origin`.
    pub async fn post_form(
        &self,
        path: &str,
        session: &FormSession,
        origin: Option<&str>,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.address))
            .header(
                "Cookie",
                format!("__session={}; {}", session.token, session.cookie),
            )
            .form(fields);
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request.send().await.unwrap()
    }

    /// Submits a form as the signed-in browser does: from this service's
    /// origin, with the session's CSRF token before `fields`.
    pub async fn submit_form(
        &self,
        path: &str,
        session: &FormSession,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut all = vec![("csrf", session.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_form(path, session, Some(PUBLIC_URL), &all).await
    }
}

pub struct FormSession {
    pub cookie: String,
    pub csrf: String,
    pub token: String,
}
