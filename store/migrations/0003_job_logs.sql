-- Logs of attempts that ended within a second with little output, kept
-- here instead of in a file of their own (see store/logs.go).
CREATE TABLE job_logs (
  attempt_id TEXT PRIMARY KEY,
  data       BLOB NOT NULL
);
