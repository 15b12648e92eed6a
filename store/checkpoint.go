package store

import (
	"context"
	"time"
)

// A durable store checkpoints its WAL in the background. SQLite's own
// checkpoint runs in the commit that takes the WAL past 1,000 pages and
// waits for the disk there: under a stream of webhook deliveries one
// answer in a hundred took 25 ms instead of 2. The writer connection has
// automatic checkpoints off; checkpointer copies the WAL into the database
// (PASSIVE: writers and readers go on) from a connection of the pool a
// short while after writes, so the fsyncs happen off every request's path.
// A WAL that readers keep from being reset is restarted once it is large,
// as SQLite would have done.

const (
	checkpointEvery = 200 * time.Millisecond
	// checkpointRestartPages is the WAL size, in pages, past which a
	// checkpoint waits for readers (RESTART) so that the WAL starts over.
	checkpointRestartPages = 16384 // 64 MB of 4 KB pages
)

// autoCheckpointOff turns SQLite's checkpoint-on-commit off on the writer
// connection; it is called with wmu held, or before the DB is shared.
func (s *DB) autoCheckpointOff(ctx context.Context) error {
	_, err := s.w.ExecContext(ctx, "PRAGMA wal_autocheckpoint=0")
	return err
}

// checkpointer checkpoints the WAL when there were writes since the last
// time, until stop is closed; Close waits for it and SQLite checkpoints
// once more as the last connection closes.
func (s *DB) checkpointer(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	seen := s.commits.Load()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		n := s.commits.Load()
		if n == seen {
			continue
		}
		seen = n
		s.checkpoint(context.Background())
	}
}

// checkpoint copies what the WAL holds into the database file.
func (s *DB) checkpoint(ctx context.Context) {
	var busy, log, done int
	err := s.db.QueryRowxContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done)
	if err != nil || log < checkpointRestartPages || done == log {
		return // a failed checkpoint is tried again after the next writes
	}
	s.db.QueryRowxContext(ctx, "PRAGMA wal_checkpoint(RESTART)").Scan(&busy, &log, &done)
}
