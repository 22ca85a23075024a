//! Askama view models: plain structs prepared in Rust, one per page, so the
//! templates hold nothing but loops and conditionals.

pub mod admin;
pub mod format;
mod organization;
pub mod overview;
pub mod webhooks;

pub use organization::{Catalog, Notice, OrganizationContext, OrganizationPage};

use askama::Template;

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    pub version: &'static str,
}

impl Default for HomePage {
    fn default() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub action: Option<(&'a str, &'a str)>,
}
