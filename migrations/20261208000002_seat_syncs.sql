-- Seats that follow members (`BILLING_SEATS=members`): an organization
-- whose members changed waits here until its per-seat quantity is set in
-- Stripe. The first change of a burst makes it due after the debounce and
-- later ones join it (`generation` counts them), so a burst of invitations
-- makes one update; a change while the update runs leaves the row for
-- another round. `burst` names the burst in the Stripe idempotency key.
-- Times are milliseconds.
CREATE TABLE seat_syncs (
    org_id     TEXT PRIMARY KEY,
    burst      TEXT NOT NULL,
    generation BIGINT NOT NULL,
    due_at_ms  BIGINT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX seat_syncs_due ON seat_syncs (due_at_ms);
