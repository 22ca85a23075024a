//! Reconciliation: fetch the current objects from Stripe and apply them with
//! the same rules and code paths as webhooks.
