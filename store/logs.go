package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// What an attempt's log keeps in memory before it becomes a file: the
// log of an attempt that ends within smallLogAge having printed at most
// smallLog bytes is stored as a row of job_logs, in the transaction that
// records the attempt's end (FinishAttempt), any other as a file of its
// own in the logs folder, written as it comes from then on.
//
// BenchmarkJobLog (logs_test.go) wrote, on the development VM: a 4 MiB
// log in 4 KiB writes, 22 ms as a file against 97 ms as 64 KiB chunks in
// SQLite; a one-line log, 0.9 ms as a file (creating it is a metadata
// operation on a busy disk) against 0.16 ms as a row. Builds that matter
// print megabytes, which must not grow the WAL that the engine's small
// state transactions share, and a file is tailed live with a seek; the
// many short jobs that print a few lines (a lint, a notification, a
// `true`) would each pay for a file: as a row, the one-line log took
// 0.05 ms against 0.22 ms as a file when measured again beside a busy
// neighbour (the file's cost swings with the disk), and nothing more as
// part of the transaction that ends the attempt. A process that dies
// loses what a log held in memory: at most smallLogAge of the output of
// an attempt that the next start fails as interrupted anyway.
const (
	smallLog    = 64 << 10
	smallLogAge = time.Second
)

// jobLog is an attempt's log being written, or closed and waiting in
// memory for the transaction that ends its attempt.
type jobLog struct {
	s     *DB
	id    string
	timer *time.Timer

	mu     sync.Mutex
	buf    []byte
	f      *os.File // once the log is a file
	err    error
	closed bool
	stored bool // a row or a file holds it all: memory no longer does
}

// CreateJobLog opens an attempt's log for writing, from the start.
func (s *DB) CreateJobLog(ctx context.Context, attemptID string) (io.WriteCloser, error) {
	l := &jobLog{s: s, id: attemptID}
	s.liveLogs.Store(attemptID, l)
	l.timer = time.AfterFunc(s.logAge, l.tooOld)
	return l, nil
}

// tooOld makes a log still open after smallLogAge a file; one closed
// that long ago without its attempt's end being recorded (the engine
// abandoned the attempt) is stored as a row on its own.
func (l *jobLog) tooOld() {
	l.mu.Lock()
	if !l.closed {
		if l.f == nil && l.err == nil {
			l.spill()
		}
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	if l.storeAlone(context.Background()) == nil {
		return
	}
	// Not lost for all that: a file does as well.
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stored && l.f == nil && l.spill() == nil {
		l.f.Close()
		l.stored = true
		l.s.liveLogs.Delete(l.id)
	}
}

func (l *jobLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, os.ErrClosed
	}
	if l.err != nil {
		return 0, l.err
	}
	if l.f == nil && len(l.buf)+len(p) <= smallLog {
		l.buf = append(l.buf, p...)
		return len(p), nil
	}
	if l.f == nil && l.spill() != nil {
		return 0, l.err
	}
	n, err := l.f.Write(p)
	if err != nil {
		l.err = fmt.Errorf("store: job log: %w", err)
	}
	return n, l.err
}

// spill makes the log a file, with what it held so far. It is called
// with mu held.
func (l *jobLog) spill() error {
	f, err := os.Create(logPath(l.s.logDir, l.id))
	if err == nil {
		if _, err = f.Write(l.buf); err != nil {
			f.Close()
		}
	}
	if err != nil {
		l.err = fmt.Errorf("store: job log: %w", err)
		return l.err
	}
	l.f, l.buf = f, nil
	return nil
}

// Close ends the log. A log in memory stays there for the transaction
// that records its attempt's end (storeLog); a file is closed.
func (l *jobLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return l.err
	}
	l.closed = true
	if l.f == nil && l.err == nil {
		// Stored on its own if no attempt's end takes it in time.
		l.timer.Reset(l.s.logAge)
		return nil
	}
	l.timer.Stop()
	if l.f != nil {
		if err := l.f.Close(); err != nil {
			l.err = errors.Join(l.err, fmt.Errorf("store: job log: %w", err))
		}
	}
	l.stored = true
	// Readers find the file once the log is no longer live.
	l.s.liveLogs.Delete(l.id)
	return l.err
}

// storeLog adds the log of an attempt, closed and still in memory, to the
// transaction t as a row; once t commits, memory lets it go.
func (t *tx) storeLog(ctx context.Context, attemptID string) error {
	v, ok := t.db.liveLogs.Load(attemptID)
	if !ok {
		return nil
	}
	l := v.(*jobLog)
	wrote, err := l.insert(ctx, t.q)
	if wrote {
		t.AfterCommit(l.markStored)
	}
	return err
}

// insert writes the log as a row through q if it is closed, in memory
// and not stored yet (a row already there stays), and says whether it
// did. A log still open is left alone: it is not all there yet.
func (l *jobLog) insert(ctx context.Context, q runner) (bool, error) {
	l.mu.Lock()
	data, ready := l.buf, l.closed && l.f == nil && l.err == nil && !l.stored
	l.mu.Unlock()
	if !ready {
		return false, nil
	}
	if data == nil {
		data = []byte{} // an empty log, not NULL
	}
	if _, err := q.ExecContext(ctx, `INSERT INTO job_logs (attempt_id, data) VALUES (?, ?) ON CONFLICT DO NOTHING`, l.id, data); err != nil {
		return false, err
	}
	return true, nil
}

// markStored lets go of a log that a committed row now holds.
func (l *jobLog) markStored() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stored {
		return
	}
	l.stored, l.buf = true, nil
	l.timer.Stop()
	l.s.liveLogs.Delete(l.id)
}

// storeClosedLogs stores, each as a row, the closed logs still in memory;
// Close calls it so that the logs of attempts abandoned at shutdown are
// kept.
func (s *DB) storeClosedLogs(ctx context.Context) {
	s.liveLogs.Range(func(_, v any) bool {
		v.(*jobLog).storeAlone(ctx)
		return true
	})
}

// storeAlone stores the log, if closed and in memory, as a row in a
// transaction of its own (storeLog's, without an attempt's end).
func (l *jobLog) storeAlone(ctx context.Context) error {
	var wrote bool
	return l.s.updateThen(ctx, func(tx *sqlx.Tx) (err error) {
		wrote, err = l.insert(ctx, l.s.inTx(tx))
		return err
	}, func() {
		if wrote {
			l.markStored()
		}
	})
}

// JobLog opens an attempt's log for reading: what it holds so far while
// the attempt runs, all of it once it ended.
func (s *DB) JobLog(ctx context.Context, attemptID string) (io.ReadCloser, error) {
	if v, ok := s.liveLogs.Load(attemptID); ok {
		l := v.(*jobLog)
		l.mu.Lock()
		inMemory, snapshot := l.f == nil && !l.stored, bytes.Clone(l.buf)
		l.mu.Unlock()
		if inMemory {
			return io.NopCloser(bytes.NewReader(snapshot)), nil
		}
	}
	var data []byte
	err := sqlx.GetContext(ctx, s.run(), &data, `SELECT data FROM job_logs WHERE attempt_id = ?`, attemptID)
	if err == nil {
		return io.NopCloser(bytes.NewReader(data)), nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: job log: %w", err)
	}
	var path string
	if err := sqlx.GetContext(ctx, s.run(), &path, `SELECT log_path FROM attempts WHERE id = ?`, attemptID); err != nil {
		return nil, fmt.Errorf("store: %w", notFound("attempt", attemptID, err))
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		// An attempt that a dead process was running before its log
		// became a file has none.
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: job log: %w", err)
	}
	return f, nil
}
