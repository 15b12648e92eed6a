package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// SetConsumers names the outbox's consumers: each event added from now
// on, by this process or another on the same file, waits for each of them.
func (s *DB) SetConsumers(ctx context.Context, names []string) error {
	err := s.update(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM outbox_consumers`); err != nil {
			return err
		}
		for _, n := range names {
			if _, err := tx.ExecContext(ctx, `INSERT INTO outbox_consumers (name) VALUES (?)`, n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: set consumers: %w", err)
	}
	return nil
}

// addEvents stores events in the outbox, each pending for every consumer,
// and sets their Seq.
func addEvents(ctx context.Context, tx runner, events []engine.Event) error {
	for i, e := range events {
		text, err := jsonTexts(e.Data, e.Pipeline)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO outbox (pipeline_id, kind, data_json, pipeline_json, created_at)
			VALUES (?, ?, ?, ?, ?)`, e.PipelineID, e.Kind, text[0], text[1], nanos(e.At))
		if err != nil {
			return err
		}
		if events[i].Seq, err = res.LastInsertId(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox_pending (consumer, seq, pipeline_id, next_at)
			SELECT name, ?, ?, ? FROM outbox_consumers`, events[i].Seq, e.PipelineID, nanos(e.At)); err != nil {
			return err
		}
	}
	return nil
}

// DueEvents returns a consumer's undelivered events, oldest first, of the
// pipelines whose oldest undelivered event is due: a later event of a
// pipeline is never handed out while an earlier one waits for a retry.
// Parked events hold nothing back.
func (s *DB) DueEvents(ctx context.Context, consumer string, now time.Time, limit int) ([]engine.Event, error) {
	var rows []struct {
		Seq        int64  `db:"seq"`
		PipelineID string `db:"pipeline_id"`
		Kind       string `db:"kind"`
		Data       string `db:"data_json"`
		Pipeline   string `db:"pipeline_json"`
		CreatedAt  int64  `db:"created_at"`
		Attempts   int    `db:"attempts"`
	}
	if err := sqlx.SelectContext(ctx, s.run(), &rows, `SELECT o.seq, o.pipeline_id, o.kind, o.data_json, o.pipeline_json,
		  o.created_at, p.attempts
		FROM outbox_pending p JOIN outbox o ON o.seq = p.seq
		WHERE p.consumer = ? AND p.parked = 0
		  AND (SELECT h.next_at FROM outbox_pending h WHERE h.consumer = p.consumer AND h.pipeline_id = p.pipeline_id
		       AND h.parked = 0 ORDER BY h.seq LIMIT 1) <= ?
		ORDER BY p.seq LIMIT ?`, consumer, nanos(now), limit); err != nil {
		return nil, fmt.Errorf("store: due events: %w", err)
	}
	out := make([]engine.Event, len(rows))
	for i, r := range rows {
		out[i] = engine.Event{Seq: r.Seq, PipelineID: r.PipelineID, Kind: r.Kind, At: fromNanos(r.CreatedAt), Attempts: r.Attempts}
		if err := json.Unmarshal([]byte(r.Data), &out[i].Data); err != nil {
			return nil, fmt.Errorf("store: event %d: %w", r.Seq, err)
		}
		if err := json.Unmarshal([]byte(r.Pipeline), &out[i].Pipeline); err != nil {
			return nil, fmt.Errorf("store: event %d: %w", r.Seq, err)
		}
	}
	return out, nil
}

// NextEventDue is when a consumer's earliest undelivered event is due;
// zero when none is. Only each pipeline's oldest undelivered event
// counts: the later ones wait for it, whatever their own time.
func (s *DB) NextEventDue(ctx context.Context, consumer string) (time.Time, error) {
	var n int64
	if err := sqlx.GetContext(ctx, s.run(), &n, `SELECT coalesce(min(h.next_at), 0) FROM outbox_pending h
		WHERE h.consumer = ? AND h.parked = 0
		  AND h.seq = (SELECT min(seq) FROM outbox_pending WHERE consumer = h.consumer AND pipeline_id = h.pipeline_id AND parked = 0)`,
		consumer); err != nil {
		return time.Time{}, fmt.Errorf("store: next event: %w", err)
	}
	return fromNanos(n), nil
}

// MarkEventsDelivered records that events reached a consumer.
func (s *DB) MarkEventsDelivered(ctx context.Context, consumer string, seqs []int64, at time.Time) error {
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
		_, err := s.inTx(tx).ExecContext(ctx, `DELETE FROM outbox_pending WHERE consumer = ? AND seq IN (SELECT value FROM json_each(?))`,
			consumer, string(list))
		return err
	}); err != nil {
		return fmt.Errorf("store: mark events: %w", err)
	}
	return nil
}

// DeferEvent records a failed delivery and when to try again.
func (s *DB) DeferEvent(ctx context.Context, consumer string, seq int64, next time.Time, cause string) error {
	if err := s.update(ctx, func(tx *sqlx.Tx) error {
		_, err := s.inTx(tx).ExecContext(ctx, `UPDATE outbox_pending SET next_at = ?, last_error = ?, attempts = attempts + 1
			WHERE consumer = ? AND seq = ?`, nanos(next), cause, consumer, seq)
		return err
	}); err != nil {
		return fmt.Errorf("store: defer event %d: %w", seq, err)
	}
	return nil
}

// ParkEvent sets aside an event its consumer refused for good.
func (s *DB) ParkEvent(ctx context.Context, consumer string, seq int64, cause string) error {
	if err := s.update(ctx, func(tx *sqlx.Tx) error {
		_, err := s.inTx(tx).ExecContext(ctx, `UPDATE outbox_pending SET parked = 1, last_error = ?, attempts = attempts + 1
			WHERE consumer = ? AND seq = ?`, cause, consumer, seq)
		return err
	}); err != nil {
		return fmt.Errorf("store: park event %d: %w", seq, err)
	}
	return nil
}

// ParkedEvents lists a consumer's parked events with why, oldest first.
func (s *DB) ParkedEvents(ctx context.Context, consumer string) ([]ParkedEvent, error) {
	var rows []ParkedEvent
	if err := sqlx.SelectContext(ctx, s.run(), &rows, `SELECT p.seq, p.pipeline_id, o.kind, p.last_error
		FROM outbox_pending p JOIN outbox o ON o.seq = p.seq WHERE p.consumer = ? AND p.parked = 1 ORDER BY p.seq`, consumer); err != nil {
		return nil, fmt.Errorf("store: parked events: %w", err)
	}
	return rows, nil
}

// ParkedEvent is an event a consumer refused for good.
type ParkedEvent struct {
	Seq        int64  `db:"seq"`
	PipelineID string `db:"pipeline_id"`
	Kind       string `db:"kind"`
	Cause      string `db:"last_error"`
}
