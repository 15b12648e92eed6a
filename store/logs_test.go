package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// chunkLog is the alternative to a file per attempt that BenchmarkJobLog
// measures: the log in the database, in chunks of up to 64 KiB.
type chunkLog struct {
	db      *DB
	attempt string
	seq     int
	buf     []byte
}

func (c *chunkLog) Write(p []byte) (int, error) {
	c.buf = append(c.buf, p...)
	if len(c.buf) >= 64<<10 {
		return len(p), c.flush()
	}
	return len(p), nil
}

func (c *chunkLog) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	c.db.wmu.Lock()
	defer c.db.wmu.Unlock()
	_, err := c.db.db.Exec(`INSERT INTO bench_log_chunks (attempt_id, seq, data) VALUES (?, ?, ?)`, c.attempt, c.seq, c.buf)
	c.seq++
	c.buf = c.buf[:0]
	return err
}

func (c *chunkLog) Close() error { return c.flush() }

// BenchmarkJobLog writes job logs three ways: as a file of their own,
// through CreateJobLog (a row when small, a file otherwise), and as 64 KiB
// chunks in the database; a small one (one step's header and a line) and
// a 4 MiB one in 4 KiB writes, as a chatty build does. It justifies the
// choices of CreateJobLog (see logs.go).
func BenchmarkJobLog(b *testing.B) {
	line := bytes.Repeat([]byte("x"), 4095)
	line = append(line, '\n')
	for _, size := range []struct {
		name   string
		writes int
	}{{"small", 1}, {"4MiB", 1024}} {
		for _, how := range []string{"file", "store", "chunks"} {
			b.Run(size.name+"/"+how, func(b *testing.B) {
				ctx := context.Background()
				db := openTest(b)
				if _, err := db.db.Exec(`CREATE TABLE bench_log_chunks (attempt_id TEXT, seq INTEGER, data BLOB, PRIMARY KEY (attempt_id, seq))`); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(size.writes * len(line)))
				for i := 0; b.Loop(); i++ {
					id := fmt.Sprint("attempt-", i)
					var w io.WriteCloser = &chunkLog{db: db, attempt: id}
					var err error
					switch how {
					case "file":
						w, err = os.Create(logPath(db.logDir, id))
					case "store":
						w, err = db.CreateJobLog(ctx, id)
					}
					if err != nil {
						b.Fatal(err)
					}
					for range size.writes {
						if _, err := w.Write(line); err != nil {
							b.Fatal(err)
						}
					}
					if err := w.Close(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func TestJobLogsAreRowsWhenShortAndQuiet(t *testing.T) {
	long := bytes.Repeat([]byte("x"), smallLog)
	tests := []struct {
		name   string
		writes [][]byte
		pause  time.Duration // before the last write
		file   bool          // whether the log ends as a file
	}{
		{"a few lines", [][]byte{[]byte("==> true\n"), []byte("done\n")}, 0, false},
		{"nothing", nil, 0, false},
		{"more than fits in memory", [][]byte{[]byte("==> cat\n"), long}, 0, true},
		{"still running after the memory time", [][]byte{[]byte("==> sleep\n"), []byte("late\n")}, 100 * time.Millisecond, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t)
			db.logAge = 20 * time.Millisecond
			ctx := context.Background()
			id := fmt.Sprint("attempt-", i)
			read := func() string { return readLog(t, db, id) }
			if _, err := createPipeline(ctx, db, newPipeline("p1", "a"), nil); err != nil {
				t.Fatal(err)
			}
			if err := db.Update(ctx, func(tx engine.StoreTx) error {
				return tx.StartAttempt(ctx, &engine.AttemptRecord{ID: id, JobID: "p1-j", Started: time.Now()}, "a")
			}); err != nil {
				t.Fatal(err)
			}
			w, err := db.CreateJobLog(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			for j, p := range tt.writes {
				if j == len(tt.writes)-1 {
					time.Sleep(tt.pause)
				}
				if _, err := w.Write(p); err != nil {
					t.Fatal(err)
				}
				want = append(want, p...)
				if got := read(); got != string(want) {
					t.Fatalf("while running, log = %.40q, want %.40q", got, want)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got := read(); got != string(want) {
				t.Errorf("closed, log = %.40q, want %.40q", got, want)
			}
			// The row is written with the attempt's end.
			if err := db.Update(ctx, func(tx engine.StoreTx) error {
				return tx.FinishAttempt(ctx, &engine.AttemptRecord{ID: id, JobID: "p1-j", Status: workflows.StatusSuccess, Finished: time.Now()})
			}); err != nil {
				t.Fatal(err)
			}
			if _, live := db.liveLogs.Load(id); live {
				t.Error("the log is still held in memory once its attempt ended")
			}
			if got := read(); got != string(want) {
				t.Errorf("attempt ended, log = %.40q, want %.40q", got, want)
			}
			_, err = os.Stat(logPath(db.logDir, id))
			if isFile := err == nil; isFile != tt.file {
				t.Errorf("log is a file: %v, want %v", isFile, tt.file)
			}
			if isRow := countRows(t, db, id) == 1; isRow == tt.file {
				t.Errorf("log is a row: %v, want %v", isRow, !tt.file)
			}
		})
	}
}

func countRows(t *testing.T, db *DB, attemptID string) int {
	t.Helper()
	var n int
	if err := db.db.Get(&n, `SELECT count(*) FROM job_logs WHERE attempt_id = ?`, attemptID); err != nil {
		t.Fatal(err)
	}
	return n
}

// A log closed in memory whose attempt's end is never recorded (the
// engine abandoned it at shutdown) is stored all the same: after the
// memory time, or when the store closes.
func TestClosedLogsWithoutAnEndAreStored(t *testing.T) {
	ctx := context.Background()
	for _, how := range []string{"in time", "at close"} {
		t.Run(how, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "slipway.db")
			db, err := Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			if how == "in time" {
				db.logAge = 10 * time.Millisecond
			}
			w, err := db.CreateJobLog(ctx, "abandoned")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(w, "==> sleep 60\n"); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if how == "in time" {
				deadline := time.Now().Add(5 * time.Second)
				for countRows(t, db, "abandoned") == 0 {
					if time.Now().After(deadline) {
						t.Fatal("the log was not stored")
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db, err = Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if got := readLog(t, db, "abandoned"); got != "==> sleep 60\n" {
				t.Errorf("log = %q", got)
			}
		})
	}
}

// A log still open when its attempt's end is recorded (or when the store
// closes) is not let go: what comes after is kept.
func TestOpenLogsAreNotLetGo(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	if _, err := createPipeline(ctx, db, newPipeline("p1", "a"), nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, func(tx engine.StoreTx) error {
		return tx.StartAttempt(ctx, &engine.AttemptRecord{ID: "a1", JobID: "p1-j", Started: time.Now()}, "a")
	}); err != nil {
		t.Fatal(err)
	}
	w, err := db.CreateJobLog(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "before\n")
	if err := db.Update(ctx, func(tx engine.StoreTx) error {
		return tx.FinishAttempt(ctx, &engine.AttemptRecord{ID: "a1", JobID: "p1-j", Status: workflows.StatusSuccess, Finished: time.Now()})
	}); err != nil {
		t.Fatal(err)
	}
	db.storeClosedLogs(ctx)
	io.WriteString(w, "after\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	db.storeClosedLogs(ctx)
	if got := readLog(t, db, "a1"); got != "before\nafter\n" || countRows(t, db, "a1") != 1 {
		t.Errorf("log %q, %d rows", got, countRows(t, db, "a1"))
	}
}

// readLog reads an attempt's whole log.
func readLog(t *testing.T, db *DB, attemptID string) string {
	t.Helper()
	r, err := db.JobLog(context.Background(), attemptID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
