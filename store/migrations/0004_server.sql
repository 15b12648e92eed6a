-- What the server needs beside the engine's first tables: the outbox's
-- consumers, chat and webhook requests, releases, what adapters remember.
-- One migration, written as the state it leads to (it replaced ten small
-- ones before any server ran on them).

-- Each consumer of the outbox (GitHub, Slack, a terminal...) keeps its
-- own place in it: an event waits for every consumer named here when it
-- is added, and is delivered (the row goes), retried or parked for each
-- on its own, so that a failing consumer neither holds back the others
-- nor makes them hear an event twice. The outbox keeps the events, each
-- with its pipeline's identity; its delivery columns of the first schema
-- go, rebuilt away (cheaper than dropping columns).
CREATE TABLE outbox_events (
  seq           INTEGER PRIMARY KEY AUTOINCREMENT,
  pipeline_id   TEXT NOT NULL,
  kind          TEXT NOT NULL,
  data_json     TEXT NOT NULL,
  pipeline_json TEXT NOT NULL DEFAULT '{}',
  created_at    INTEGER NOT NULL
);
INSERT INTO outbox_events (seq, pipeline_id, kind, data_json, created_at)
  SELECT seq, pipeline_id, kind, data_json, created_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_events RENAME TO outbox;
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

-- A pipeline's number is reserved before its config is planned (so that
-- << pipeline.number >> is its own), once per pipeline ID: a start tried
-- again after a crash gets the same number.
CREATE TABLE pipeline_numbers (
  id     TEXT PRIMARY KEY,
  app    TEXT NOT NULL,
  number INTEGER NOT NULL
);
-- Why a pipeline whose config could not be planned ended in error;
-- everyone the change is from (the pusher, the commit's author), as chat
-- identities where they could be matched; the pipeline it runs again;
-- what people see of its commit.
ALTER TABLE pipelines ADD COLUMN error TEXT NOT NULL DEFAULT '';
ALTER TABLE pipelines ADD COLUMN authors_json TEXT NOT NULL DEFAULT '[]';
ALTER TABLE pipelines ADD COLUMN rerun_of INTEGER NOT NULL DEFAULT 0;
ALTER TABLE pipelines ADD COLUMN commit_json TEXT NOT NULL DEFAULT '{}';

-- What an attempt's native steps reported (an image's digest, a version label).
ALTER TABLE attempts ADD COLUMN outputs_json TEXT NOT NULL DEFAULT '{}';

-- A release is what one pipeline deployed to one environment, however
-- many jobs it took: history and rollback work on releases, numbered per
-- environment, with what its deploy jobs shipped. deployments stay, one
-- row per successful deploy job.
CREATE TABLE releases (
  id             TEXT PRIMARY KEY,
  app            TEXT NOT NULL,
  env            TEXT NOT NULL,
  number         INTEGER NOT NULL,
  pipeline_id    TEXT NOT NULL REFERENCES pipelines (id),
  commit_sha     TEXT NOT NULL,
  version        TEXT NOT NULL,
  started_by     TEXT NOT NULL,
  approved_by    TEXT NOT NULL DEFAULT '',
  outcome        TEXT NOT NULL,
  rollback       INTEGER NOT NULL DEFAULT 0,
  artifacts_json TEXT NOT NULL DEFAULT '{}',
  created_at     INTEGER NOT NULL,
  finished_at    INTEGER NOT NULL DEFAULT 0,
  UNIQUE (pipeline_id, env),
  UNIQUE (app, env, number)
);

-- What an adapter remembers across restarts, by namespace: the GitHub
-- notifier's posted statuses and deployment IDs, a Slack thread's ts.
CREATE TABLE kv (
  namespace TEXT NOT NULL,
  key       TEXT NOT NULL,
  value     TEXT NOT NULL,
  PRIMARY KEY (namespace, key)
);

-- Requests from outside (webhook deliveries, chat commands) from the
-- moment they were acknowledged until they were handled. The payload is
-- kept after, for the record and the dashboard. Deliveries were only ever
-- deduplicated by ID in the first schema; the inbox does that too.
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
DROP TABLE webhook_deliveries;
