//! All SQL lives here. The service runs on SQLite (zero set-up) or PostgreSQL
//! (several instances); each query is written once in portable SQL (`$1`
//! placeholders, `ON CONFLICT`, `RETURNING`) and compiled for both backends by
//! `with_pool!`, so both keep their native types and connection options.
//!
//! A limit or offset that is a parameter is written `LIMIT CAST($n AS BIGINT)`:
//! SQLite plans a limit that is a bare parameter with the value bound to it,
//! and so prepares the statement again at every run (a test keeps it so).
//!
//! | file                   | what                                                   |
//! |------------------------|--------------------------------------------------------|
//! | `pool.rs`              | `Store` over either backend, connections, migrations   |
//! | `worker_reads.rs`      | SQLite reads on an HTTP worker's own connections       |
//! | `tx.rs`                | `Tx`, a write transaction on either backend            |
//! | `synced/`              | Stripe state: each table declared once, version-guarded|
//! | `sets/`                | many rows (or ids) in one statement, on either backend |
//! | `organizations.rs`     | organizations, one row each                            |
//! | `customer_links.rs`    | an organization's link to its Stripe customer          |
//! | `directory.rs`         | Clerk's names of organizations, and their members      |
//! | `seat_syncs.rs`        | per-seat quantities waiting to be set in Stripe        |
//! | `events.rs`            | the log of Stripe events                               |
//! | `plan_state.rs`        | an organization's plan state and invoices (API, pages) |
//! | `plans_document/`      | the Plans tab's whole read in one statement            |
//! | `synced_plans.rs`      | each customer's synced Plans parts, kept as a document |
//! | `plans_to_build.rs`    | the kept documents this instance is to build           |
//! | `catalog.rs`           | prices on offer                                        |
//! | `credits.rs`           | the credits ledger and balances, adjustments           |
//! | `credit_grants.rs`     | credits purchases grant                                |
//! | `credit_debits.rs`     | debits by idempotency key                              |
//! | `credit_reversals.rs`  | refunds, lost disputes, credit notes to claw back      |
//! | `credit_lots.rs`       | credits that expire: lots, spent soonest-expiring first |
//! | `checkout_sessions.rs` | sessions created here, and foreign ones flagged        |
//! | `admin.rs`             | the operators' reads                                   |
//! | `entitlements.rs`      | active features, product features, access facts        |
//! | `audit.rs`             | the audit log, written off the request path            |
//! | `health.rs`            | catch-up state, API versions seen, newest event        |
//! | `jobs.rs`              | one-instance-at-a-time locks for background jobs       |
//! | `metric_state.rs`      | queues and ages read when metrics are scraped          |
//! | `refetch.rs`           | objects to fetch again when versions cannot be ordered |
//! | `overview.rs`          | revenue, statuses, risk, snapshots, the export         |
//! | `usage.rs`             | the usage outbox: records until Stripe's meters have them |
//! | `cache/`               | in-memory reads kept current by every commit           |

mod admin;
mod audit;
mod cache;
mod catalog;
mod checkout_sessions;
mod credit_debits;
mod credit_grants;
mod credit_lots;
mod credit_reversals;
mod credits;
mod customer_links;
mod directory;
mod entitlements;
mod error;
mod events;
mod health;
mod jobs;
mod metric_state;
mod organizations;
mod overview;
mod plan_state;
mod plans_document;
mod plans_to_build;
mod pool;
mod refetch;
mod seat_syncs;
mod sets;
mod synced;
mod synced_plans;
mod tx;
mod usage;
mod worker_reads;

pub use admin::{AdminFilter, AdminOrgRow};
pub use audit::{AuditEntry, AuditLog};
pub use catalog::CatalogPrice;
pub use checkout_sessions::{CheckoutReturn, ForeignCheckout};
pub use credit_debits::{DebitAnswerRow, DebitKey, DebitRecord};
pub use credit_grants::CreditGrant;
pub use credit_lots::{CreditLot, expired_by_org, spend_by_org};
pub use credit_reversals::{PaidGrant, Reversal};
pub use credits::CreditEntry;
pub use customer_links::{LinkError, LinkOutcome};
pub use directory::OrgMember;
pub use entitlements::{ENTITLEMENTS_TTL_SECS, EntitlementFacts, ProductFeature, Standing};
pub use error::StoreError;
pub use events::{EventRecord, StoredEvent};
pub use health::{CatchUpRun, CatchUpState, VersionCount};
pub use jobs::JobLock;
pub use organizations::Organization;
pub use overview::{
    AtRisk, EventsOnDay, ExportRow, Lifetime, RecurringGroup, Snapshot, StatusCount,
};
pub use plan_state::{BillingState, Card, InvoiceLine, InvoiceView, Plans, SubscriptionView};
pub use plans_document::{PLANS_HISTORY, PeriodUsage};
pub use pool::Store;
pub(crate) use pool::{is_unique_violation, with_pool};
pub use refetch::{REFETCH_DELAY_SECS, Refetch};
pub use seat_syncs::{SeatSubscription, SeatSync, SeatsOutOfStep};
pub use synced::{
    CustomerRow, EntitlementsRow, FETCHED, FeatureRow, InvoiceRow, PaymentMethodRow, PriceRow,
    ProductRow, SubscriptionItemRow, SubscriptionRow, SyncedRow, SyncedRows, Uncertain, Version,
};
pub use synced_plans::BuiltPlans;
pub use tx::Tx;
pub(crate) use tx::with_tx;
pub use usage::{DueUsage, FailedUsage, MeterUsage, NewUsage, Recorded};

use pool::Pool;
use tx::{StoreCaches, TxConn};

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every `.rs` file under `dir`, with its text.
    fn sources(dir: &Path, found: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push((
                    path.display().to_string(),
                    std::fs::read_to_string(&path).unwrap(),
                ));
            }
        }
    }

    #[test]
    fn no_statement_limits_its_rows_by_a_bare_parameter() {
        let mut found = Vec::new();
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store"),
            &mut found,
        );
        for (path, text) in found {
            for clause in ["LIMIT", "OFFSET"] {
                let bare = format!("{clause} $");
                assert!(
                    !text.contains(&bare),
                    "{path}: `{bare}n` makes SQLite prepare the statement at every run; \
                     write `{clause} CAST($n AS BIGINT)`"
                );
            }
        }
    }
}
