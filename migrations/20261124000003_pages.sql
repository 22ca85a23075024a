-- Who opened which Stripe session for which organization, for audit.
CREATE TABLE billing_audit (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    action            TEXT NOT NULL,   -- portal | checkout_subscription | checkout_credits
    stripe_session_id TEXT,
    created_at        BIGINT NOT NULL
);
CREATE INDEX billing_audit_org ON billing_audit (org_id, created_at);

-- When the organization's state was last fetched from Stripe on a page load
-- (after a return from the portal), so a return triggers one refresh.
ALTER TABLE organizations ADD COLUMN refreshed_at BIGINT;
