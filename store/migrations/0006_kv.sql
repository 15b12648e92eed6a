-- What an adapter remembers across restarts, by namespace: the GitHub
-- notifier's posted statuses and deployment IDs, a Slack thread's ts.
CREATE TABLE kv (
  namespace TEXT NOT NULL,
  key       TEXT NOT NULL,
  value     TEXT NOT NULL,
  PRIMARY KEY (namespace, key)
);
