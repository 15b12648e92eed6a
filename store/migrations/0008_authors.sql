-- Everyone a change is from (the pusher, the commit's author), as chat
-- identities where they could be matched: self-approval is refused to
-- each of them.
ALTER TABLE pipelines ADD COLUMN authors_json TEXT NOT NULL DEFAULT '[]';
