-- Each consumer of the outbox (GitHub, Slack, a terminal...) keeps its
-- own place in it: an event waits for every consumer the engine had
-- when it was added, and is delivered (the row goes), retried or parked
-- for each on its own, so that a failing consumer neither holds back the
-- others nor makes them hear an event twice.
-- Delivery state moves from outbox to outbox_pending. Events the single
-- notifier of the first schema never heard had no consumer name; no
-- server ran on that schema, only `slipway run`, whose stores are
-- temporary.
DROP INDEX outbox_pending;
DROP INDEX outbox_undelivered;
ALTER TABLE outbox DROP COLUMN attempts;
ALTER TABLE outbox DROP COLUMN next_at;
ALTER TABLE outbox DROP COLUMN last_error;
ALTER TABLE outbox DROP COLUMN delivered_at;

-- The consumers of the server that last started; an event added by any
-- process waits for each of them.
CREATE TABLE outbox_consumers (
  name TEXT PRIMARY KEY
);

CREATE TABLE outbox_pending (
  consumer    TEXT NOT NULL,
  seq         INTEGER NOT NULL REFERENCES outbox (seq),
  pipeline_id TEXT NOT NULL,
  attempts    INTEGER NOT NULL DEFAULT 0,
  next_at     INTEGER NOT NULL,
  last_error  TEXT NOT NULL DEFAULT '',
  parked      INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (consumer, seq)
);
CREATE INDEX outbox_pending_head ON outbox_pending (consumer, pipeline_id, seq) WHERE parked = 0;

-- Every event carries its pipeline's identity.
ALTER TABLE outbox ADD COLUMN pipeline_json TEXT NOT NULL DEFAULT '{}';

