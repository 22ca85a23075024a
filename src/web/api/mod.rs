//! JSON handlers, one resource a file. Errors are `ApiError`, so every
//! failure has the contract's body.

mod body;
pub mod credits;
pub mod entitlements;
pub mod health;
pub mod invoices;
pub mod plan_state;
pub mod portal;
pub mod usage;
pub mod webhooks;
