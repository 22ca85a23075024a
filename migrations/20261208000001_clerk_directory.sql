-- What Clerk says of organizations and their members, from its webhooks
-- (through Svix) and `clerk sync`. Clerk's times are milliseconds:
-- `clerk_updated_at` and `version` order the changes, so a late, older
-- delivery changes nothing.
ALTER TABLE organizations ADD COLUMN name TEXT;
ALTER TABLE organizations ADD COLUMN image_url TEXT;
ALTER TABLE organizations ADD COLUMN clerk_updated_at BIGINT;
-- When Clerk deleted it (unix seconds). Its billing is left to an operator.
ALTER TABLE organizations ADD COLUMN deleted_at BIGINT;

-- One row per member: a removal stays as a tombstone (`deleted`), so a
-- late delivery of the membership it removed cannot bring it back.
CREATE TABLE organization_members (
    org_id     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    role       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    deleted    BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);

-- Clerk deliveries by `svix-id`, recorded with what they changed: a
-- redelivery is answered as a duplicate and changes nothing.
CREATE TABLE clerk_deliveries (
    svix_id     TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
