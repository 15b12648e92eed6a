-- Times are INTEGER nanoseconds since the Unix epoch, UTC; 0 means unset.
-- JSON columns hold values the engine reads whole and never queries into.

CREATE TABLE counters (
  name  TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);

CREATE TABLE pipelines (
  id           TEXT PRIMARY KEY,
  app          TEXT NOT NULL,
  number       INTEGER NOT NULL,
  repo         TEXT NOT NULL,
  author       TEXT NOT NULL,
  trigger_json TEXT NOT NULL,
  source_json  TEXT NOT NULL,
  status       TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  finished_at  INTEGER NOT NULL DEFAULT 0,
  UNIQUE (app, number)
);
CREATE INDEX pipelines_active ON pipelines (created_at) WHERE finished_at = 0;

CREATE TABLE workflows (
  id          TEXT PRIMARY KEY,
  pipeline_id TEXT NOT NULL REFERENCES pipelines (id),
  seq         INTEGER NOT NULL,
  name        TEXT NOT NULL,
  status      TEXT NOT NULL,
  canceled    INTEGER NOT NULL DEFAULT 0,
  created_at  INTEGER NOT NULL,
  finished_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX workflows_pipeline ON workflows (pipeline_id, seq);

CREATE TABLE jobs (
  id            TEXT PRIMARY KEY,
  pipeline_id   TEXT NOT NULL REFERENCES pipelines (id),
  workflow_id   TEXT NOT NULL REFERENCES workflows (id),
  seq           INTEGER NOT NULL,
  name          TEXT NOT NULL,
  job           TEXT NOT NULL,
  type          TEXT NOT NULL,
  requires_json TEXT NOT NULL,
  context_json  TEXT NOT NULL,
  spec_json     TEXT NOT NULL,
  env           TEXT NOT NULL DEFAULT '',
  status        TEXT NOT NULL,
  reason        TEXT NOT NULL DEFAULT '',
  attempt       INTEGER NOT NULL DEFAULT 0,
  attempt_id    TEXT NOT NULL DEFAULT '',
  exit_code     INTEGER NOT NULL DEFAULT 0,
  started_at    INTEGER NOT NULL DEFAULT 0,
  finished_at   INTEGER NOT NULL DEFAULT 0,
  UNIQUE (workflow_id, name)
);
CREATE INDEX jobs_pipeline ON jobs (pipeline_id);

CREATE TABLE attempts (
  id          TEXT PRIMARY KEY,
  job_id      TEXT NOT NULL REFERENCES jobs (id),
  number      INTEGER NOT NULL,
  build_num   INTEGER NOT NULL,
  executor    TEXT NOT NULL,
  status      TEXT NOT NULL,
  exit_code   INTEGER NOT NULL DEFAULT 0,
  reason      TEXT NOT NULL DEFAULT '',
  log_path    TEXT NOT NULL,
  started_at  INTEGER NOT NULL,
  finished_at INTEGER NOT NULL DEFAULT 0,
  UNIQUE (job_id, number)
);
CREATE INDEX attempts_running ON attempts (started_at) WHERE status = 'running';

CREATE TABLE steps (
  attempt_id  TEXT NOT NULL REFERENCES attempts (id),
  idx         INTEGER NOT NULL,
  name        TEXT NOT NULL,
  status      TEXT NOT NULL,
  exit_code   INTEGER NOT NULL,
  started_at  INTEGER NOT NULL,
  finished_at INTEGER NOT NULL,
  PRIMARY KEY (attempt_id, idx)
);

CREATE TABLE approvals (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id         TEXT NOT NULL REFERENCES jobs (id),
  pipeline_id    TEXT NOT NULL REFERENCES pipelines (id),
  envs_json      TEXT NOT NULL,
  approvers_json TEXT NOT NULL,
  allow_self     INTEGER NOT NULL,
  author         TEXT NOT NULL,
  status         TEXT NOT NULL,
  decided_by     TEXT NOT NULL DEFAULT '',
  reason         TEXT NOT NULL DEFAULT '',
  created_at     INTEGER NOT NULL,
  decided_at     INTEGER NOT NULL DEFAULT 0,
  expires_at     INTEGER NOT NULL
);
CREATE INDEX approvals_job ON approvals (job_id, id);
CREATE INDEX approvals_pending ON approvals (expires_at) WHERE status = 'pending';

CREATE TABLE deployments (
  id          TEXT PRIMARY KEY,
  app         TEXT NOT NULL,
  env         TEXT NOT NULL,
  commit_sha  TEXT NOT NULL,
  version     TEXT NOT NULL,
  pipeline_id TEXT NOT NULL REFERENCES pipelines (id),
  job_id      TEXT NOT NULL REFERENCES jobs (id),
  attempt_id  TEXT NOT NULL UNIQUE REFERENCES attempts (id),
  started_by  TEXT NOT NULL,
  approved_by TEXT NOT NULL,
  outcome     TEXT NOT NULL,
  created_at  INTEGER NOT NULL
);
CREATE INDEX deployments_env ON deployments (app, env, created_at);

CREATE TABLE env_locks (
  app     TEXT NOT NULL,
  env     TEXT NOT NULL,
  holder  TEXT NOT NULL,
  reason  TEXT NOT NULL,
  manual  INTEGER NOT NULL,
  job_id  TEXT NOT NULL,
  since   INTEGER NOT NULL,
  PRIMARY KEY (app, env)
);

CREATE TABLE deploy_queue (
  seq         INTEGER PRIMARY KEY AUTOINCREMENT,
  app         TEXT NOT NULL,
  env         TEXT NOT NULL,
  job_id      TEXT NOT NULL UNIQUE REFERENCES jobs (id),
  pipeline_id TEXT NOT NULL,
  queued_at   INTEGER NOT NULL
);
CREATE INDEX deploy_queue_env ON deploy_queue (app, env, seq);

CREATE TABLE webhook_deliveries (
  id          TEXT PRIMARY KEY,
  event       TEXT NOT NULL,
  received_at INTEGER NOT NULL
);

CREATE TABLE outbox (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  pipeline_id  TEXT NOT NULL,
  kind         TEXT NOT NULL,
  data_json    TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  attempts     INTEGER NOT NULL DEFAULT 0,
  next_at      INTEGER NOT NULL,
  last_error   TEXT NOT NULL DEFAULT '',
  delivered_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_pending ON outbox (pipeline_id, seq) WHERE delivered_at = 0;

CREATE TABLE audit (
  seq     INTEGER PRIMARY KEY AUTOINCREMENT,
  at      INTEGER NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  subject TEXT NOT NULL,
  detail  TEXT NOT NULL
);
