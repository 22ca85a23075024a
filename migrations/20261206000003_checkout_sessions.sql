-- Checkout sessions by the organization they name. `created_here` rows are
-- the sessions this service created (written before the browser is sent to
-- Stripe); the others are completed sessions it did not create whose
-- `client_reference_id` named an organization without the `metadata.org_id`
-- only a secret key can set (a Payment Link or Pricing Table lets a visitor
-- choose that id): never linked, kept for an operator to look at.
CREATE TABLE checkout_sessions (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL,
    customer_id  TEXT,
    created_here BOOLEAN NOT NULL,
    created_at   BIGINT NOT NULL,
    -- When a return link's refresh applied it: later loads of the link
    -- do not ask Stripe again.
    answered_at  BIGINT
);
CREATE INDEX checkout_sessions_flagged ON checkout_sessions (created_here, created_at);
