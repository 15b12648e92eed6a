package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

func serial(j *workflows.PlannedJob, group string) *workflows.PlannedJob {
	j.SerialGroup, j.Spec.SerialGroup = group, group
	return j
}

func running(name string) func(*engine.PipelineState) bool {
	return func(st *engine.PipelineState) bool { return jobStatus(st, name).Status == engine.StatusRunning }
}

// TestSerialGroupRunsOneAtATime: the jobs of one group run one at a time
// across pipelines; another group's run beside them; the group is free
// again once its job ends, however it ended.
func TestSerialGroupRunsOneAtATime(t *testing.T) {
	h := newHarness(t, nil)
	h.script.outcome["migrate-2"] = workflows.StatusFailed
	gate := h.script.gate("migrate")
	first := h.submit("alice", wf("w", serial(build("migrate"), "db/prod")))
	h.wait(first.ID, running("migrate"))
	second := h.submit("bob", wf("w", serial(build("migrate-2"), "db/prod"), serial(build("other"), "db/staging")))
	st := h.wait(second.ID, func(st *engine.PipelineState) bool {
		return jobStatus(st, "other").Status == workflows.StatusSuccess && jobStatus(st, "migrate-2").Reason != ""
	})
	if r := jobStatus(st, "migrate-2").Reason; r != "waiting for serial group db/prod, which migrate holds" {
		t.Errorf("migrate-2 waits with %q", r)
	}
	locks, err := h.db.EnvLocks(context.Background(), "backend")
	if err != nil || len(locks) != 1 || locks[0].Env != "serial-group:db/prod" {
		t.Errorf("locks %+v, %v", locks, err)
	}
	close(gate)
	h.settle(first.ID)
	if st := h.settle(second.ID); jobStatus(st, "migrate-2").Status != workflows.StatusFailed {
		t.Fatalf("second: %s", describe(st))
	}
	// A third runs after a failure, and nothing is left held.
	third := h.submit("erin", wf("w", serial(build("migrate-3"), "db/prod")))
	if st := h.settle(third.ID); st.Pipeline.Status != workflows.StatusSuccess {
		t.Fatalf("third: %s", describe(st))
	}
	if locks, _ := h.db.EnvLocks(context.Background(), "backend"); len(locks) != 0 {
		t.Errorf("locks left: %+v", locks)
	}
	if h.script.maxSeen > 2 {
		t.Errorf("%d jobs ran at once", h.script.maxSeen)
	}
	want := []string{"start migrate", "start other", "end other", "end migrate", "start migrate-2", "end migrate-2", "start migrate-3", "end migrate-3"}
	if got := h.script.events(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("order %q", got)
	}
}

// TestSerialGroupSkipsOlderPipelines: when the group frees, a job of an
// older pipeline does not run while a newer pipeline's job waits: it is
// skipped, and the newer one runs.
func TestSerialGroupSkipsOlderPipelines(t *testing.T) {
	h := newHarness(t, nil)
	gate := h.script.gate("deploy-1")
	first := h.submit("alice", wf("w", serial(build("deploy-1"), "deploy")))
	h.wait(first.ID, running("deploy-1"))
	second := h.submit("bob", wf("w", serial(build("deploy-2"), "deploy"), build("after", "deploy-2")))
	h.wait(second.ID, func(st *engine.PipelineState) bool { return jobStatus(st, "deploy-2").Reason != "" })
	third := h.submit("erin", wf("w", serial(build("deploy-3"), "deploy")))
	h.wait(third.ID, func(st *engine.PipelineState) bool { return jobStatus(st, "deploy-3").Reason != "" })
	close(gate)
	st := h.settle(second.ID)
	if j := jobStatus(st, "deploy-2"); j.Status != workflows.StatusNotRun || j.Reason != "skipped: pipeline 3, newer, is in serial group deploy" {
		t.Errorf("deploy-2 %s (%s)", j.Status, j.Reason)
	}
	if j := jobStatus(st, "after"); j.Status != workflows.StatusNotRun {
		t.Errorf("after %s", j.Status)
	}
	if st := h.settle(third.ID); st.Pipeline.Status != workflows.StatusSuccess {
		t.Errorf("third: %s", describe(st))
	}
}

// TestSerialGroupWaitsFiveHours cancels a job that waited for its group
// longer than CircleCI lets it.
func TestSerialGroupWaitsFiveHours(t *testing.T) {
	h := newHarness(t, func(o *engine.Options) { o.Tick = 10 * time.Millisecond })
	gate := h.script.gate("long")
	defer close(gate)
	first := h.submit("alice", wf("w", serial(build("long"), "g")))
	h.wait(first.ID, running("long"))
	second := h.submit("bob", wf("w", serial(build("waits"), "g")))
	h.wait(second.ID, func(st *engine.PipelineState) bool { return jobStatus(st, "waits").Reason != "" })
	h.clock.Advance(5*time.Hour + time.Minute)
	st := h.settle(second.ID)
	if j := jobStatus(st, "waits"); j.Status != workflows.StatusCanceled || j.Reason != "waited more than 5h0m0s for serial group g" {
		t.Errorf("waits %s (%s)", j.Status, j.Reason)
	}
}

// TestSerialGroupThenEnvironment: a job of a group that deploys takes
// the group, then its environment's lock.
func TestSerialGroupThenEnvironment(t *testing.T) {
	h := newHarness(t, nil)
	gate := h.script.gate("deploy-a")
	first := h.submit("alice", wf("w", withContext(build("deploy-a"), "staging")))
	h.wait(first.ID, running("deploy-a"))
	second := h.submit("bob", wf("w", serial(withContext(build("deploy-b"), "staging"), "release")))
	st := h.wait(second.ID, func(st *engine.PipelineState) bool { return jobStatus(st, "deploy-b").Reason != "" })
	if r := jobStatus(st, "deploy-b").Reason; r != "waiting for the deploy to backend/staging in progress" {
		t.Errorf("deploy-b waits with %q", r)
	}
	close(gate)
	if st := h.settle(second.ID); st.Pipeline.Status != workflows.StatusSuccess {
		t.Fatalf("second: %s", describe(st))
	}
	deps, err := h.db.Deployments(context.Background(), "backend", "staging")
	if err != nil || len(deps) != 2 {
		t.Errorf("deployments %+v, %v", deps, err)
	}
	if locks, _ := h.db.EnvLocks(context.Background(), "backend"); len(locks) != 0 {
		t.Errorf("locks left: %+v", locks)
	}
}
