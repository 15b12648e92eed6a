-- What people see of a pipeline's commit: its title, author and link.
ALTER TABLE pipelines ADD COLUMN commit_json TEXT NOT NULL DEFAULT '{}';
