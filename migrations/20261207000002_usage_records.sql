-- Usage the product's services report, kept until Stripe's meter events
-- API has it: an outbox. Sent in order of arrival (`id` is a UUIDv7), each
-- under its `identifier`, which Stripe deduplicates; one that Stripe
-- refuses for good is `failed` with Stripe's reason, for an operator.
CREATE TABLE usage_records (
    id              TEXT PRIMARY KEY,
    identifier      TEXT NOT NULL UNIQUE,
    org_id          TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    meter           TEXT NOT NULL,
    value           BIGINT NOT NULL,
    occurred_at     BIGINT NOT NULL,
    received_at     BIGINT NOT NULL,
    status          TEXT NOT NULL,   -- pending | sent | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    sent_at         BIGINT,
    last_error      TEXT
);
CREATE INDEX usage_records_due ON usage_records (status, next_attempt_at, id);
CREATE INDEX usage_records_org ON usage_records (org_id, occurred_at);
