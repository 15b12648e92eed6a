package engine_test

import (
	"context"
	"slices"
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
