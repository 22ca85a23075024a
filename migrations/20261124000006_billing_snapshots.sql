-- A daily snapshot of recurring revenue per currency, for the operators'
-- chart. Written once a day (one instance at a time); the first run backfills
-- earlier months from subscriptions' lifetimes, marked as estimates.
CREATE TABLE billing_snapshots (
    day          BIGINT NOT NULL,   -- the UTC day's start, unix seconds
    currency     TEXT NOT NULL,
    mrr          BIGINT NOT NULL,   -- minor units a month: active and past_due
    in_trial     BIGINT NOT NULL,   -- minor units a month: trialing
    subscriptions BIGINT NOT NULL,  -- counted in mrr
    estimate     BOOLEAN NOT NULL,
    taken_at     BIGINT NOT NULL,
    PRIMARY KEY (day, currency)
);
