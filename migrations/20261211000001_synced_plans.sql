-- The part of a customer's Plans tab that only Stripe's deliveries change
-- (subscriptions, the card, the newest invoices, the subscribed products'
-- features, when last synced), kept as one JSON document so that a page
-- reads one row instead of assembling them from every table.
--
-- Every transaction that changes a customer's synced rows moves its
-- `version` on and clears its `document`, before it commits; a page finds
-- no document then and reads the parts themselves. The instance that
-- committed builds the document again once the customer settles, reading
-- the version in the same statement, and writes it only where the version
-- is still that one, so a document never shows less than what was
-- committed before it. No other index: clearing a document changes no
-- indexed column, so PostgreSQL updates the row in place (HOT).
CREATE TABLE synced_plans (
    customer_id TEXT PRIMARY KEY,
    version     BIGINT NOT NULL,
    document    TEXT                -- NULL: to build
);

-- Every linked customer starts with a document to build.
INSERT INTO synced_plans (customer_id, version, document)
SELECT DISTINCT stripe_customer_id, 1, NULL FROM organizations
WHERE stripe_customer_id IS NOT NULL;
