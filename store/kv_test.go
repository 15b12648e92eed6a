package store

import (
	"context"
	"testing"
)

func TestKV(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	a, b := db.KV("github"), db.KV("slack")
	if _, ok, err := a.Get(ctx, "k"); ok || err != nil {
		t.Fatalf("unset key: %v %v", ok, err)
	}
	for _, v := range []string{"1", "2"} {
		if err := a.Put(ctx, "k", v); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := a.Get(ctx, "k"); got != v || !ok || err != nil {
			t.Fatalf("Get = %q %v %v, want %q", got, ok, err, v)
		}
	}
	if _, ok, _ := b.Get(ctx, "k"); ok {
		t.Error("namespaces are not apart")
	}
}
