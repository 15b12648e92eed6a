-- Orb versions fetched from the orb registry, kept so that a version is
-- fetched once and serves while the registry is down; and what partial
-- versions (@5, @5.1, @volatile) last resolved to.
CREATE TABLE orb_versions (
  name       TEXT NOT NULL,
  version    TEXT NOT NULL,
  source     BLOB NOT NULL,
  fetched_at INTEGER NOT NULL,
  PRIMARY KEY (name, version)
);

CREATE TABLE orb_pins (
  name        TEXT NOT NULL,
  ref         TEXT NOT NULL,
  version     TEXT NOT NULL,
  resolved_at INTEGER NOT NULL,
  PRIMARY KEY (name, ref)
);
