package engine_test

import (
	"context"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// A release is what one pipeline deployed to one environment, however
// many jobs it took: one numbered release per environment, settled when
// its last deploy job there ends, with one deployed event.
func TestReleases(t *testing.T) {
	h := newHarness(t, func(o *engine.Options) { o.Apps["backend"].LockAfterRollback = true })
	ctx := context.Background()
	fanOut := func() *workflows.PlannedWorkflow {
		return wf("deploy", build("test"), hold("hold", "test"),
			withContext(build("ecr", "hold"), "production"), withContext(build("lambda", "ecr"), "production"),
			withContext(build("beanstalk", "ecr"), "production"))
	}
	run := func(author string, trig workflows.Trigger) *engine.PipelineState {
		t.Helper()
		p, err := h.engine.Submit(ctx, engine.PipelineRequest{App: "backend", Repo: "acme/backend", Author: author,
			Trigger: trig, Plan: &workflows.Plan{Workflows: []*workflows.PlannedWorkflow{fanOut()}}})
		if err != nil {
			t.Fatal(err)
		}
		hold := jobStatus(h.wait(p.ID, onHold), "hold")
		if d, err := h.engine.Approve(ctx, hold.ID, engine.Actor{ID: "carol"}); err != nil || !d.Applied {
			t.Fatalf("approve: %+v, %v", d, err)
		}
		return h.wait(p.ID, func(st *engine.PipelineState) bool { return !st.Pipeline.Finished.IsZero() })
	}
	first := run("alice", workflows.Trigger{Branch: "main", Revision: "1111111111111111111111111111111111111111"})
	h.script.outcome["beanstalk"] = workflows.StatusFailed
	second := run("alice", workflows.Trigger{Branch: "main", Revision: "2222222222222222222222222222222222222222"})
	h.script.outcome["beanstalk"] = ""
	back := run("bob", workflows.Trigger{Branch: "main", Revision: "1111111111111111111111111111111111111111",
		Source: "chat", Deploy: &workflows.DeployValues{Environment: "production", Version: "v1", Rollback: true}})

	rel, err := h.db.Releases(ctx, "backend", "production")
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		Number           int
		Pipeline, Commit string
		Outcome          string
		Approved         string
		Rollback         bool
	}
	var gots []got
	for _, r := range slices.Backward(rel) {
		gots = append(gots, got{r.Number, r.PipelineID, r.Commit[:1], r.Outcome, r.ApprovedBy, r.Rollback})
	}
	want := []got{
		{1, first.Pipeline.ID, "1", "success", "carol", false},
		{2, second.Pipeline.ID, "2", "failed", "carol", false},
		{3, back.Pipeline.ID, "1", "success", "carol", true},
	}
	if !slices.Equal(gots, want) {
		t.Errorf("releases:\n got %+v\nwant %+v", gots, want)
	}
	if _, err := h.engine.DeliverEvents(ctx); err != nil {
		t.Fatal(err)
	}
	h.notifier.mu.Lock()
	var deployed []int
	for _, ev := range h.notifier.events {
		if ev.Kind == engine.EventDeployed {
			deployed = append(deployed, ev.Data.Release)
		}
	}
	h.notifier.mu.Unlock()
	if !slices.Equal(deployed, []int{1, 3}) {
		t.Errorf("deployed events for releases %v, want [1 3]", deployed)
	}
	// The rollback left production locked, so the next push waits.
	next, err := h.engine.Submit(ctx, engine.PipelineRequest{App: "backend", Repo: "acme/backend", Author: "alice",
		Trigger: workflows.Trigger{Branch: "main", Revision: "3333333333333333333333333333333333333333"},
		Plan:    &workflows.Plan{Workflows: []*workflows.PlannedWorkflow{wf("deploy", withContext(build("staging"), "staging"), withContext(build("after"), "production"))}}})
	if err != nil {
		t.Fatal(err)
	}
	st := h.wait(next.ID, func(st *engine.PipelineState) bool { return jobStatus(st, "after").Status == engine.StatusOnHold })
	if d, err := h.engine.Approve(ctx, jobStatus(st, "after").ID, engine.Actor{ID: "carol"}); err != nil || !d.Applied {
		t.Fatalf("approve: %+v, %v", d, err)
	}
	st = h.wait(next.ID, func(st *engine.PipelineState) bool {
		return jobStatus(st, "after").Reason != "" && jobStatus(st, "after").Status == engine.StatusQueued
	})
	if r := jobStatus(st, "after").Reason; r != "backend/production is locked by bob since 2026-01-02T03:04:05Z: locked after rollback" {
		t.Errorf("after the rollback, a deploy waits with %q", r)
	}
	if d, err := h.engine.Unlock(ctx, "backend", "production", engine.Actor{ID: "carol"}); err != nil || !d.Applied {
		t.Fatalf("unlock: %+v, %v", d, err)
	}
	if st := h.settle(next.ID); st.Pipeline.Status != workflows.StatusSuccess {
		t.Errorf("after unlock: %s", describe(st))
	}
}

// restoreRunner reports the commit it shipped, and records what a
// rollback asked it to restore.
type restoreRunner struct {
	mu       sync.Mutex
	restored []engine.Outputs
}

func (r *restoreRunner) RunNative(ctx context.Context, run *engine.NativeRun) (engine.Outputs, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if run.Job.Restore != nil {
		r.restored = append(r.restored, run.Job.Restore)
	}
	return engine.Outputs{"image": "backend:" + run.Job.Env["CIRCLE_SHA1"]}, nil
}

// A release keeps what its deploy jobs' native steps reported, and a
// rollback's deploy jobs get the artifacts of the release they go back
// to, to point the environment at them rather than build again.
func TestReleaseArtifactsAndRestore(t *testing.T) {
	runner := &restoreRunner{}
	h := newHarness(t, func(o *engine.Options) {
		o.Natives = map[string]engine.NativeRunner{engine.OrbAWS: runner}
		o.Executor = &fakeExecutor{run: func(ctx context.Context, job *engine.JobRun, log io.Writer) (engine.JobResult, error) {
			for _, s := range job.Spec.Steps {
				if s.Native != nil {
					if _, err := job.Native.RunNative(ctx, &engine.NativeRun{Job: job, Step: s.Native, Env: job.Env, Log: log}); err != nil {
						return engine.JobResult{Status: workflows.StatusFailed, Reason: err.Error()}, nil
					}
				}
			}
			return engine.JobResult{Status: workflows.StatusSuccess}, nil
		}}
	})
	ctx := context.Background()
	ship := func(trig workflows.Trigger) {
		t.Helper()
		j := withContext(build("ship"), "staging")
		j.Spec.Steps = []workflows.Step{native(engine.OrbAWS, "ecr-push", workflows.WhenOnSuccess, nil)}
		p, err := h.engine.Submit(ctx, engine.PipelineRequest{App: "backend", Repo: "acme/backend", Author: "alice", Trigger: trig,
			Plan: &workflows.Plan{Workflows: []*workflows.PlannedWorkflow{wf("deploy", j)}}})
		if err != nil {
			t.Fatal(err)
		}
		if st := h.settle(p.ID); st.Pipeline.Status != workflows.StatusSuccess {
			t.Fatal(describe(st))
		}
	}
	ship(workflows.Trigger{Branch: "main", Revision: "aaaa"})
	ship(workflows.Trigger{Branch: "main", Revision: "bbbb"})
	ship(workflows.Trigger{Revision: "aaaa", Source: "chat", Deploy: &workflows.DeployValues{Environment: "staging", Rollback: true}})
	rel, err := h.db.Releases(ctx, "backend", "staging")
	if err != nil || len(rel) != 3 {
		t.Fatalf("releases %+v, %v", rel, err)
	}
	if got := rel[2].Artifacts["image"]; got != "backend:aaaa" {
		t.Errorf("release #1 artifacts %v", rel[2].Artifacts)
	}
	if len(runner.restored) != 1 || runner.restored[0]["image"] != "backend:aaaa" {
		t.Errorf("the rollback restored %v, want release #1's artifacts", runner.restored)
	}
}
