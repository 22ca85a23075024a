-- The customer an event is about, read at ingest, so an organization's
-- events are found by index instead of by searching every payload.
ALTER TABLE stripe_events ADD COLUMN customer_id TEXT;
CREATE INDEX stripe_events_customer ON stripe_events (customer_id, created);
