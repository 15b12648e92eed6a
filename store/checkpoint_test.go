package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A commit never checkpoints the WAL (that waits for the disk, in the
// middle of a request); the store does it in the background shortly
// after writes, and a scratch store leaves it to SQLite.
func TestCheckpointsInTheBackground(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "slipway.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var auto int
	if err := db.w.QueryRowxContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&auto); err != nil || auto != 0 {
		t.Fatalf("the writer checkpoints every %d pages (%v), want never", auto, err)
	}
	before := size(t, path)
	// 2,000 pages of writes: past SQLite's own threshold of 1,000.
	kv := db.KV("test")
	for i := range 40 {
		if err := kv.Put(ctx, strings.Repeat("k", i+1), strings.Repeat("x", 200<<10)); err != nil {
			t.Fatal(err)
		}
	}
	if got := size(t, path); got != before {
		t.Fatalf("the database grew from %d to %d bytes within the commits: they checkpointed", before, got)
	}
	deadline := time.Now().Add(10 * checkpointEvery)
	for size(t, path) < before+40*200<<10 {
		if time.Now().After(deadline) {
			t.Fatalf("the WAL was not checkpointed in the background: database %d bytes", size(t, path))
		}
		time.Sleep(checkpointEvery / 4)
	}
}

func TestScratchStoresCheckpointAsSQLiteDoes(t *testing.T) {
	db, err := OpenScratch(context.Background(), t.TempDir()+"/slipway.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var auto int
	if err := db.w.QueryRowxContext(context.Background(), "PRAGMA wal_autocheckpoint").Scan(&auto); err != nil || auto != 1000 {
		t.Fatalf("wal_autocheckpoint %d (%v), want SQLite's 1000", auto, err)
	}
}

func size(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
