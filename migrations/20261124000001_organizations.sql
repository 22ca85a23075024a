-- Portable SQL: this file runs on both SQLite and PostgreSQL.
-- Times are UTC unix seconds.
CREATE TABLE organizations (
    id                 TEXT PRIMARY KEY,          -- Clerk organization id (org_…)
    slug               TEXT,
    stripe_customer_id TEXT UNIQUE,               -- cus_…; NULL until the org first pays
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
