-- The credits wallet. `credit_ledger` holds every movement of an
-- organization's credits, one row each, keyed by what caused it so that it
-- happens once: a purchase (`checkout_session`, `invoice`), a `debit`, an
-- operator's `adjustment`. Rows are never updated, except that a grant made
-- before its customer was linked gets its organization when the link is made.
ALTER TABLE credit_ledger ADD COLUMN reason TEXT;
-- Who made an adjustment (a Clerk user id).
ALTER TABLE credit_ledger ADD COLUMN actor TEXT;
-- A debit's metadata, as the caller sent it (a JSON object).
ALTER TABLE credit_ledger ADD COLUMN metadata TEXT;
CREATE INDEX credit_ledger_history ON credit_ledger (org_id, created_at, source_type, source_id);

UPDATE credit_ledger SET org_id = (
    SELECT o.id FROM organizations o WHERE o.stripe_customer_id = credit_ledger.customer_id
) WHERE org_id IS NULL AND customer_id IS NOT NULL;

-- Each organization's balance, kept beside the ledger in the same
-- transaction: always the sum of its rows.
CREATE TABLE credit_balances (
    org_id     TEXT PRIMARY KEY,
    balance    BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
INSERT INTO credit_balances (org_id, balance, updated_at)
SELECT org_id, SUM(amount), MAX(created_at) FROM credit_ledger
WHERE org_id IS NOT NULL GROUP BY org_id;

-- A debit request by its `Idempotency-Key`: the same key answers the same
-- response, and the request it was first sent with is kept as a hash, so a
-- different body under the same key is refused.
CREATE TABLE credit_debit_requests (
    org_id          TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    status          INTEGER NOT NULL,
    response        TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (org_id, idempotency_key)
);
