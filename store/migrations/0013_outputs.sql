-- What an attempt's native steps reported (an image's digest, a version
-- label), and what a release shipped: its deploy jobs' outputs gathered.
ALTER TABLE attempts ADD COLUMN outputs_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE releases ADD COLUMN artifacts_json TEXT NOT NULL DEFAULT '{}';
