-- A debit has no customer, payment or grant of its own. The ledger's
-- indexes of those columns now hold only the rows that have them, so a
-- debit no longer writes an entry of NULL into each of the three.
DROP INDEX credit_ledger_customer;
CREATE INDEX credit_ledger_customer ON credit_ledger (customer_id) WHERE customer_id IS NOT NULL;
DROP INDEX credit_ledger_payment;
CREATE INDEX credit_ledger_payment ON credit_ledger (payment_intent)
    WHERE payment_intent IS NOT NULL;
DROP INDEX credit_ledger_grant_ref;
CREATE INDEX credit_ledger_grant_ref ON credit_ledger (grant_ref) WHERE grant_ref IS NOT NULL;
