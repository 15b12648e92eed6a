-- The number of the pipeline a pipeline runs again (a rerun from chat).
ALTER TABLE pipelines ADD COLUMN rerun_of INTEGER NOT NULL DEFAULT 0;
