-- Billing state synced from Stripe. Portable SQL for SQLite and PostgreSQL.
-- Money: integer minor units beside a currency. Times: UTC unix seconds.
--
-- Every synced row remembers the version that wrote it: the `created` of the
-- event (or the time of a reconciliation fetch), a rank that breaks
-- same-second ties by the object's own state (a canceled or deleted object
-- outranks an update of the same second), and the source (event id) as the
-- last tie-breaker. A write applies only when its version is greater, so any
-- delivery order leaves the same rows. `content_hash` fingerprints the synced
-- fields, so reconciliation can report what really changed.

CREATE TABLE stripe_events (
    id           TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    created      BIGINT NOT NULL,
    api_version  TEXT,
    livemode     BOOLEAN NOT NULL,
    payload      TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    processed_at BIGINT,
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE INDEX stripe_events_received ON stripe_events (received_at);
CREATE INDEX stripe_events_failed ON stripe_events (processed_at, last_error);

CREATE TABLE customers (
    id                     TEXT PRIMARY KEY,
    org_id                 TEXT,
    email                  TEXT,
    name                   TEXT,
    default_payment_method TEXT,
    deleted                BOOLEAN NOT NULL DEFAULT FALSE,
    content_hash           TEXT NOT NULL DEFAULT '',
    event_created          BIGINT NOT NULL,
    event_rank             BIGINT NOT NULL,
    event_source           TEXT NOT NULL,
    updated_at             BIGINT NOT NULL
);

CREATE TABLE subscriptions (
    id                     TEXT PRIMARY KEY,
    customer_id            TEXT NOT NULL,
    status                 TEXT NOT NULL,
    price_id               TEXT,
    product_id             TEXT,
    quantity               BIGINT,
    currency               TEXT,
    unit_amount            BIGINT,
    recurring_interval     TEXT,
    interval_count         BIGINT,
    current_period_start   BIGINT,
    current_period_end     BIGINT,
    cancel_at_period_end   BOOLEAN NOT NULL,
    cancel_at              BIGINT,
    canceled_at            BIGINT,
    ended_at               BIGINT,
    trial_start            BIGINT,
    trial_end              BIGINT,
    default_payment_method TEXT,
    created                BIGINT NOT NULL,
    content_hash           TEXT NOT NULL DEFAULT '',
    event_created          BIGINT NOT NULL,
    event_rank             BIGINT NOT NULL,
    event_source           TEXT NOT NULL,
    updated_at             BIGINT NOT NULL
);
CREATE INDEX subscriptions_customer ON subscriptions (customer_id);

CREATE TABLE subscription_items (
    id                   TEXT PRIMARY KEY,
    subscription_id      TEXT NOT NULL,
    price_id             TEXT,
    product_id           TEXT,
    quantity             BIGINT,
    currency             TEXT,
    unit_amount          BIGINT,
    recurring_interval   TEXT,
    interval_count       BIGINT,
    current_period_start BIGINT,
    current_period_end   BIGINT
);
CREATE INDEX subscription_items_subscription ON subscription_items (subscription_id);

CREATE TABLE invoices (
    id                 TEXT PRIMARY KEY,
    customer_id        TEXT NOT NULL,
    subscription_id    TEXT,
    number             TEXT,
    status             TEXT,
    currency           TEXT NOT NULL,
    amount_due         BIGINT NOT NULL,
    amount_paid        BIGINT NOT NULL,
    amount_remaining   BIGINT NOT NULL,
    total              BIGINT NOT NULL,
    hosted_invoice_url TEXT,
    invoice_pdf        TEXT,
    period_start       BIGINT,
    period_end         BIGINT,
    created            BIGINT NOT NULL,
    deleted            BOOLEAN NOT NULL DEFAULT FALSE,
    content_hash       TEXT NOT NULL DEFAULT '',
    event_created      BIGINT NOT NULL,
    event_rank         BIGINT NOT NULL,
    event_source       TEXT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX invoices_customer_created ON invoices (customer_id, created, id);

CREATE TABLE payment_methods (
    id            TEXT PRIMARY KEY,
    customer_id   TEXT,              -- NULL once detached
    type          TEXT NOT NULL,
    brand         TEXT,
    last4         TEXT,
    exp_month     BIGINT,
    exp_year      BIGINT,
    content_hash  TEXT NOT NULL DEFAULT '',
    event_created BIGINT NOT NULL,
    event_rank    BIGINT NOT NULL,
    event_source  TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX payment_methods_customer ON payment_methods (customer_id);

CREATE TABLE products (
    id            TEXT PRIMARY KEY,
    name          TEXT,
    description   TEXT,
    active        BOOLEAN NOT NULL,
    deleted       BOOLEAN NOT NULL DEFAULT FALSE,
    content_hash  TEXT NOT NULL DEFAULT '',
    event_created BIGINT NOT NULL,
    event_rank    BIGINT NOT NULL,
    event_source  TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE prices (
    id                 TEXT PRIMARY KEY,
    product_id         TEXT,
    active             BOOLEAN NOT NULL,
    currency           TEXT NOT NULL,
    unit_amount        BIGINT,
    type               TEXT,
    recurring_interval TEXT,
    interval_count     BIGINT,
    nickname           TEXT,
    lookup_key         TEXT,
    credits            BIGINT,           -- metadata.credits: credits one unit grants
    deleted            BOOLEAN NOT NULL DEFAULT FALSE,
    content_hash       TEXT NOT NULL DEFAULT '',
    event_created      BIGINT NOT NULL,
    event_rank         BIGINT NOT NULL,
    event_source       TEXT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX prices_product ON prices (product_id);

-- Credits: one row per grant, unique per source, so a grant happens exactly once.
CREATE TABLE credit_ledger (
    source_type TEXT NOT NULL,           -- checkout_session | invoice
    source_id   TEXT NOT NULL,
    org_id      TEXT,
    customer_id TEXT,
    amount      BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (source_type, source_id)
);
CREATE INDEX credit_ledger_org ON credit_ledger (org_id);
CREATE INDEX credit_ledger_customer ON credit_ledger (customer_id);
