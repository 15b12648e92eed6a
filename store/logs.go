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
// smallLog bytes is stored as a row of job_logs when it closes, any other
// as a file of its own in the logs folder, written as it comes from then on.
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
// neighbour (the file's cost swings with the disk). A process that dies loses what a
// log held in memory: at most smallLogAge of the output of an attempt
// that the next start fails as interrupted anyway.
const (
	smallLog    = 64 << 10
	smallLogAge = time.Second
)

// jobLog is an attempt's log being written.
type jobLog struct {
	s     *DB
	id    string
	timer *time.Timer

	mu     sync.Mutex
	buf    []byte
	f      *os.File // once the log is a file
	err    error
	closed bool
}

// CreateJobLog opens an attempt's log for writing, from the start.
func (s *DB) CreateJobLog(ctx context.Context, attemptID string) (io.WriteCloser, error) {
	l := &jobLog{s: s, id: attemptID}
	s.liveLogs.Store(attemptID, l)
	l.timer = time.AfterFunc(s.logAge, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if !l.closed && l.f == nil && l.err == nil {
			l.spill()
		}
	})
	return l, nil
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

// Close stores a log still in memory as a row, or closes its file.
func (l *jobLog) Close() error {
	l.timer.Stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return l.err
	}
	l.closed = true
	// Readers find the row or the file once the log is no longer live.
	defer l.s.liveLogs.Delete(l.id)
	if l.f == nil && l.err == nil {
		data := l.buf
		if data == nil {
			data = []byte{} // an empty log, not NULL
		}
		err := l.s.update(context.Background(), func(tx *sqlx.Tx) error {
			_, err := l.s.inTx(tx).ExecContext(context.Background(), `INSERT INTO job_logs (attempt_id, data) VALUES (?, ?)`, l.id, data)
			return err
		})
		if err == nil {
			l.buf = nil
			return nil
		}
		// Not lost for all that: a file does as well; the error still
		// says something is wrong with the database.
		if l.spill() == nil {
			l.err = fmt.Errorf("store: job log kept as a file: %w", err)
		} else {
			l.err = errors.Join(fmt.Errorf("store: job log: %w", err), l.err)
		}
	}
	if l.f != nil {
		if err := l.f.Close(); err != nil {
			l.err = errors.Join(l.err, fmt.Errorf("store: job log: %w", err))
		}
	}
	return l.err
}

// JobLog opens an attempt's log for reading: what it holds so far while
// the attempt runs, all of it once it ended.
func (s *DB) JobLog(ctx context.Context, attemptID string) (io.ReadCloser, error) {
	if v, ok := s.liveLogs.Load(attemptID); ok {
		l := v.(*jobLog)
		l.mu.Lock()
		inMemory, snapshot := l.f == nil && !l.closed, bytes.Clone(l.buf)
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
