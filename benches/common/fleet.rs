//! Many organizations at once: linked to customers of their own, with a
//! member's token each, and a Stripe stand-in that opens portal sessions.

use std::net::TcpListener;

use actix_web::http::Method;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use lance_billing::auth::dev::{DevKey, DevTokenRequest};
use lance_billing::domain::{OrgId, UserId};

use super::Server;

const PORTAL_SESSION: &str = r#"{"id":"bps_bench","object":"billing_portal.session","configuration":"bpc_1","created":1700000000,"customer":"cus_Bench","flow":null,"livemode":false,"locale":null,"on_behalf_of":null,"return_url":"https://app.lance.test/organization#/plans","url":"https://billing.stripe.com/p/session/test_bench"}"#;

/// 1,000 organizations, `org_bench<i>`, each linked to `cus_bench<i>`.
pub async fn link_organizations(server: &Server) -> Result<(), String> {
    let db = crate::db::TestDb::connect(&server.database_url)
        .await
        .map_err(|e| e.to_string())?;
    db.execute(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999) \
         INSERT INTO organizations (id, slug, stripe_customer_id, created_at, updated_at) \
         SELECT 'org_bench' || CAST(i AS TEXT), 'bench' || CAST(i AS TEXT), \
           'cus_bench' || CAST(i AS TEXT), 0, 0 FROM n",
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// `count` tokens, token `i` for user `user_bench<i>` in `org_bench<i % 1000>`,
/// minted on every core.
pub fn mint_tokens(server: &Server, count: usize) -> Result<Vec<String>, String> {
    let path = server
        .env
        .iter()
        .find(|(k, _)| *k == "DEV_KEY_FILE")
        .map(|(_, v)| std::path::PathBuf::from(v))
        .ok_or("no DEV_KEY_FILE")?;
    let key = std::sync::Arc::new(DevKey::load_or_create(&path).map_err(|e| e.to_string())?);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let handles: Vec<_> = (0..cores)
        .map(|core| {
            let key = key.clone();
            std::thread::spawn(move || {
                (core..count)
                    .step_by(cores)
                    .map(|i| mint(&key, i))
                    .collect::<Result<Vec<(usize, String)>, String>>()
            })
        })
        .collect();
    let mut tokens = Vec::with_capacity(count);
    for handle in handles {
        tokens.extend(handle.join().map_err(|_| "a minting thread panicked")??);
    }
    tokens.sort_unstable_by_key(|(i, _)| *i);
    Ok(tokens.into_iter().map(|(_, token)| token).collect())
}

fn mint(key: &DevKey, i: usize) -> Result<(usize, String), String> {
    let user = UserId::parse(&format!("user_bench{i}")).map_err(|e| e.to_string())?;
    let org = OrgId::parse(&format!("org_bench{}", i % 1000)).map_err(|e| e.to_string())?;
    let token = key
        .mint(&DevTokenRequest {
            user: &user,
            org: Some(&org),
            role: "org:admin",
            slug: None,
            ttl_secs: 3 * 3600,
        })
        .map_err(|e| e.to_string())?;
    Ok((i, token))
}

/// Answers at once, on its own thread: a portal session to every POST, the
/// customer asked for, and an empty list to any other read (a refresh after a
/// portal visit finds nothing new). It reads each request's body: actix
/// closes a connection whose body was left unread, and the reconnects would
/// be measured as the service's cost.
pub fn start_stripe_stand_in() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(|| App::new().default_service(web::to(stripe_answer)))
                .workers(1)
                .listen(listener);
            if let Ok(server) = server {
                let _ = server.run().await;
            }
        });
    });
    Ok(port)
}

async fn stripe_answer(request: HttpRequest, _body: web::Bytes) -> HttpResponse {
    let path = request.path();
    let body = if request.method() == Method::POST {
        PORTAL_SESSION.to_owned()
    } else if let Some(id) = path
        .strip_prefix("/v1/customers/")
        .filter(|id| !id.contains('/'))
    {
        serde_json::json!({
            "id": id, "object": "customer", "created": 1_700_000_000, "livemode": false,
            "email": null, "name": null, "metadata": {}, "deleted": false,
            "invoice_settings": {"default_payment_method": null},
        })
        .to_string()
    } else {
        serde_json::json!({"object": "list", "data": [], "has_more": false, "url": path})
            .to_string()
    };
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}
