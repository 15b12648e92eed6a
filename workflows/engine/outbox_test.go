package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// waitRecorded waits until the store holds no undelivered event: the
// outbox loop delivered everything and recorded it, unasked.
func waitRecorded(t *testing.T, h *harness) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		next, err := h.db.NextEventDue(context.Background(), "test")
		if err != nil {
			t.Fatal(err)
		}
		if next.IsZero() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events still undelivered in the store (next due %v)", next)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkOnceInOrder checks that every event was delivered once and each
// pipeline's in the order they were written.
func checkOnceInOrder(t *testing.T, events []engine.Event) {
	t.Helper()
	seen := map[int64]bool{}
	last := map[string]int64{}
	for _, ev := range events {
		if seen[ev.Seq] {
			t.Errorf("event %d (%s) delivered twice", ev.Seq, ev.Kind)
		}
		seen[ev.Seq] = true
		if ev.Seq <= last[ev.PipelineID] {
			t.Errorf("pipeline %s: event %d delivered after %d", ev.PipelineID, ev.Seq, last[ev.PipelineID])
		}
		last[ev.PipelineID] = ev.Seq
	}
}

func TestOutboxDeliversEveryEventOnceInOrderPerPipeline(t *testing.T) {
	h := newHarness(t, func(o *engine.Options) { o.Parallelism = 3 })
	var ids []string
	for i := range 12 {
		p := h.submit("alice", wf("build", build(fmt.Sprint("a", i)), build(fmt.Sprint("b", i), fmt.Sprint("a", i)),
			build(fmt.Sprint("c", i), fmt.Sprint("a", i))))
		ids = append(ids, p.ID)
	}
	for _, id := range ids {
		if st := h.settle(id); st.Pipeline.Status != workflows.StatusSuccess {
			t.Fatalf("pipeline: %s", describe(st))
		}
	}
	waitRecorded(t, h)
	h.notifier.mu.Lock()
	events := append([]engine.Event(nil), h.notifier.events...)
	h.notifier.mu.Unlock()
	checkOnceInOrder(t, events)
	for _, id := range ids {
		if k := h.notifier.kinds(id); len(k) != 9 || k[len(k)-1] != "pipeline.finished " {
			t.Errorf("pipeline %s: events %v", id, k)
		}
	}
}

// A notifier failing for one pipeline holds back that pipeline's events
// only; once it works again they all arrive in order, and later
// pipelines are delivered as before, with nothing delivered twice.
func TestOutboxFailureHoldsBackOnlyItsPipeline(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	h.notifier.mu.Lock()
	h.notifier.down = map[string]bool{"p-down": true}
	h.notifier.mu.Unlock()
	submit := func(id string, w *workflows.PlannedWorkflow) {
		t.Helper()
		if _, err := h.engine.Submit(ctx, engine.PipelineRequest{ID: id, App: "backend", Repo: "acme/backend", Author: "alice",
			Plan: &workflows.Plan{Workflows: []*workflows.PlannedWorkflow{w}}}); err != nil {
			t.Fatal(err)
		}
		if st := h.settle(id); st.Pipeline.Status != workflows.StatusSuccess {
			t.Fatalf("pipeline: %s", describe(st))
		}
	}
	submit("p-down", wf("build", build("a"), build("b", "a")))
	submit("p-up", wf("build", build("x")))
	if _, err := h.engine.DeliverEvents(ctx); err != nil {
		t.Fatal(err)
	}
	if got := h.notifier.kinds("p-down"); len(got) != 0 {
		t.Errorf("events of the failing pipeline delivered: %v", got)
	}
	want := []string{"pipeline.created ", "job.started x", "job.finished x", "workflow.finished ", "pipeline.finished "}
	if diff := cmp.Diff(want, h.notifier.kinds("p-up")); diff != "" {
		t.Errorf("the other pipeline (-want +got):\n%s", diff)
	}

	h.notifier.mu.Lock()
	h.notifier.down = nil
	h.notifier.mu.Unlock()
	h.clock.Advance(time.Hour) // the retry is due
	if _, err := h.engine.DeliverEvents(ctx); err != nil {
		t.Fatal(err)
	}
	want = []string{"pipeline.created ", "job.started a", "job.finished a", "job.started b", "job.finished b",
		"workflow.finished ", "pipeline.finished "}
	if diff := cmp.Diff(want, h.notifier.kinds("p-down")); diff != "" {
		t.Errorf("the failing pipeline once the notifier works (-want +got):\n%s", diff)
	}

	submit("p-later", wf("build", build("y")))
	waitRecorded(t, h)
	if got := h.notifier.kinds("p-later"); len(got) != 5 {
		t.Errorf("later pipeline: %v", got)
	}
	h.notifier.mu.Lock()
	events := append([]engine.Event(nil), h.notifier.events...)
	h.notifier.mu.Unlock()
	checkOnceInOrder(t, events)
}

// A notifier that keeps failing is retried with exponential backoff,
// from RetryMin up to RetryMax.
func TestOutboxRetriesWithExponentialBackoff(t *testing.T) {
	h := newHarness(t, func(o *engine.Options) { o.RetryMin, o.RetryMax = time.Second, 5*time.Second })
	ctx := context.Background()
	h.notifier.mu.Lock()
	h.notifier.fail = true
	h.notifier.mu.Unlock()
	p := h.submit("alice", wf("build", build("a")))
	h.settle(p.ID)
	var waits []time.Duration
	for range 5 {
		if _, err := h.engine.DeliverEvents(ctx); err != nil {
			t.Fatal(err)
		}
		next, err := h.db.NextEventDue(ctx, "test")
		if err != nil || next.IsZero() {
			t.Fatalf("next due %v, %v", next, err)
		}
		waits = append(waits, next.Sub(h.clock.Now()))
		h.clock.Advance(next.Sub(h.clock.Now()))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	if diff := cmp.Diff(want, waits); diff != "" {
		t.Errorf("waits between attempts (-want +got):\n%s", diff)
	}
}

// afterCommitStore runs then after each Update that committed, before the
// caller hears of it: another request landing in that gap.
type afterCommitStore struct {
	engine.Store
	then func()
}

func (s *afterCommitStore) Update(ctx context.Context, fn func(engine.StoreTx) error) error {
	err := s.Store.Update(ctx, fn)
	if err == nil && s.then != nil {
		then := s.then
		s.then = nil
		then()
	}
	return err
}

// A pipeline's first events are queued in commit order, like every
// other: a cancel that commits right after the pipeline was created is
// delivered after its creation.
func TestOutboxKeepsCommitOrderFromTheFirstEvent(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	// The harness's engine goes first: two engines with a consumer of
	// one name on one store deliver each other's events.
	if err := h.engine.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	wrapped := &afterCommitStore{Store: h.db}
	opts := h.opts
	opts.Store, opts.Notifiers = wrapped, map[string]engine.Notifier{"test": &recorder{}}
	e := engine.New(opts)
	h.engine = e // shut down when the test ends
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Nothing waits in the store: from now on this engine delivers from
	// memory, in the order it queued.
	if _, err := e.DeliverEvents(ctx); err != nil {
		t.Fatal(err)
	}
	wrapped.then = func() {
		if d, err := e.Cancel(ctx, "p-raced", engine.Actor{ID: "alice"}); err != nil || !d.Applied {
			t.Errorf("cancel: %+v, %v", d, err)
		}
		// The scheduler ends the canceled pipeline, with its events.
		if _, err := e.Wait(ctx, "p-raced", func(st *engine.PipelineState) bool { return !st.Pipeline.Finished.IsZero() }); err != nil {
			t.Error(err)
		}
	}
	if _, err := e.Submit(ctx, engine.PipelineRequest{ID: "p-raced", App: "backend", Repo: "acme/backend", Author: "alice",
		Plan: &workflows.Plan{Workflows: []*workflows.PlannedWorkflow{wf("build", build("a"))}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.DeliverEvents(ctx); err != nil {
		t.Fatal(err)
	}
	rec := opts.Notifiers["test"].(*recorder)
	if k := rec.kinds("p-raced"); len(k) < 2 || k[0] != "pipeline.created " || k[len(k)-1] != "pipeline.finished " {
		t.Errorf("events delivered: %v", k)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	checkOnceInOrder(t, rec.events)
}

// Events another process wrote to the store reach this engine's notifier
// too, though nothing in memory tells it of them.
func TestOutboxDeliversEventsAnotherProcessWrote(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	// Let the engine settle into delivering from memory.
	h.settle(h.submit("alice", wf("build", build("a"))).ID)
	waitRecorded(t, h)
	other, err := store.Open(ctx, h.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	e := engine.New(engine.Options{Store: other, Executor: h.script.executor(), IDs: &seqIDs{n: 1000}, Clock: h.clock})
	if _, err := e.Submit(ctx, engine.PipelineRequest{ID: "p-other", App: "backend", Repo: "acme/backend", Author: "bob",
		Plan: &workflows.Plan{Workflows: []*workflows.PlannedWorkflow{wf("build", build("x"))}}}); err != nil {
		t.Fatal(err)
	}
	waitRecorded(t, h)
	if k := h.notifier.kinds("p-other"); len(k) != 1 || k[0] != "pipeline.created " {
		t.Errorf("events of the other process's pipeline: %v", k)
	}
}

// funcNotifier is a Notifier that calls its func and keeps what it
// accepted.
type funcNotifier struct {
	mu     sync.Mutex
	fn     func(engine.Event) error
	events []engine.Event
}

func (n *funcNotifier) Notify(ctx context.Context, ev engine.Event) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.fn(ev); err != nil {
		return err
	}
	n.events = append(n.events, ev)
	return nil
}

func (n *funcNotifier) kinds() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, e := range n.events {
		out = append(out, e.Kind+" "+e.Data.Job)
	}
	return out
}

// Each consumer keeps its own place in the outbox: one that fails holds
// back only its own deliveries, never another's, and no consumer hears an
// event twice; one that refuses an event for good parks it and hears the
// pipeline's later events; one that asks to wait is waited for.
func TestOutboxConsumersAreIndependent(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	failing := &funcNotifier{fn: func(engine.Event) error {
		if down.Load() {
			return engine.RetryAfter(errors.New("503 Service Unavailable"), 30*time.Second)
		}
		return nil
	}}
	refusing := &funcNotifier{fn: func(ev engine.Event) error {
		if ev.Kind == engine.EventJobStarted {
			return engine.Permanent(errors.New("422 Unprocessable Entity"))
		}
		return nil
	}}
	healthy := &funcNotifier{fn: func(engine.Event) error { return nil }}
	h := newHarness(t, func(o *engine.Options) {
		o.Notifiers = map[string]engine.Notifier{"failing": failing, "refusing": refusing, "test": healthy}
		o.RetryMin, o.RetryMax = time.Second, time.Minute
	})
	ctx := context.Background()
	p := h.submit("alice", wf("build", build("a"), build("b", "a")))
	h.settle(p.ID)
	if _, err := h.engine.DeliverEvents(ctx); err != nil {
		t.Fatal(err)
	}
	all := []string{"pipeline.created ", "job.started a", "job.finished a", "job.started b", "job.finished b",
		"workflow.finished ", "pipeline.finished "}
	if diff := cmp.Diff(all, healthy.kinds()); diff != "" {
		t.Errorf("the healthy consumer (-want +got):\n%s", diff)
	}
	for _, ev := range healthy.events {
		if ev.Pipeline.ID != p.ID || ev.Pipeline.Number != p.Number || ev.Pipeline.Repo != "acme/backend" ||
			ev.Pipeline.Revision != "0123456789abcdef" || ev.Pipeline.Branch != "main" || ev.Pipeline.App != "backend" {
			t.Errorf("event %s carries pipeline %+v", ev.Kind, ev.Pipeline)
		}
	}
	var noStarts []string
	for _, k := range all {
		if !strings.HasPrefix(k, "job.started") {
			noStarts = append(noStarts, k)
		}
	}
	if diff := cmp.Diff(noStarts, refusing.kinds()); diff != "" {
		t.Errorf("the consumer that refused job.started for good (-want +got):\n%s", diff)
	}
	if got := failing.kinds(); len(got) != 0 {
		t.Errorf("the failing consumer heard %v", got)
	}
	// The failing consumer asked for 30 s, more than its backoff's 1 s.
	if next, err := h.db.NextEventDue(ctx, "failing"); err != nil || next.Sub(h.clock.Now()) != 30*time.Second {
		t.Errorf("the failing consumer's next try in %v (%v), want 30s", next.Sub(h.clock.Now()), err)
	}
	down.Store(false)
	h.clock.Advance(30 * time.Second)
	if _, err := h.engine.DeliverEvents(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(all, failing.kinds()); diff != "" {
		t.Errorf("the failing consumer once it works (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(all, healthy.kinds()); diff != "" {
		t.Errorf("the healthy consumer heard events again (-want +got):\n%s", diff)
	}
	parked, err := h.db.ParkedEvents(ctx, "refusing")
	if err != nil || len(parked) != 2 {
		t.Errorf("parked for the refusing consumer: %+v, %v", parked, err)
	}
}
