//! The test harness, by concern: `app` spawns the real server on a fresh
//! database with a stand-in Stripe and Clerk; `tokens` mints Clerk session
//! tokens; `requests` speaks HTTP to the app as Stripe, a browser or an API
//! client would; `stripe` stands in for Stripe's answers; `process` reads
//! the port a child process chose from its output. The database
//! helpers (`crate::db`) are shared with the benchmarks.

mod app;
mod process;
mod requests;
mod stripe;
mod tokens;

pub use app::*;
pub use process::*;
pub use stripe::*;
pub use tokens::*;
