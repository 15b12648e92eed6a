package engine_test

import (
	"context"
	"sync"
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
}

func (s *hookStore) Update(ctx context.Context, fn func(tx engine.StoreTx) error) error {
	s.mu.Lock()
	fail := s.fail
	s.mu.Unlock()
	if fail != nil {
		if err := fail(); err != nil {
			return err
		}
	}
	spy := &startSpy{StoreTx: nil}
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
}

func (t *startSpy) StartAttempt(ctx context.Context, a *engine.AttemptRecord, app string) error {
	t.started = a.PipelineID
	return t.StoreTx.StartAttempt(ctx, a, app)
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
