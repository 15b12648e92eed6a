-- The outbox keeps every event it delivered. Scanning for undelivered
-- ones in order went through all of them at every delivery pass, a cost
-- that grew with the store's age; this index holds only what is left.
CREATE INDEX outbox_undelivered ON outbox (seq) WHERE delivered_at = 0;
