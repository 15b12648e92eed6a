-- Requests from outside (webhook deliveries, chat commands) from the
-- moment they were acknowledged until they were handled. The payload is
-- kept after, for the record and the dashboard.
CREATE TABLE inbox (
  source      TEXT NOT NULL,
  id          TEXT NOT NULL,
  kind        TEXT NOT NULL,
  payload     BLOB NOT NULL,
  received_at INTEGER NOT NULL,
  attempts    INTEGER NOT NULL DEFAULT 0,
  next_at     INTEGER NOT NULL,
  last_error  TEXT NOT NULL DEFAULT '',
  handled_at  INTEGER NOT NULL DEFAULT 0,
  result      TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (source, id)
);
CREATE INDEX inbox_pending ON inbox (source, next_at) WHERE handled_at = 0;

-- Deliveries were only ever deduplicated by ID; the inbox does that too.
DROP TABLE webhook_deliveries;
