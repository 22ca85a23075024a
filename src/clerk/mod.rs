//! Everything about Clerk's wire format beside session tokens (`auth`):
//! its webhooks (Svix-signed) and the objects they carry.

pub mod api;
pub mod events;
pub mod svix;
