//! A batch of deliveries in one transaction, recorded and applied; when it
//! fails, each delivery again in one of its own, so only a failing one is
//! refused.

use std::collections::HashSet;

use super::{IngestError, Ingested, ReceivedEvent};
use crate::billing::apply::record_and_apply;
use crate::billing::{Change, apply_changes, plan};
use crate::store::{EventRecord, Store, StoreError, Tx};
use crate::stripe::objects::Event;

/// Records and applies `events` in one transaction. If it fails, each event
/// is redone in a transaction of its own, so only a failing event is refused.
/// Webhook deliveries and the Events-API catch-up both come through here.
pub async fn ingest_batch(
    store: &Store,
    events: &[ReceivedEvent],
) -> Vec<Result<Ingested, IngestError>> {
    ingest_in(store, store.begin().await, events).await
}

/// `ingest_batch`, its first attempt in `tx`.
pub(super) async fn ingest_in(
    store: &Store,
    tx: Result<Tx, StoreError>,
    events: &[ReceivedEvent],
) -> Vec<Result<Ingested, IngestError>> {
    let first_attempt = match tx {
        Ok(tx) => apply_in_one_transaction(tx, events).await,
        Err(err) => Err(err),
    };
    match first_attempt {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(err) if events.len() > 1 => {
            log::warn!(
                "a batch of {} event(s) failed ({err}); redoing them one by one",
                events.len()
            );
            let mut outcomes = Vec::with_capacity(events.len());
            for event in events {
                let one = match store.begin().await {
                    Ok(tx) => apply_in_one_transaction(tx, std::slice::from_ref(event)).await,
                    Err(err) => Err(err),
                };
                outcomes.push(one.map(|mut o| o.remove(0)).map_err(IngestError::from));
            }
            outcomes
        }
        Err(err) => vec![Err(IngestError::from(err))],
    }
}

/// All of `events` in one transaction, or none of them. A repeat of an id
/// inside the batch is a duplicate of its first delivery.
async fn apply_in_one_transaction(
    mut tx: Tx,
    events: &[ReceivedEvent],
) -> Result<Vec<Ingested>, StoreError> {
    let outcomes = apply_in(&mut tx, events).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// Records and applies `events` in `tx`, uncommitted.
pub(super) async fn apply_in(
    tx: &mut Tx,
    events: &[ReceivedEvent],
) -> Result<Vec<Ingested>, StoreError> {
    let mut first = HashSet::new();
    let firsts: Vec<bool> = events
        .iter()
        .map(|e| first.insert(e.event.id.as_str()))
        .collect();
    let first_deliveries: Vec<&ReceivedEvent> = events
        .iter()
        .zip(&firsts)
        .filter_map(|(received, first)| first.then_some(received))
        .collect();
    let records: Vec<EventRecord<'_>> = first_deliveries.iter().map(|r| record_of(r)).collect();
    let planned: Vec<(&str, &[Change])> = first_deliveries
        .iter()
        .filter_map(|received| {
            let changes = received.planned.as_ref().ok()?;
            Some((received.event.id.as_str(), changes.as_slice()))
        })
        .collect();
    let recorded = record_and_apply(tx, &records, &planned).await?;
    let (held, recorded) = (recorded.held, recorded.ids);
    let mut outcomes = Vec::with_capacity(events.len());
    for (received, first) in events.iter().zip(firsts) {
        let event = &received.event;
        if !first || !recorded.contains(&event.id) {
            outcomes.push(Ingested::Duplicate);
            continue;
        }
        match &received.planned {
            Ok(_) => match held.get(&event.id) {
                Some(reason) => outcomes.push(Ingested::Failed(reason.clone())),
                None => outcomes.push(Ingested::Applied),
            },
            Err(reason) => {
                log::error!(
                    "webhook event {} ({}) could not be applied: {reason}",
                    event.id,
                    event.kind
                );
                outcomes.push(Ingested::Failed(reason.clone()));
            }
        }
    }
    Ok(outcomes)
}

fn record_of(received: &ReceivedEvent) -> EventRecord<'_> {
    let event = &received.event;
    EventRecord {
        id: &event.id,
        kind: &event.kind,
        created: event.created,
        api_version: event.api_version.as_deref(),
        livemode: event.livemode,
        customer: received.customer.as_deref(),
        payload: &received.payload,
        failure: received.planned.as_ref().err().map(String::as_str),
    }
}

/// Applies an event whose record exists (marked processed); when its payload
/// cannot be applied, marks the record failed instead. Used by
/// `events replay`.
pub async fn apply_recorded(tx: &mut Tx, event: &Event) -> Result<Ingested, StoreError> {
    match plan(event) {
        Ok(changes) => {
            let applied = apply_changes(tx, &changes).await?;
            if let Some(reason) = applied.held.into_iter().next() {
                tx.mark_event_failed(&event.id, &reason).await?;
                return Ok(Ingested::Failed(reason));
            }
            Ok(Ingested::Applied)
        }
        Err(err) => {
            let reason = err.to_string();
            log::error!(
                "webhook event {} ({}) could not be applied: {reason}",
                event.id,
                event.kind
            );
            tx.mark_event_failed(&event.id, &reason).await?;
            Ok(Ingested::Failed(reason))
        }
    }
}
