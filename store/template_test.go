package store

import (
	"context"
	"os"
	"path/filepath"
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
	if fromTemplate(filepath.Join(t.TempDir(), "third.db")) {
		t.Error("a world-writable template was used")
	}
}
