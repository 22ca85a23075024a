-- How many Stripe customers this organization has lost (deleted): part of
-- the idempotency key that creates its next one, so Stripe never replays
-- the creation of a customer since deleted.
ALTER TABLE organizations ADD COLUMN customer_generation BIGINT NOT NULL DEFAULT 0;
