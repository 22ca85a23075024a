//! Builds the customers' kept Plans documents (`store::synced_plans`) off
//! the request path: those this instance's commits cleared, each once its
//! customer has had no change for two seconds, so a burst of deliveries to
//! one customer builds its document once, after the burst; and at most a
//! few hundred a second, so a long burst cannot take the database from the
//! requests. Until it is built a customer's pages read the parts from the
//! rows, so nothing shows late.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;

const TICK: Duration = Duration::from_millis(250);
const PER_TICK: usize = 100;
const SETTLE: Duration = Duration::from_secs(2);

/// Builds what is due every tick until `stop`.
pub async fn run(store: Store, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(TICK) => {}
        }
        let built = tokio::select! {
            () = stop.cancelled() => return,
            built = store.build_synced_plans(SETTLE, PER_TICK) => built,
        };
        if let Err(err) = built {
            log::warn!("the Plans documents could not be built: {err}");
        }
    }
}
