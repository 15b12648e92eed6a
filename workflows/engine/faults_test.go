package engine_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// hookStore is a Store whose write transactions can be watched and
// broken: afterStart runs once a transaction that started an attempt has
// returned to the engine, and fail, while it returns an error, makes
// transactions fail without reaching the store.
type hookStore struct {
	engine.Store
	mu         sync.Mutex
	afterStart func(pipelineID string)
	fail       func() error
	// duringStart runs inside each transaction that starts an attempt,
	// before it commits.
	duringStart func()
}

func (s *hookStore) broken() error {
	s.mu.Lock()
	fail := s.fail
	s.mu.Unlock()
	if fail != nil {
		return fail()
	}
	return nil
}

func (s *hookStore) DueEvents(ctx context.Context, consumer string, now time.Time, limit int) ([]engine.Event, error) {
	if err := s.broken(); err != nil {
		return nil, err
	}
	return s.Store.DueEvents(ctx, consumer, now, limit)
}

func (s *hookStore) MarkEventsDelivered(ctx context.Context, consumer string, seqs []int64, at time.Time) error {
	if err := s.broken(); err != nil {
		return err
	}
	return s.Store.MarkEventsDelivered(ctx, consumer, seqs, at)
}

func (s *hookStore) Update(ctx context.Context, fn func(tx engine.StoreTx) error) error {
	if err := s.broken(); err != nil {
		return err
	}
	spy := &startSpy{StoreTx: nil, during: s.duringStart}
	err := s.Store.Update(ctx, func(tx engine.StoreTx) error {
		spy.StoreTx, spy.started = tx, ""
		return fn(spy)
	})
	s.mu.Lock()
	hook := s.afterStart
	if err == nil && spy.started != "" && hook != nil {
		s.afterStart = nil
	} else {
		hook = nil
	}
	s.mu.Unlock()
	if hook != nil {
		hook(spy.started)
	}
	return err
}

// startSpy notes the pipeline of an attempt started in a transaction.
type startSpy struct {
	engine.StoreTx
	started string
	during  func()
}

func (t *startSpy) StartAttempt(ctx context.Context, a *engine.AttemptRecord, app string) error {
	t.started = a.PipelineID
	if t.during != nil {
		t.during()
	}
	return t.StoreTx.StartAttempt(ctx, a, app)
}

// Shutdown waits for a job that a round of the scheduler begun before it
// launches: it neither returns while that job runs nor lets it run on
// past its return.
func TestShutdownWaitsForAJobBeingStarted(t *testing.T) {
	inTx, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	h := newHarness(t, func(o *engine.Options) {
		o.Store = &hookStore{Store: o.Store, duringStart: func() {
			once.Do(func() { close(inTx); <-release })
		}}
	})
	gate := h.script.gate("a")
	h.submit("alice", wf("build", build("a")))
	<-inTx // the round is starting job a
	done := make(chan error, 1)
	go func() { done <- h.engine.Shutdown(context.Background()) }()
	time.Sleep(100 * time.Millisecond) // Shutdown has begun
	close(release)
	select {
	case <-h.script.inExecutor("a"):
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) before job a, started by a round begun before it, ran", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) while job a, started by a round begun before it, was running", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := h.script.events(); !slices.Contains(got, "end a") {
		t.Errorf("Shutdown returned before job a ended: %v", got)
	}
}

// A cancel decided after the transaction that starts a job committed,
// but before the engine handed the attempt to its executor, reaches the
// attempt all the same: the job ends canceled, not success.
func TestCancelReachesAnAttemptBeingStarted(t *testing.T) {
	var hs *hookStore
	var h *harness
	gate := make(chan struct{})
	var canceled engine.Decision
	h = newHarness(t, func(o *engine.Options) {
		hs = &hookStore{Store: o.Store}
		hs.afterStart = func(pipelineID string) {
			// The interleaving the engine must survive: the start is
			// committed, its attempt not yet in the executor.
			var err error
			canceled, err = h.engine.Cancel(context.Background(), pipelineID, engine.Actor{ID: "alice"})
			if err != nil {
				t.Errorf("cancel: %v", err)
			}
			// Were the cancel lost, the job would end well after this.
			time.AfterFunc(2*time.Second, func() { close(gate) })
		}
		o.Store = hs
	})
	h.script.gates["slow"] = gate
	p := h.submit("alice", wf("build", build("slow"), build("after", "slow")))
	st := h.wait(p.ID, func(st *engine.PipelineState) bool { return !st.Pipeline.Finished.IsZero() })
	if !canceled.Applied {
		t.Fatalf("cancel was not applied: %+v", canceled)
	}
	if got := statuses(st); got["slow"] != workflows.StatusCanceled || got[""] != workflows.StatusCanceled {
		t.Errorf("a cancel decided before the attempt reached its executor was lost: %s", describe(st))
	}
}

// A store that refuses writes (a full disk) delays a pipeline, never
// loses its results: the result of a job that ended meanwhile is recorded
// once the store works again, and the pipeline goes on. The operator sees
// one error line for the episode, not one per retry.
func TestStoreFailuresAreRetriedUntilTheyWork(t *testing.T) {
	var logs syncBuffer
	var broken atomic.Bool
	h := newHarness(t, func(o *engine.Options) {
		o.Store = &hookStore{Store: o.Store, fail: func() error {
			if broken.Load() {
				return errors.New("database or disk is full")
			}
			return nil
		}}
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		o.RetryMin, o.RetryMax = 10*time.Millisecond, 10*time.Millisecond
	})
	gate := h.script.gate("a")
	p := h.submit("alice", wf("build", build("a"), build("b", "a")))
	<-h.script.inExecutor("a")
	broken.Store(true)
	close(gate)
	time.Sleep(600 * time.Millisecond) // long enough for several retries
	st, err := h.db.PipelineState(context.Background(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := jobStatus(st, "a").Status; got != engine.StatusRunning {
		t.Fatalf("while the store refused writes, job a became %s", got)
	}
	broken.Store(false)
	st = h.settle(p.ID)
	if st.Pipeline.Status != workflows.StatusSuccess || jobStatus(st, "b").Status != workflows.StatusSuccess {
		t.Fatalf("after the store came back: %s", describe(st))
	}
	out := logs.String()
	if n := strings.Count(out, "the store is failing"); n != 1 {
		t.Errorf("%d error lines for one episode, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "level=ERROR"); n != 1 {
		t.Errorf("%d error lines in all, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "the store works again"); n != 1 {
		t.Errorf("%d recovery lines, want 1:\n%s", n, out)
	}
}

// syncBuffer is a bytes.Buffer safe for the engine's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
