//! What the store keeps in memory in front of the database, and how it stays
//! current: the Plans tab's reads and the entitlement facts (`reads`), organizations with a customer on
//! the portal's hot path (`orgs`), and, on PostgreSQL, the other instances'
//! announcements of what they changed (`change_feed`).

pub(super) mod change_feed;
pub(super) mod orgs;
pub(super) mod reads;

pub(super) use orgs::OrgCache;
pub(super) use reads::{CacheKey, Caches, Changed};
