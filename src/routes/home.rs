//! The landing page and the embedded stylesheet.

use actix_web::http::header;
use actix_web::{HttpResponse, get};
use askama::Template;

use crate::error::ApiError;
use crate::pages::HomePage;

#[get("/")]
pub async fn home() -> Result<HttpResponse, ApiError> {
    let html = HomePage::default().render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// Served from the binary, so a deployment is one file and no CDN is involved.
#[get("/static/app.css")]
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../static/app.css"))
}

#[get("/static/tabs.js")]
pub async fn tabs_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../static/tabs.js"))
}
