-- The customer an event is about, recorded at ingest, so an organization's
-- events are found without searching every payload. Its index is led by the
-- receipt time in microseconds, which grows with every batch: each batch's
-- entries go to the index's end (an index led by the customer would cost a
-- write of a random page per event), and a customer's recent events are
-- read newest first from it, checked on the index entries alone.
ALTER TABLE stripe_events ADD COLUMN customer_id TEXT;
ALTER TABLE stripe_events ADD COLUMN received_at_us BIGINT;
UPDATE stripe_events SET received_at_us = received_at * 1000000;
CREATE INDEX stripe_events_customer ON stripe_events (received_at_us, customer_id);
