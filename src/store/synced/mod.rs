//! Stripe state as we keep it: each table declared once (`tables`), every
//! write guarded by its version (`upsert`, `version`), a batch written a
//! statement a table (`layers`, `write`).
//!
//! | file         | what                                                        |
//! |--------------|-------------------------------------------------------------|
//! | `version.rs` | which version is newer, and which cannot be told            |
//! | `row.rs`     | a synced row's fingerprint and upsert, `synced_table!`       |
//! | `tables.rs`  | the synced tables, each column named once                    |
//! | `upsert.rs`  | the version-guarded `INSERT … ON CONFLICT` built from them   |
//! | `layers.rs`  | a batch's rows in layers of distinct ids, written together   |
//! | `write.rs`   | a batch's writes inside a `Tx`, and whose Plans they changed |

mod layers;
mod row;
mod tables;
mod upsert;
mod version;
mod write;

pub use row::SyncedRow;
pub use tables::{
    CustomerRow, EntitlementsRow, FeatureRow, InvoiceRow, PaymentMethodRow, PriceRow, ProductRow,
    SubscriptionItemRow, SubscriptionRow,
};
pub use upsert::FETCHED;
pub use version::{Uncertain, Version};
pub use write::SyncedRows;
