//! Askama view models: plain structs prepared in Rust, one per page.

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
