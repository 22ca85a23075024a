-- The price nickname (or a pre-2018 plan's name) a subscription was synced
-- with: shown when its product's name is not known.
ALTER TABLE subscriptions ADD COLUMN plan_name TEXT;

-- The Events-API catch-up: the `created` of the newest event it has seen
-- (unix seconds; it resumes a safety overlap before it), and how the last
-- run went. One row.
CREATE TABLE events_catchup (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    cursor_created BIGINT NOT NULL,
    last_run_at BIGINT,
    last_seen BIGINT NOT NULL DEFAULT 0,
    last_applied BIGINT NOT NULL DEFAULT 0,
    last_error TEXT
);

-- Webhook health counts events per API version.
CREATE INDEX stripe_events_api_version ON stripe_events (api_version);
