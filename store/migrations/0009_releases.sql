-- A release is what one pipeline deployed to one environment, however
-- many jobs it took: history and rollback work on releases, numbered per
-- environment. deployments stay, one row per successful deploy job.
CREATE TABLE releases (
  id          TEXT PRIMARY KEY,
  app         TEXT NOT NULL,
  env         TEXT NOT NULL,
  number      INTEGER NOT NULL,
  pipeline_id TEXT NOT NULL REFERENCES pipelines (id),
  commit_sha  TEXT NOT NULL,
  version     TEXT NOT NULL,
  started_by  TEXT NOT NULL,
  approved_by TEXT NOT NULL DEFAULT '',
  outcome     TEXT NOT NULL,
  rollback    INTEGER NOT NULL DEFAULT 0,
  created_at  INTEGER NOT NULL,
  finished_at INTEGER NOT NULL DEFAULT 0,
  UNIQUE (pipeline_id, env),
  UNIQUE (app, env, number)
);
CREATE INDEX releases_env ON releases (app, env, number);
