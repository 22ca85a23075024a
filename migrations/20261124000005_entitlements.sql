-- A customer's active features (Stripe's active entitlement summary): the
-- lookup keys as a sorted JSON array, replaced whole by each newer summary.
CREATE TABLE customer_entitlements (
    id           TEXT PRIMARY KEY,  -- the Stripe customer
    features     TEXT NOT NULL,
    event_created BIGINT NOT NULL,
    event_rank   BIGINT NOT NULL,
    event_source TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    content_hash TEXT NOT NULL
);

-- Entitlement features (`entitlements.feature`).
CREATE TABLE features (
    id           TEXT PRIMARY KEY,
    lookup_key   TEXT NOT NULL,
    name         TEXT,
    active       BOOLEAN NOT NULL,
    event_created BIGINT NOT NULL,
    event_rank   BIGINT NOT NULL,
    event_source TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    content_hash TEXT NOT NULL
);

-- Which features each product includes, as the catalog sync last read them.
CREATE TABLE product_features (
    product_id TEXT NOT NULL,
    feature_id TEXT NOT NULL,
    PRIMARY KEY (product_id, feature_id)
);

-- When a subscription became past_due (the grace period counts from it).
ALTER TABLE subscriptions ADD COLUMN past_due_since BIGINT;
