-- Purchases undone: a refund, a lost dispute or a credit note takes back
-- the credits its purchase granted. A purchase keeps the payment that paid
-- it; a clawback names the purchase it takes from (`<type>:<id>`).
ALTER TABLE credit_ledger ADD COLUMN payment_intent TEXT;
ALTER TABLE credit_ledger ADD COLUMN grant_ref TEXT;
CREATE INDEX credit_ledger_payment ON credit_ledger (payment_intent);
CREATE INDEX credit_ledger_grant_ref ON credit_ledger (grant_ref);

-- What Stripe said was undone, kept whether or not its purchase is known
-- yet (events come in any order): settled against the purchase when both
-- are here. `part` of `whole` was undone; a lost dispute is all of it, and
-- a credit note's `whole` (0 here) is its invoice's total.
CREATE TABLE credit_reversals (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,   -- refund | dispute_lost | credit_note
    payment_intent TEXT,
    invoice        TEXT,
    part           BIGINT NOT NULL,
    whole          BIGINT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX credit_reversals_payment ON credit_reversals (payment_intent);
CREATE INDEX credit_reversals_invoice ON credit_reversals (invoice);
