package store

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/workflows"
)

func openTest(t testing.TB) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newPipeline(id, app string) *workflows.NewPipeline {
	return &workflows.NewPipeline{
		ID: id, App: app, Repo: "acme/" + app, Author: "alice",
		Trigger: workflows.Trigger{Branch: "main", Revision: "abc123"},
		Plan: &workflows.Plan{Workflows: []*workflows.PlannedWorkflow{{Name: "build", Jobs: []*workflows.PlannedJob{
			{Name: "test", Job: "test", Type: workflows.JobBuild, Spec: &workflows.JobSpec{}},
		}}}},
		WorkflowIDs: []string{id + "-w"}, JobIDs: [][]string{{id + "-j"}},
		Created: time.Unix(1700000000, 0).UTC(),
	}
}

func TestMigrationsAreAppliedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "slipway.db")
	for i := range 2 {
		db, err := Open(context.Background(), path)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		var n int
		if err := db.db.Get(&n, `SELECT count(*) FROM schema_migrations`); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("open %d: %d migrations recorded, want 1", i, n)
		}
		db.Close()
	}
}

func TestPipelineNumbersArePerApp(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	tests := []struct {
		id, app string
		want    int
	}{
		{"p1", "backend", 1},
		{"p2", "backend", 2},
		{"p3", "frontend", 1},
		{"p4", "backend", 3},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			rec, err := db.CreatePipeline(ctx, newPipeline(tt.id, tt.app), nil)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Number != tt.want {
				t.Errorf("number = %d, want %d", rec.Number, tt.want)
			}
			st, err := db.PipelineState(ctx, tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if st.Pipeline.Trigger.Number != tt.want || len(st.Jobs) != 1 || st.Jobs[0].Status != workflows.StatusBlocked {
				t.Errorf("stored state = %+v", st)
			}
		})
	}
}

func TestWebhookDeliveriesAreDeduplicated(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	tests := []struct {
		name, id string
		want     bool
	}{
		{"first delivery", "d1", true},
		{"redelivery", "d1", false},
		{"another delivery", "d2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.RecordDelivery(ctx, tt.id, "push", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("RecordDelivery(%s) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

func TestDueEventsHoldBackLaterEventsOfAPipeline(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	now := time.Unix(1700000000, 0).UTC()
	var events []workflows.Event
	for i := range 3 {
		events = append(events, workflows.Event{PipelineID: "p1", Kind: fmt.Sprint("k", i), At: now})
	}
	if _, err := db.CreatePipeline(ctx, newPipeline("p1", "a"), events); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreatePipeline(ctx, newPipeline("p2", "a"), []workflows.Event{{PipelineID: "p2", Kind: "other", At: now}}); err != nil {
		t.Fatal(err)
	}
	kinds := func(at time.Time) []string {
		t.Helper()
		due, err := db.DueEvents(ctx, at, 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range due {
			out = append(out, fmt.Sprint(e.Kind, "/", e.Attempts))
		}
		return out
	}
	if got, want := kinds(now), []string{"k0/0", "k1/0", "k2/0", "other/0"}; !slices.Equal(got, want) {
		t.Fatalf("due = %v, want %v", got, want)
	}
	if err := db.DeferEvent(ctx, 1, now.Add(time.Minute), "down"); err != nil {
		t.Fatal(err)
	}
	if got, want := kinds(now), []string{"other/0"}; !slices.Equal(got, want) {
		t.Fatalf("after deferring k0, due = %v, want %v", got, want)
	}
	if err := db.MarkEventsDelivered(ctx, []int64{4}, now); err != nil {
		t.Fatal(err)
	}
	if got, want := kinds(now.Add(time.Minute)), []string{"k0/1", "k1/0", "k2/0"}; !slices.Equal(got, want) {
		t.Fatalf("a minute later, due = %v, want %v", got, want)
	}
}
