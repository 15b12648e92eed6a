package store

import (
	"context"
	"path/filepath"
	"testing"
)

func TestOrbCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "slipway.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := db.OrbCache()
	if _, ok, err := c.Get(ctx, "circleci/node", "5.1.0"); ok || err != nil {
		t.Fatalf("empty cache: %v %v", ok, err)
	}
	if err := c.Put(ctx, "circleci/node", "5.1.0", []byte("commands: {}\n")); err != nil {
		t.Fatal(err)
	}
	// A version's source does not change: keeping it again is harmless.
	if err := c.Put(ctx, "circleci/node", "5.1.0", []byte("other")); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"5.0.9", "5.1.0"} {
		if err := c.Pin(ctx, "circleci/node", "5", ref); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	// Across a restart.
	if db, err = Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c = db.OrbCache()
	if src, ok, err := c.Get(ctx, "circleci/node", "5.1.0"); string(src) != "commands: {}\n" || !ok || err != nil {
		t.Errorf("Get = %q %v %v", src, ok, err)
	}
	if v, ok, err := c.Pinned(ctx, "circleci/node", "5"); v != "5.1.0" || !ok || err != nil {
		t.Errorf("Pinned = %q %v %v", v, ok, err)
	}
	if _, ok, err := c.Pinned(ctx, "circleci/node", "4"); ok || err != nil {
		t.Errorf("unpinned: %v %v", ok, err)
	}
}
