-- Objects whose newest version could not be ordered from what Stripe sent
-- (two versions of one second and state rank with different content, or a
-- fetch and an event of the same second): fetched again from Stripe once
-- due, unless a version newer than `tie_created` is stored first. One row an
-- object, so a burst of ties makes one fetch.
CREATE TABLE refetch_queue (
    object_table TEXT NOT NULL,      -- the synced table, which names the kind
    object_id    TEXT NOT NULL,
    tie_created  BIGINT NOT NULL,    -- the second whose versions tied
    due_at       BIGINT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    PRIMARY KEY (object_table, object_id)
);
CREATE INDEX refetch_queue_due ON refetch_queue (due_at);
