package store

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// TestCachedStatesStayInStepWithTheDatabase runs pipelines through the
// engine down every path that changes jobs, workflows and pipelines
// (failures, status forms, approvals approved and rejected, a cancel, a
// deploy queue, a rerun) with every cached read checked against the
// database.
func TestCachedStatesStayInStepWithTheDatabase(t *testing.T) {
	db := openTest(t)
	db.cache.verify = true
	ctx := context.Background()
	var mu sync.Mutex
	fail := map[string]bool{"b": true}
	gate := make(chan struct{})
	exec := execFunc(func(ctx context.Context, job *engine.JobRun, log io.Writer) (engine.JobResult, error) {
		fmt.Fprintf(log, "==> %s\n", job.JobName)
		if job.JobName == "slow" {
			select {
			case <-gate:
			case <-ctx.Done():
				return engine.JobResult{Status: workflows.StatusCanceled}, nil
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if fail[job.JobName] {
			return engine.JobResult{Status: workflows.StatusFailed, ExitCode: 1}, nil
		}
		return engine.JobResult{Status: workflows.StatusSuccess}, nil
	})
	e := engine.New(engine.Options{Store: db, Executor: exec, Parallelism: 2, DataDir: t.TempDir(),
		Apps: map[string]*engine.App{"backend": {Name: "backend", Environments: map[string]*engine.Environment{
			"staging": {Name: "staging", AllowSelfApproval: true}}}}})
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var release sync.Once
	t.Cleanup(func() {
		release.Do(func() { close(gate) })
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		e.Shutdown(sctx)
	})
	submit := func(jobs ...*workflows.PlannedJob) string {
		t.Helper()
		p, err := e.Submit(ctx, engine.PipelineRequest{App: "backend", Repo: "acme/backend", Author: "alice",
			Plan: &workflows.Plan{Workflows: []*workflows.PlannedWorkflow{{Name: "main", Jobs: jobs}}}})
		if err != nil {
			t.Fatal(err)
		}
		return p.ID
	}
	wait := func(id string, cond func(*engine.PipelineState) bool) *engine.PipelineState {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		st, err := e.Wait(wctx, id, cond)
		if err != nil {
			st, serr := db.PipelineState(context.Background(), id)
			var b strings.Builder
			if serr == nil {
				fmt.Fprintf(&b, "pipeline %s", st.Pipeline.Status)
				for _, j := range st.Jobs {
					fmt.Fprintf(&b, "; %s=%s", j.Name, j.Status)
				}
			}
			t.Fatalf("pipeline %s: %v (cache: %v); in the store: %s %v", id, err, db.cache.mismatch, b.String(), serr)
		}
		return st
	}
	settled := func(id string) *engine.PipelineState { return wait(id, engine.Settled) }
	jobID := func(st *engine.PipelineState, name string) string {
		for _, j := range st.Jobs {
			if j.Name == name {
				return j.ID
			}
		}
		t.Fatalf("no job %s", name)
		return ""
	}

	forms := submit(job("a"), job("b", "a"), job("c", "b"), job("d", "b:failed"), job("e", "a:failed"), job("f", "e"))
	approved := submit(job("build"), holdJob("hold", "build"), job("release", "hold"))
	rejected := submit(holdJob("hold"), job("release", "hold"))
	canceled := submit(job("slow"), job("after", "slow"))
	deploys := []string{submit(staging("deploy")), submit(staging("deploy"))}

	d, err := e.Approve(ctx, jobID(wait(approved, onHold), "hold"), engine.Actor{ID: "carol"})
	if err != nil || !d.Applied {
		t.Fatalf("approve: %+v, %v", d, err)
	}
	if d, err := e.Reject(ctx, jobID(wait(rejected, onHold), "hold"), engine.Actor{ID: "alice"}); err != nil || !d.Applied {
		t.Fatalf("reject: %+v, %v", d, err)
	}
	wait(canceled, func(st *engine.PipelineState) bool { return st.Jobs[0].Status == engine.StatusRunning })
	if d, err := e.Cancel(ctx, canceled, engine.Actor{ID: "alice"}); err != nil || !d.Applied {
		t.Fatalf("cancel: %+v, %v", d, err)
	}
	for _, id := range append([]string{forms, approved, rejected, canceled}, deploys...) {
		settled(id)
	}
	mu.Lock()
	fail["b"] = false
	mu.Unlock()
	if d, err := e.RerunJob(ctx, forms, "main", "b", engine.Actor{ID: "alice"}); err != nil || !d.Applied {
		t.Fatalf("rerun: %+v, %v", d, err)
	}
	st := settled(forms)
	if st.Pipeline.Status != workflows.StatusSuccess {
		t.Errorf("rerun pipeline ended %s", st.Pipeline.Status)
	}
	if db.cache.mismatch != nil {
		t.Fatal(db.cache.mismatch)
	}
	if db.cache.hits == 0 {
		t.Fatal("nothing was read from the cache")
	}
}

type execFunc func(ctx context.Context, job *engine.JobRun, log io.Writer) (engine.JobResult, error)

func (f execFunc) Run(ctx context.Context, job *engine.JobRun, log io.Writer) (engine.JobResult, error) {
	return f(ctx, job, log)
}

func (f execFunc) Cleanup(context.Context, string) error { return nil }

// job is a build job; each requirement is "name" or "name:status".
func job(name string, requires ...string) *workflows.PlannedJob {
	j := &workflows.PlannedJob{Name: name, Job: name, Type: workflows.JobBuild, Requires: map[string][]string{},
		Spec: &workflows.JobSpec{Steps: []workflows.Step{{Run: &workflows.RunStep{Command: "true"}}}}}
	for _, r := range requires {
		up, status, ok := strings.Cut(r, ":")
		j.Requires[up] = nil
		if ok {
			j.Requires[up] = []string{status}
		}
	}
	return j
}

func holdJob(name string, requires ...string) *workflows.PlannedJob {
	j := job(name, requires...)
	j.Type, j.Spec = workflows.JobApproval, nil
	return j
}

func staging(name string) *workflows.PlannedJob {
	j := job(name)
	j.Context = []string{"staging"}
	return j
}

func onHold(st *engine.PipelineState) bool { return st.Pipeline.Status == engine.StatusOnHold }

func TestCacheForgetsWhatAnotherProcessChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "slipway.db")
	ctx := context.Background()
	var dbs [2]*DB
	for i := range dbs {
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}
	if _, err := createPipeline(ctx, dbs[0], newPipeline("p1", "a"), nil); err != nil {
		t.Fatal(err)
	}
	status := func(db *DB) (s string) {
		t.Helper()
		if err := db.Update(ctx, func(tx engine.StoreTx) error {
			st, err := tx.PipelineState(ctx, "p1")
			if err == nil {
				s = st.Jobs[0].Status
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got := status(dbs[0]); got != engine.StatusBlocked {
		t.Fatalf("status = %s", got)
	}
	if err := dbs[1].Update(ctx, func(tx engine.StoreTx) error {
		return tx.SetJobStatus(ctx, "p1-j", engine.StatusQueued, "", time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	if got := status(dbs[0]); got != engine.StatusQueued {
		t.Errorf("after another connection's change, status = %s, want queued", got)
	}
}
