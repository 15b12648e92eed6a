package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

func TestPipelineQueries(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	for i, b := range []string{"main", "feature", "main"} {
		p := newPipeline(string(rune('a'+i)), "backend")
		p.Trigger = workflows.Trigger{Branch: b, Revision: "sha-" + b}
		if _, err := createPipeline(ctx, db, p, nil); err != nil {
			t.Fatal(err)
		}
	}
	p, err := db.PipelineByNumber(ctx, "backend", 2)
	if err != nil || p.ID != "b" {
		t.Fatalf("pipeline #2 = %+v, %v", p, err)
	}
	if _, err := db.PipelineByNumber(ctx, "backend", 9); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("pipeline #9: %v", err)
	}
	ids := func(f PipelineFilter) string {
		ps, err := db.Pipelines(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		s := ""
		for _, p := range ps {
			s += p.ID
		}
		return s
	}
	for _, tt := range []struct {
		f    PipelineFilter
		want string
	}{
		{PipelineFilter{}, "cba"},
		{PipelineFilter{App: "backend", Branch: "main"}, "ca"},
		{PipelineFilter{Commit: "sha-feature"}, "b"},
		{PipelineFilter{Before: "c", Limit: 1}, "b"},
		{PipelineFilter{App: "other"}, ""},
		{PipelineFilter{Active: true, Status: engine.StatusRunning}, "cba"},
	} {
		if got := ids(tt.f); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.f, got, tt.want)
		}
	}
	if err := db.Update(ctx, func(tx engine.StoreTx) error {
		return tx.SetEnvLock(ctx, &engine.EnvLock{App: "backend", Env: "production", Holder: "U1", Reason: "x", Manual: true, Since: time.Unix(1, 0)})
	}); err != nil {
		t.Fatal(err)
	}
	locks, err := db.EnvLocks(ctx, "backend")
	if err != nil || len(locks) != 1 || locks[0].Holder != "U1" || !locks[0].Manual {
		t.Errorf("locks %+v, %v", locks, err)
	}
}
