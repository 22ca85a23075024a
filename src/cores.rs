//! Which core a thread runs on. The writers (`billing::writers`) take the
//! last of the cores this process may use, as the first tends to take the
//! most interrupts; HTTP workers reading SQLite through connections of their
//! own (`READS_PIN`, `server`) take the cores in turn.

use core_affinity::CoreId;

/// The cores this process may use, in order.
pub fn available() -> Vec<CoreId> {
    core_affinity::get_core_ids().unwrap_or_default()
}

/// The writers' core.
pub fn writers() -> Option<CoreId> {
    available().last().copied()
}

/// Holds the calling thread, `who`, to `core`. Not every platform lets a
/// thread choose its core: then it runs on any, slower, not wrong.
pub fn hold(who: &str, core: Option<CoreId>) {
    match core {
        Some(core) if core_affinity::set_for_current(core) => {
            log::debug!("{who} runs on core {}", core.id);
        }
        _ => log::info!("could not hold {who} to one core; it runs on any"),
    }
}
