package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// DueEvents returns undelivered events, oldest first, of the pipelines
// whose oldest undelivered event is due: a later event of a pipeline is
// never handed out while an earlier one waits for a retry.
func (s *DB) DueEvents(ctx context.Context, now time.Time, limit int) ([]engine.Event, error) {
	var rows []struct {
		Seq        int64  `db:"seq"`
		PipelineID string `db:"pipeline_id"`
		Kind       string `db:"kind"`
		Data       string `db:"data_json"`
		CreatedAt  int64  `db:"created_at"`
		Attempts   int    `db:"attempts"`
	}
	if err := sqlx.SelectContext(ctx, s.run(), &rows, `SELECT o.seq, o.pipeline_id, o.kind, o.data_json, o.created_at, o.attempts
		FROM outbox o JOIN outbox h ON h.pipeline_id = o.pipeline_id
		  AND h.seq = (SELECT min(seq) FROM outbox WHERE delivered_at = 0 AND pipeline_id = o.pipeline_id)
		WHERE o.delivered_at = 0 AND h.next_at <= ? ORDER BY o.seq LIMIT ?`, nanos(now), limit); err != nil {
		return nil, fmt.Errorf("store: due events: %w", err)
	}
	out := make([]engine.Event, len(rows))
	for i, r := range rows {
		out[i] = engine.Event{Seq: r.Seq, PipelineID: r.PipelineID, Kind: r.Kind, At: fromNanos(r.CreatedAt), Attempts: r.Attempts}
		if err := json.Unmarshal([]byte(r.Data), &out[i].Data); err != nil {
			return nil, fmt.Errorf("store: event %d: %w", r.Seq, err)
		}
	}
	return out, nil
}

// NextEventDue is when the earliest undelivered event is due; zero when
// none is. Only each pipeline's oldest undelivered event counts: the
// later ones wait for it, whatever their own time.
func (s *DB) NextEventDue(ctx context.Context) (time.Time, error) {
	var n int64
	if err := sqlx.GetContext(ctx, s.run(), &n, `SELECT coalesce(min(h.next_at), 0) FROM outbox h
		WHERE h.delivered_at = 0
		  AND h.seq = (SELECT min(seq) FROM outbox WHERE delivered_at = 0 AND pipeline_id = h.pipeline_id)`); err != nil {
		return time.Time{}, fmt.Errorf("store: next event: %w", err)
	}
	return fromNanos(n), nil
}

// MarkEventsDelivered records that events reached the notifier.
func (s *DB) MarkEventsDelivered(ctx context.Context, seqs []int64, at time.Time) error {
	if len(seqs) == 0 {
		return nil
	}
	// One statement for any number of events, so that it is prepared
	// once: the sequence numbers go in as a JSON array.
	list, err := json.Marshal(seqs)
	if err != nil {
		return fmt.Errorf("store: mark events: %w", err)
	}
	if err := s.update(ctx, func(tx *sqlx.Tx) error {
		_, err := s.inTx(tx).ExecContext(ctx, `UPDATE outbox SET delivered_at = ?, attempts = attempts + 1
			WHERE seq IN (SELECT value FROM json_each(?))`, nanos(at), string(list))
		return err
	}); err != nil {
		return fmt.Errorf("store: mark events: %w", err)
	}
	return nil
}

// DeferEvent records a failed delivery and when to try again.
func (s *DB) DeferEvent(ctx context.Context, seq int64, next time.Time, cause string) error {
	if err := s.update(ctx, func(tx *sqlx.Tx) error {
		_, err := s.inTx(tx).ExecContext(ctx, `UPDATE outbox SET next_at = ?, last_error = ?, attempts = attempts + 1 WHERE seq = ?`,
			nanos(next), cause, seq)
		return err
	}); err != nil {
		return fmt.Errorf("store: defer event %d: %w", seq, err)
	}
	return nil
}
