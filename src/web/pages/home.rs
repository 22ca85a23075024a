//! The landing page and the embedded stylesheet.

use actix_web::HttpResponse;
use actix_web::http::header;
use askama::Template;

use crate::views::HomePage;
use crate::web::errors::ApiError;

pub async fn home() -> Result<HttpResponse, ApiError> {
    let html = HomePage::default().render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// Served from the binary, so a deployment is one file and no CDN is involved.
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/static/app.css"
        )))
}

pub async fn tabs_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/static/tabs.js"
        )))
}
