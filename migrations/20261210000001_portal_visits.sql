-- The newest portal visit of each organization, written by the audit's
-- writer in the transaction of the entries: the one question the Plans tab
-- asks of the audit. The audit itself then needs no index by organization,
-- whose entries landed on pages at random, one written per click.
CREATE TABLE portal_visits (
    org_id     TEXT PRIMARY KEY,
    visited_at BIGINT NOT NULL
);

INSERT INTO portal_visits (org_id, visited_at)
SELECT org_id, MAX(created_at) FROM billing_audit WHERE action = 'portal' GROUP BY org_id;

DROP INDEX billing_audit_org;
