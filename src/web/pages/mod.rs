//! HTML handlers, one resource a file. Errors are `PageError`, so every
//! failure is a page; views come from `crate::views`.

pub mod admin;
pub mod checkout;
pub mod export;
pub mod home;
pub mod organization;
