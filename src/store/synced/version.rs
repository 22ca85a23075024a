//! Which version of an object is newer, and which cannot be told.

use super::upsert::FETCHED;

/// Which write wins: the greater (created, rank). Two versions of one
/// object with equal (created, rank) but different content cannot be
/// ordered from what Stripe sent (event ids are not time-ordered), and
/// neither can a fetch and an event of the same second: the stored one is
/// kept and the object is queued to be fetched again (`Uncertain`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Version {
    /// The event's `created`, or the second of a fetch.
    pub created: i64,
    /// Breaks same-second ties by the object's own state.
    pub rank: i64,
    /// The event id, or `FETCHED`: which write this was, never an order.
    pub source: String,
}

impl Version {
    /// What orders two versions.
    pub fn order(&self) -> (i64, i64) {
        (self.created, self.rank)
    }

    pub fn is_fetched(&self) -> bool {
        self.source == FETCHED
    }

    /// Whether `self` and `other`, of different content, leave their order
    /// unknown: the same second and rank, or a fetch and anything else of
    /// the same second (the fetch saw the state at some instant of it).
    pub fn ambiguous_with(&self, other: &Version) -> bool {
        self.created == other.created
            && (self.rank == other.rank || self.is_fetched() || other.is_fetched())
    }
}

/// An object whose newest version could not be ordered: fetched again from
/// Stripe (`store::refetch`), unless a newer version comes first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncertain {
    /// Its table, which names its kind.
    pub table: &'static str,
    pub id: String,
    /// The second of the versions that could not be ordered.
    pub created: i64,
}
