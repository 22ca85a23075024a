-- Credits that expire (`CREDITS_EXPIRE_AFTER`): each grant made while it is
-- set is a lot, keyed like the ledger row that granted it. Debits,
-- negative adjustments and clawbacks take from the lots that expire soonest
-- (a clawback from its own lot first); what is left of a lot when it
-- expires leaves the balance as an `expiry` row of the ledger. Credits
-- granted while expiry was off have no lot and never expire: the balance
-- beyond the lots' `remaining` is theirs, and is spent last.
CREATE TABLE credit_lots (
    source_type TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    org_id      TEXT NOT NULL,
    amount      BIGINT NOT NULL,
    remaining   BIGINT NOT NULL,
    granted_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (source_type, source_id)
);
CREATE INDEX credit_lots_open ON credit_lots (org_id, expires_at) WHERE remaining > 0;
CREATE INDEX credit_lots_due ON credit_lots (expires_at) WHERE remaining > 0;
