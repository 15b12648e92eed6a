-- A pipeline's number is reserved before its config is planned (so that
-- << pipeline.number >> is its own), once per pipeline ID: a start tried
-- again after a crash gets the same number.
CREATE TABLE pipeline_numbers (
  id     TEXT PRIMARY KEY,
  app    TEXT NOT NULL,
  number INTEGER NOT NULL
);

-- Why a pipeline whose config could not be planned ended in error.
ALTER TABLE pipelines ADD COLUMN error TEXT NOT NULL DEFAULT '';
