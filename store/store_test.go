package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
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

func newPipeline(id, app string) *engine.NewPipeline {
	return &engine.NewPipeline{
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
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		db, err := Open(context.Background(), path)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		var n int
		if err := db.db.Get(&n, `SELECT count(*) FROM schema_migrations`); err != nil {
			t.Fatal(err)
		}
		if n != len(names) {
			t.Errorf("open %d: %d migrations recorded, want %d", i, n, len(names))
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
			rec, err := createPipeline(ctx, db, newPipeline(tt.id, tt.app), nil)
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
			if st.Pipeline.Trigger.Number != tt.want || len(st.Jobs) != 1 || st.Jobs[0].Status != engine.StatusBlocked {
				t.Errorf("stored state = %+v", st)
			}
		})
	}
}

func TestInboxKeepsRequestsUntilHandled(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	now := time.Unix(1700000000, 0).UTC()
	item := func(id string) engine.InboxItem {
		return engine.InboxItem{Source: "github", ID: id, Kind: "push", Payload: []byte(`{"ref":"refs/heads/main"}`), Received: now}
	}
	for _, tt := range []struct {
		name, id string
		want     bool
	}{
		{"first delivery", "d1", true},
		{"redelivery", "d1", false},
		{"another delivery", "d2", true},
	} {
		got, err := db.Receive(ctx, item(tt.id))
		if err != nil || got != tt.want {
			t.Errorf("%s: Receive(%s) = %v, %v; want %v", tt.name, tt.id, got, err, tt.want)
		}
	}
	if ok, _ := db.Receive(ctx, engine.InboxItem{Source: "slack", ID: "d1", Kind: "x", Payload: []byte{}, Received: now}); !ok {
		t.Error("IDs are per source")
	}
	ids := func(at time.Time) []string {
		t.Helper()
		items, err := db.PendingInbox(ctx, "github", at, 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, it := range items {
			out = append(out, fmt.Sprint(it.ID, "/", it.Attempts, "/", string(it.Payload) != ""))
		}
		return out
	}
	if got, want := ids(now), []string{"d1/0/true", "d2/0/true"}; !slices.Equal(got, want) {
		t.Fatalf("pending = %v, want %v", got, want)
	}
	if err := db.RetryInbox(ctx, "github", "d1", now.Add(time.Minute), "github down"); err != nil {
		t.Fatal(err)
	}
	if err := db.HandledInbox(ctx, "github", "d2", "pipeline 1", now); err != nil {
		t.Fatal(err)
	}
	if got := ids(now); len(got) != 0 {
		t.Fatalf("pending = %v, want none before d1's retry", got)
	}
	if next, err := db.NextInboxDue(ctx, "github"); err != nil || !next.Equal(now.Add(time.Minute)) {
		t.Fatalf("next = %v, %v", next, err)
	}
	if got, want := ids(now.Add(time.Minute)), []string{"d1/1/true"}; !slices.Equal(got, want) {
		t.Fatalf("pending = %v, want %v", got, want)
	}
	if handled, result, err := db.InboxResult(ctx, "github", "d2"); !handled || result != "pipeline 1" || err != nil {
		t.Errorf("d2: %v %q %v", handled, result, err)
	}
	if _, _, err := db.InboxResult(ctx, "github", "nope"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
}

func TestDueEventsHoldBackLaterEventsOfAPipeline(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	if err := db.SetConsumers(ctx, []string{"github", "slack"}); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0).UTC()
	var events []engine.Event
	for i := range 3 {
		events = append(events, engine.Event{PipelineID: "p1", Kind: fmt.Sprint("k", i), At: now})
	}
	if _, err := createPipeline(ctx, db, newPipeline("p1", "a"), events); err != nil {
		t.Fatal(err)
	}
	if _, err := createPipeline(ctx, db, newPipeline("p2", "a"), []engine.Event{{PipelineID: "p2", Kind: "other", At: now}}); err != nil {
		t.Fatal(err)
	}
	kinds := func(consumer string, at time.Time) []string {
		t.Helper()
		due, err := db.DueEvents(ctx, consumer, at, 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range due {
			out = append(out, fmt.Sprint(e.Kind, "/", e.Attempts))
		}
		return out
	}
	all := []string{"k0/0", "k1/0", "k2/0", "other/0"}
	if got := kinds("github", now); !slices.Equal(got, all) {
		t.Fatalf("due = %v, want %v", got, all)
	}
	if err := db.DeferEvent(ctx, "github", 1, now.Add(time.Minute), "down"); err != nil {
		t.Fatal(err)
	}
	if got, want := kinds("github", now), []string{"other/0"}; !slices.Equal(got, want) {
		t.Fatalf("after deferring k0, due = %v, want %v", got, want)
	}
	if err := db.MarkEventsDelivered(ctx, "github", []int64{4}, now); err != nil {
		t.Fatal(err)
	}
	// The later events of p1 are as old as k0 but wait for it.
	if next, err := db.NextEventDue(ctx, "github"); err != nil || !next.Equal(now.Add(time.Minute)) {
		t.Fatalf("next event due = %v, %v; want %v", next, err, now.Add(time.Minute))
	}
	// The other consumer has its own place: nothing of the first's
	// failure or deliveries shows there.
	if got := kinds("slack", now); !slices.Equal(got, all) {
		t.Fatalf("the other consumer's due = %v, want %v", got, all)
	}
	if got, want := kinds("github", now.Add(time.Minute)), []string{"k0/1", "k1/0", "k2/0"}; !slices.Equal(got, want) {
		t.Fatalf("a minute later, due = %v, want %v", got, want)
	}
	// A parked event holds nothing back, and stays on record.
	if err := db.ParkEvent(ctx, "github", 1, "422 Unprocessable Entity"); err != nil {
		t.Fatal(err)
	}
	if got, want := kinds("github", now), []string{"k1/0", "k2/0"}; !slices.Equal(got, want) {
		t.Fatalf("after parking k0, due = %v, want %v", got, want)
	}
	parked, err := db.ParkedEvents(ctx, "github")
	if err != nil || len(parked) != 1 || parked[0].Seq != 1 || parked[0].Cause != "422 Unprocessable Entity" {
		t.Fatalf("parked = %+v, %v", parked, err)
	}
	if err := db.MarkEventsDelivered(ctx, "github", []int64{2, 3}, now); err != nil {
		t.Fatal(err)
	}
	if next, err := db.NextEventDue(ctx, "github"); err != nil || !next.IsZero() {
		t.Fatalf("next event due once all are delivered = %v, %v; want none", next, err)
	}
	if got := kinds("slack", now); !slices.Equal(got, all) {
		t.Fatalf("the other consumer's due = %v, want %v", got, all)
	}
}

// chain is a pipeline of n jobs in two workflows, each job requiring the
// one before it in its workflow, the last with a status form and contexts.
func chain(id string, n int) *engine.NewPipeline {
	p := newPipeline(id, "a")
	p.Plan = &workflows.Plan{}
	p.WorkflowIDs, p.JobIDs = nil, nil
	for w := range 2 {
		pw := &workflows.PlannedWorkflow{Name: fmt.Sprint("w", w)}
		var ids []string
		for i := range n / 2 {
			j := &workflows.PlannedJob{Name: fmt.Sprint("j", i), Job: "j", Type: workflows.JobBuild, Requires: map[string][]string{},
				Spec: &workflows.JobSpec{Steps: []workflows.Step{{Run: &workflows.RunStep{Command: "true"}}}}}
			if i > 0 {
				j.Requires[fmt.Sprint("j", i-1)] = nil
			}
			if i == n/2-1 {
				j.Requires[fmt.Sprint("j", i-1)] = []string{workflows.StatusFailed, workflows.StatusCanceled}
				j.Context = []string{"aws", "slack"}
			}
			pw.Jobs = append(pw.Jobs, j)
			ids = append(ids, fmt.Sprintf("%s-w%d-j%d", id, w, i))
		}
		p.Plan.Workflows = append(p.Plan.Workflows, pw)
		p.WorkflowIDs = append(p.WorkflowIDs, fmt.Sprintf("%s-w%d", id, w))
		p.JobIDs = append(p.JobIDs, ids)
	}
	return p
}

func TestPipelineStateReadsJobsInPlanOrder(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	if _, err := createPipeline(ctx, db, chain("p1", 6), nil); err != nil {
		t.Fatal(err)
	}
	read := func() *engine.PipelineState {
		t.Helper()
		st, err := db.PipelineState(ctx, "p1")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := read()
	var got []string
	for _, j := range st.Jobs {
		got = append(got, fmt.Sprintf("%s/%s %v %v", j.WorkflowID, j.Name, j.Requires, j.Context))
	}
	want := []string{
		"p1-w0/j0 map[] []", "p1-w0/j1 map[j0:[]] []", "p1-w0/j2 map[j1:[failed canceled]] [aws slack]",
		"p1-w1/j0 map[] []", "p1-w1/j1 map[j0:[]] []", "p1-w1/j2 map[j1:[failed canceled]] [aws slack]",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("jobs = %q, want %q", got, want)
	}
	// Decoded values are shared by no two reads.
	st.Jobs[2].Requires["j1"][0] = "changed"
	st.Jobs[2].Context[0] = "changed"
	if again := read(); again.Jobs[2].Requires["j1"][0] != workflows.StatusFailed || again.Jobs[2].Context[0] != "aws" {
		t.Errorf("a change to one read showed in the next: %v %v", again.Jobs[2].Requires, again.Jobs[2].Context)
	}
}

// BenchmarkPipelineState reads a 100-job pipeline, as the scheduler does
// at each step of it.
func BenchmarkPipelineState(b *testing.B) {
	db := openTest(b)
	ctx := context.Background()
	if _, err := createPipeline(ctx, db, chain("p1", 100), nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := db.PipelineState(ctx, "p1"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestWritesOutliveACanceledCaller checks that a caller giving up in the
// middle of a transaction costs its own transaction only: every write
// goes through one connection, which database/sql would otherwise close.
func TestWritesOutliveACanceledCaller(t *testing.T) {
	db := openTest(t)
	if _, err := createPipeline(context.Background(), db, newPipeline("p1", "a"), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	err := db.Update(ctx, func(tx engine.StoreTx) error {
		cancel()
		time.Sleep(20 * time.Millisecond) // for database/sql to see it
		return tx.SetJobStatus(ctx, "p1-j", engine.StatusQueued, "", time.Now())
	})
	if err == nil {
		t.Fatal("a transaction whose caller gave up committed")
	}
	for i := range 2 {
		if err := db.Update(context.Background(), func(tx engine.StoreTx) error {
			return tx.SetJobStatus(context.Background(), "p1-j", engine.StatusQueued, "", time.Now())
		}); err != nil {
			t.Fatalf("write %d after a canceled one: %v", i+1, err)
		}
	}
	if _, err := db.Receive(context.Background(), engine.InboxItem{Source: "github", ID: "d1", Kind: "push", Payload: []byte("{}"), Received: time.Now()}); err != nil {
		t.Fatalf("another kind of write: %v", err)
	}
}

// createPipeline stores p and its events in one transaction, as the
// engine's Submit does.
func createPipeline(ctx context.Context, db *DB, p *engine.NewPipeline, events []engine.Event) (*engine.PipelineRecord, error) {
	var rec *engine.PipelineRecord
	err := db.Update(ctx, func(tx engine.StoreTx) error {
		var err error
		if rec, err = tx.CreatePipeline(ctx, p); err != nil {
			return err
		}
		return tx.AddEvents(ctx, events)
	})
	return rec, err
}

// Paths with characters that mean something in a URI are files like any
// other: two stores whose paths differ after a '#' are two stores.
func TestOpenPathsWithURICharacters(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	for _, name := range []string{"a#1", "a#2", "b?x", "c%41"} {
		db, err := Open(ctx, filepath.Join(dir, name, "slipway.db"))
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := db.Receive(ctx, engine.InboxItem{Source: "github", ID: "d1", Kind: "push", Payload: []byte("{}"), Received: time.Now()})
		db.Close()
		if err != nil || !fresh {
			t.Errorf("%s: the delivery was already there (%v): two paths opened one file", name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, name, "slipway.db")); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// ObserveWrites hears every write transaction, and nothing else.
func TestObserveWrites(t *testing.T) {
	db := openTest(t)
	var mu sync.Mutex
	var heard []time.Duration
	db.ObserveWrites(func(d time.Duration) {
		mu.Lock()
		heard = append(heard, d)
		mu.Unlock()
	})
	ctx := context.Background()
	kv := db.KV("test")
	for i := range 3 {
		if err := kv.Put(ctx, "k", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := kv.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(heard) != 3 {
		t.Fatalf("heard %d writes, want the 3 puts", len(heard))
	}
	for _, d := range heard {
		if d <= 0 {
			t.Errorf("a write took %v", d)
		}
	}
}
