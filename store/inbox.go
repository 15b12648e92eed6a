package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// Receive keeps a request from outside until it is handled; it reports
// false, changing nothing, when the sender's ID was received before.
func (s *DB) Receive(ctx context.Context, it engine.InboxItem) (bool, error) {
	var n int64
	err := s.update(ctx, func(tx *sqlx.Tx) error {
		res, err := s.inTx(tx).ExecContext(ctx, `INSERT INTO inbox (source, id, kind, payload, received_at, next_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source, id) DO NOTHING`,
			it.Source, it.ID, it.Kind, it.Payload, nanos(it.Received), nanos(it.Received))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: receive %s %s: %w", it.Source, it.ID, err)
	}
	return n == 1, nil
}

// PendingInbox lists a source's requests not yet handled whose time has
// come, oldest first; at most limit.
func (s *DB) PendingInbox(ctx context.Context, source string, now time.Time, limit int) ([]engine.InboxItem, error) {
	var rows []struct {
		ID         string `db:"id"`
		Kind       string `db:"kind"`
		Payload    []byte `db:"payload"`
		ReceivedAt int64  `db:"received_at"`
		Attempts   int    `db:"attempts"`
	}
	if err := sqlx.SelectContext(ctx, s.run(), &rows, `SELECT id, kind, payload, received_at, attempts FROM inbox
		WHERE source = ? AND handled_at = 0 AND next_at <= ? ORDER BY received_at, rowid LIMIT ?`,
		source, nanos(now), limit); err != nil {
		return nil, fmt.Errorf("store: pending inbox: %w", err)
	}
	out := make([]engine.InboxItem, len(rows))
	for i, r := range rows {
		out[i] = engine.InboxItem{Source: source, ID: r.ID, Kind: r.Kind, Payload: r.Payload, Received: fromNanos(r.ReceivedAt), Attempts: r.Attempts}
	}
	return out, nil
}

// NextInboxDue is when a source's earliest request waiting for a retry is
// due; zero when none waits.
func (s *DB) NextInboxDue(ctx context.Context, source string) (time.Time, error) {
	var n int64
	if err := sqlx.GetContext(ctx, s.run(), &n, `SELECT coalesce(min(next_at), 0) FROM inbox WHERE source = ? AND handled_at = 0`,
		source); err != nil {
		return time.Time{}, fmt.Errorf("store: next inbox: %w", err)
	}
	return fromNanos(n), nil
}

// HandledInbox records that a request was handled, and how.
func (s *DB) HandledInbox(ctx context.Context, source, id, result string, at time.Time) error {
	err := s.update(ctx, func(tx *sqlx.Tx) error {
		return exec1(ctx, s.inTx(tx), "inbox item", id, `UPDATE inbox SET handled_at = ?, result = ? WHERE source = ? AND id = ?`,
			nanos(at), result, source, id)
	})
	if err != nil {
		return fmt.Errorf("store: handled %s %s: %w", source, id, err)
	}
	return nil
}

// RetryInbox records that handling a request failed, and when to try again.
func (s *DB) RetryInbox(ctx context.Context, source, id string, next time.Time, cause string) error {
	err := s.update(ctx, func(tx *sqlx.Tx) error {
		return exec1(ctx, s.inTx(tx), "inbox item", id, `UPDATE inbox SET attempts = attempts + 1, next_at = ?, last_error = ?
			WHERE source = ? AND id = ?`, nanos(next), cause, source, id)
	})
	if err != nil {
		return fmt.Errorf("store: retry %s %s: %w", source, id, err)
	}
	return nil
}

// InboxResult is how a received request was handled: its result, or ""
// while it waits; ErrNotFound when it was never received.
func (s *DB) InboxResult(ctx context.Context, source, id string) (handled bool, result string, err error) {
	var r struct {
		HandledAt int64  `db:"handled_at"`
		Result    string `db:"result"`
	}
	if err := sqlx.GetContext(ctx, s.run(), &r, `SELECT handled_at, result FROM inbox WHERE source = ? AND id = ?`, source, id); err != nil {
		return false, "", fmt.Errorf("store: inbox %s %s: %w", source, id, notFound("inbox item", id, err))
	}
	return r.HandledAt != 0, r.Result, nil
}
