package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func schemaOf(t *testing.T, db *DB) []string {
	t.Helper()
	var rows []string
	if err := db.db.Select(&rows, `SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master ORDER BY name`); err != nil {
		t.Fatal(err)
	}
	return rows
}

// A new store made from the template has the schema the migrations
// make, and its migrations recorded; a template that others could have
// written is not used.
func TestStoreTemplate(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	ctx := context.Background()
	open := func(name string) *DB {
		t.Helper()
		db, err := Open(ctx, filepath.Join(t.TempDir(), name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	first := open("first.db") // made by the migrations; leaves the template
	tpl := templatePath()
	if fi, err := os.Stat(tpl); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("template %s: %v %v", tpl, fi, err)
	}
	second := open("second.db") // made from the template
	if diff := cmp.Diff(schemaOf(t, first), schemaOf(t, second)); diff != "" {
		t.Errorf("a store made from the template differs (-migrations +template):\n%s", diff)
	}
	// The template is in WAL mode (its header's read and write versions
	// are 2), so that a copy opens without a conversion.
	if b, err := os.ReadFile(tpl); err != nil || len(b) < 20 || b[18] != 2 || b[19] != 2 {
		t.Errorf("the template is not in WAL mode: %v", err)
	}
	var applied int
	second.db.Get(&applied, `SELECT count(*) FROM schema_migrations`)
	if applied == 0 {
		t.Error("the template's store records no migration")
	}
	// A template someone else may have written is left alone.
	os.Chmod(tpl, 0o666)
	if fromTemplate(filepath.Join(t.TempDir(), "third.db"), false) {
		t.Error("a world-writable template was used")
	}
}

// inode is the inode number of a file.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// A scratch store starts empty whatever is at its path, and reuses the
// files an earlier one left there (the same inodes: making files is what
// costs on some file systems), even those of a store that was never
// closed, whose WAL still holds its commits.
func TestScratchStoresReuseTheirFiles(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "slipway.db")
	pipelines := func(db *DB) int {
		t.Helper()
		ps, err := db.Pipelines(ctx, PipelineFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(ps)
	}
	files := []string{path, path + "-wal", path + "-shm"}
	var inodes []uint64
	for i := range 3 {
		db, err := OpenScratch(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if n := pipelines(db); n != 0 {
			t.Fatalf("open %d: a scratch store starts with %d pipelines", i, n)
		}
		if _, err := createPipeline(ctx, db, newPipeline(fmt.Sprintf("p%d", i), "app"), nil); err != nil {
			t.Fatal(err)
		}
		if pipelines(db) != 1 {
			t.Fatal("the pipeline was not stored")
		}
		if i == 1 {
			// A store whose process died: its files as they were,
			// the commit in the WAL.
			crashed := t.TempDir()
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(crashed, filepath.Base(f)), b, 0o644)
			}
			db.Close()
			for _, f := range files {
				b, _ := os.ReadFile(filepath.Join(crashed, filepath.Base(f)))
				if err := os.WriteFile(f, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if fi, _ := os.Stat(path + "-wal"); fi.Size() == 0 {
				t.Fatal("the crashed store's WAL is empty: the test tests nothing")
			}
		} else {
			db.Close()
		}
		var now []uint64
		for _, f := range files {
			now = append(now, inode(t, f))
		}
		if inodes != nil && !slices.Equal(now, inodes) {
			t.Errorf("open %d: files made again: inodes %v, before %v", i, now, inodes)
		}
		inodes = now
	}
}
