package store

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/slipway-ci/slipway/workflows"
)

// DueEvents returns, for each pipeline, its oldest undelivered event when
// that one is due: a later event of a pipeline never overtakes an earlier
// one that is waiting for a retry.
func (s *DB) DueEvents(ctx context.Context, now time.Time, limit int) ([]workflows.Event, error) {
	var rows []struct {
		Seq        int64  `db:"seq"`
		PipelineID string `db:"pipeline_id"`
		Kind       string `db:"kind"`
		Data       string `db:"data_json"`
		CreatedAt  int64  `db:"created_at"`
		Attempts   int    `db:"attempts"`
	}
	if err := s.db.SelectContext(ctx, &rows, `SELECT o.seq, o.pipeline_id, o.kind, o.data_json, o.created_at, o.attempts
		FROM outbox o JOIN (SELECT min(seq) AS seq FROM outbox WHERE delivered_at = 0 GROUP BY pipeline_id) h ON h.seq = o.seq
		WHERE o.next_at <= ? ORDER BY o.seq LIMIT ?`, nanos(now), limit); err != nil {
		return nil, fmt.Errorf("store: due events: %w", err)
	}
	out := make([]workflows.Event, len(rows))
	for i, r := range rows {
		out[i] = workflows.Event{Seq: r.Seq, PipelineID: r.PipelineID, Kind: r.Kind, At: fromNanos(r.CreatedAt), Attempts: r.Attempts}
		if err := json.Unmarshal([]byte(r.Data), &out[i].Data); err != nil {
			return nil, fmt.Errorf("store: event %d: %w", r.Seq, err)
		}
	}
	return out, nil
}

// NextEventDue is when the earliest undelivered event is due; zero when none is.
func (s *DB) NextEventDue(ctx context.Context) (time.Time, error) {
	var n int64
	if err := s.db.GetContext(ctx, &n, `SELECT coalesce(min(next_at), 0) FROM outbox WHERE delivered_at = 0`); err != nil {
		return time.Time{}, fmt.Errorf("store: next event: %w", err)
	}
	return fromNanos(n), nil
}

// MarkEventDelivered records that an event reached the notifier.
func (s *DB) MarkEventDelivered(ctx context.Context, seq int64, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE outbox SET delivered_at = ?, attempts = attempts + 1 WHERE seq = ?`,
		nanos(at), seq); err != nil {
		return fmt.Errorf("store: mark event %d: %w", seq, err)
	}
	return nil
}

// DeferEvent records a failed delivery and when to try again.
func (s *DB) DeferEvent(ctx context.Context, seq int64, next time.Time, cause string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE outbox SET next_at = ?, last_error = ?, attempts = attempts + 1 WHERE seq = ?`,
		nanos(next), cause, seq); err != nil {
		return fmt.Errorf("store: defer event %d: %w", seq, err)
	}
	return nil
}

// CreateJobLog opens an attempt's log file for writing, from the start.
//
// Logs are files, not rows: BenchmarkJobLog measures a 4 MiB log written
// in 4 KiB pieces both ways (see logs_test.go) and chunks in SQLite cost
// several times more per byte, grow the WAL the engine's small state
// transactions share, and make tailing the log a query instead of a seek.
func (s *DB) CreateJobLog(ctx context.Context, attemptID string) (io.WriteCloser, error) {
	f, err := os.Create(logPath(s.logDir, attemptID))
	if err != nil {
		return nil, fmt.Errorf("store: job log: %w", err)
	}
	return f, nil
}

// JobLog opens an attempt's log for reading.
func (s *DB) JobLog(ctx context.Context, attemptID string) (io.ReadCloser, error) {
	var path string
	if err := s.db.GetContext(ctx, &path, `SELECT log_path FROM attempts WHERE id = ?`, attemptID); err != nil {
		return nil, fmt.Errorf("store: %w", notFound("attempt", attemptID, err))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: job log: %w", err)
	}
	return f, nil
}
