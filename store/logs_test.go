package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
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

// BenchmarkJobLog writes job logs both ways: a small one (one step's
// header and a line) and a 4 MiB one in 4 KiB writes, as a chatty build
// does. It justifies the choice of a file per attempt (see CreateJobLog).
func BenchmarkJobLog(b *testing.B) {
	line := bytes.Repeat([]byte("x"), 4095)
	line = append(line, '\n')
	for _, size := range []struct {
		name   string
		writes int
	}{{"small", 1}, {"4MiB", 1024}} {
		for _, how := range []string{"file", "chunks"} {
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
					if how == "file" {
						var err error
						if w, err = db.CreateJobLog(ctx, id); err != nil {
							b.Fatal(err)
						}
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
