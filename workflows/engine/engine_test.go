package engine_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

func TestDiamondRunsEachJobAfterItsRequires(t *testing.T) {
	h := newHarness(t, nil)
	p := h.submit("alice", wf("build", build("a"), build("b", "a"), build("c", "a"), build("d", "b", "c")))
	st := h.settle(p.ID)
	want := map[string]string{"": "success", "a": "success", "b": "success", "c": "success", "d": "success"}
	if diff := cmp.Diff(want, statuses(st)); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s", diff)
	}
	log := h.script.events()
	pos := func(s string) int { return slices.Index(log, s) }
	for _, before := range []string{"end b", "end c"} {
		if pos(before) > pos("start d") {
			t.Errorf("d started before %q: %v", before, log)
		}
	}
	if pos("end a") > pos("start b") || pos("end a") > pos("start c") {
		t.Errorf("b or c started before a ended: %v", log)
	}
}

func TestFailingBranchBesideSucceedingOne(t *testing.T) {
	h := newHarness(t, nil)
	h.script.outcome["b"] = workflows.StatusFailed
	p := h.submit("alice", wf("build",
		build("a"), build("b", "a"), build("c", "a"), build("after-b", "b"), build("after-c", "c")))
	st := h.settle(p.ID)
	want := map[string]string{"": "failed", "a": "success", "b": "failed", "c": "success", "after-b": "not_run", "after-c": "success"}
	if diff := cmp.Diff(want, statuses(st)); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s", diff)
	}
	if r := jobStatus(st, "after-b").Reason; r != "b ended failed" {
		t.Errorf("not_run reason = %q", r)
	}
	if jobStatus(st, "b").ExitCode != 1 {
		t.Errorf("exit code of b not recorded")
	}
}

func TestRequiresStatusForms(t *testing.T) {
	tests := []struct {
		name     string
		upstream string   // how the upstream job ends
		forms    []string // the downstream job's requires entry
		want     string   // the downstream job's status
		pipeline string
	}{
		{"plain requires, upstream succeeded", "success", nil, "success", "success"},
		{"plain requires, upstream failed", "failed", nil, "not_run", "failed"},
		{"failed form, upstream failed", "failed", []string{"failed"}, "success", "failed"},
		{"failed form, upstream succeeded", "success", []string{"failed"}, "skipped", "success"},
		{"failed form, upstream canceled", "canceled", []string{"failed"}, "not_run", "canceled"},
		{"not_run form, upstream succeeded", "success", []string{"not_run"}, "skipped", "success"},
		{"terminal form, upstream failed", "failed", []string{"terminal"}, "success", "failed"},
		{"terminal form, upstream succeeded", "success", []string{"terminal"}, "success", "success"},
		{"success or failed, upstream failed", "failed", []string{"success", "failed"}, "success", "failed"},
		{"canceled form, upstream failed", "failed", []string{"canceled"}, "not_run", "failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.script.outcome["up"] = tt.upstream
			down := build("down")
			down.Requires["up"] = tt.forms
			p := h.submit("alice", wf("build", build("up"), down))
			st := h.settle(p.ID)
			if got := jobStatus(st, "down").Status; got != tt.want {
				t.Errorf("down = %s, want %s", got, tt.want)
			}
			if st.Pipeline.Status != tt.pipeline {
				t.Errorf("pipeline = %s, want %s", st.Pipeline.Status, tt.pipeline)
			}
		})
	}
}

// TestSkippedJobs follows CircleCI's rollback example: a job that
// requires a failure is skipped when its upstream succeeds, and so is what
// requires it; the not_run and terminal forms accept a skipped job; a job
// behind a failure is still not run.
func TestSkippedJobs(t *testing.T) {
	h := newHarness(t, nil)
	h.script.outcome["unit"] = workflows.StatusFailed // "unit" sorts after "release"
	rollback := build("rollback")
	rollback.Requires["release"] = []string{workflows.StatusFailed, workflows.StatusCanceled}
	fallback := build("fallback")
	fallback.Requires["rollback"] = []string{workflows.StatusNotRun}
	cleanup := build("cleanup")
	cleanup.Requires["rollback"] = []string{workflows.StatusTerminal}
	mixed := build("mixed", "unit")
	mixed.Requires["release"] = []string{workflows.StatusFailed}
	onlyIfFailed := build("only-if-failed")
	onlyIfFailed.Requires["release"] = []string{workflows.StatusFailed}
	p := h.submit("alice",
		wf("release", build("release"), rollback, build("after-rollback", "rollback"), fallback, cleanup),
		wf("test", build("unit"), build("release"), mixed, onlyIfFailed))
	st := h.settle(p.ID)
	byWorkflow := map[string]map[string]string{}
	for _, w := range st.Workflows {
		byWorkflow[w.Name] = map[string]string{"": w.Status}
		for _, j := range st.Jobs {
			if j.WorkflowID == w.ID {
				byWorkflow[w.Name][j.Name] = j.Status + " (" + j.Reason + ")"
			}
		}
	}
	want := map[string]map[string]string{
		"release": {
			"":               "success",
			"release":        "success ()",
			"rollback":       "skipped (release ended success)",
			"after-rollback": "skipped (rollback ended skipped)",
			"fallback":       "success ()",
			"cleanup":        "success ()",
		},
		"test": {
			"":               "failed",
			"unit":           "failed ()",
			"release":        "success ()",
			"mixed":          "not_run (unit ended failed)",
			"only-if-failed": "skipped (release ended success)",
		},
	}
	if diff := cmp.Diff(want, byWorkflow); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if st.Pipeline.Status != workflows.StatusFailed {
		t.Errorf("pipeline = %s, want failed (by the test workflow alone)", st.Pipeline.Status)
	}
	d, err := h.engine.RerunJob(context.Background(), p.ID, "release", "rollback", engine.Actor{ID: "alice"})
	if err != nil || d.Applied || d.Code != engine.RefusedNothingToRun || d.Status != workflows.StatusSkipped {
		t.Errorf("rerun of a skipped job = %+v, %v", d, err)
	}
}

func TestParallelismBoundsRunningJobs(t *testing.T) {
	h := newHarness(t, func(o *engine.Options) { o.Parallelism = 2 })
	var jobs []*workflows.PlannedJob
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		jobs = append(jobs, build(n))
	}
	p := h.submit("alice", wf("build", jobs...))
	st := h.settle(p.ID)
	if st.Pipeline.Status != workflows.StatusSuccess {
		t.Fatalf("pipeline = %s", describe(st))
	}
	if h.script.maxSeen > 2 {
		t.Errorf("%d jobs ran at once, parallelism is 2", h.script.maxSeen)
	}
}

// deployFlow is the seed article's main-branch shape: test, deploy to
// staging, hold, deploy to production.
func deployFlow() *workflows.PlannedWorkflow {
	return wf("deploy",
		build("test"),
		withContext(build("deploy-staging", "test"), "staging", "aws"),
		hold("hold", "deploy-staging"),
		withContext(build("deploy-production", "hold"), "production", "aws"),
	)
}

func onHold(st *engine.PipelineState) bool { return st.Pipeline.Status == engine.StatusOnHold }

func TestApprovals(t *testing.T) {
	type press struct {
		who     engine.Actor
		approve bool
		applied bool
		code    engine.Code // why it changed nothing
		status  string      // the Decision's
	}
	tests := []struct {
		name       string
		author     string
		presses    []press
		expire     bool
		want       map[string]string
		approvedBy string // of the production deployment; "" for none
	}{
		{
			name: "approved by an approver", author: "alice",
			presses:    []press{{engine.Actor{ID: "carol"}, true, true, "", "approved"}},
			want:       map[string]string{"": "success", "hold": "success", "deploy-production": "success"},
			approvedBy: "carol",
		},
		{
			name: "approved through a group", author: "alice",
			presses:    []press{{engine.Actor{ID: "dave", Groups: []string{"sre"}}, true, true, "", "approved"}},
			want:       map[string]string{"": "success", "hold": "success", "deploy-production": "success"},
			approvedBy: "dave",
		},
		{
			name: "rejected", author: "alice",
			presses: []press{{engine.Actor{ID: "carol"}, false, true, "", "rejected"}},
			want:    map[string]string{"": "canceled", "hold": "canceled", "deploy-production": "not_run"},
		},
		{
			name: "double press", author: "alice",
			presses: []press{
				{engine.Actor{ID: "carol"}, true, true, "", "approved"},
				{engine.Actor{ID: "dave", Groups: []string{"sre"}}, true, false, engine.RefusedDecided, "approved"},
				{engine.Actor{ID: "carol"}, false, false, engine.RefusedDecided, "approved"},
			},
			want:       map[string]string{"": "success", "hold": "success", "deploy-production": "success"},
			approvedBy: "carol",
		},
		{
			name: "unauthorized press changes nothing", author: "alice",
			presses: []press{
				{engine.Actor{ID: "mallory"}, true, false, engine.RefusedNotAllowed, ""},
				{engine.Actor{ID: "carol"}, true, true, "", "approved"},
			},
			want:       map[string]string{"": "success", "hold": "success", "deploy-production": "success"},
			approvedBy: "carol",
		},
		{
			name: "self-approval refused where the environment forbids it", author: "carol",
			presses: []press{
				{engine.Actor{ID: "carol"}, true, false, engine.RefusedSelfApproval, ""},
				{engine.Actor{ID: "dave", Groups: []string{"sre"}}, true, true, "", "approved"},
			},
			want:       map[string]string{"": "success", "hold": "success", "deploy-production": "success"},
			approvedBy: "dave",
		},
		{
			name: "expired, then a late press", author: "alice", expire: true,
			presses: []press{{engine.Actor{ID: "carol"}, true, false, engine.RefusedDecided, "expired"}},
			want:    map[string]string{"": "canceled", "hold": "canceled", "deploy-production": "not_run"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			ctx := context.Background()
			p := h.submit(tt.author, deployFlow())
			st := h.wait(p.ID, onHold)
			holdJob := jobStatus(st, "hold")
			ap, err := h.db.Approval(ctx, holdJob.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(engine.Approvers{"production": {"carol", "sre"}}, ap.Approvers); diff != "" || ap.AllowSelf || ap.Envs[0] != "production" {
				t.Errorf("approval names %v (self %v) for %v", ap.Approvers, ap.AllowSelf, ap.Envs)
			}
			if got := ap.Expires.Sub(ap.Created); got != 7*24*time.Hour {
				t.Errorf("approval expires after %s, want 7 days", got)
			}
			if tt.expire {
				h.clock.Advance(7*24*time.Hour + time.Second)
				if err := h.engine.ExpireApprovals(ctx); err != nil {
					t.Fatal(err)
				}
			}
			for i, pr := range tt.presses {
				decide := h.engine.Reject
				if pr.approve {
					decide = h.engine.Approve
				}
				d, err := decide(ctx, holdJob.ID, pr.who)
				if err != nil {
					t.Fatal(err)
				}
				if d.Applied != pr.applied || d.Code != pr.code || d.Status != pr.status || d.Pipeline != p.Number {
					t.Errorf("press %d by %s = %+v, want applied %v, code %q, status %q", i, pr.who.ID, d, pr.applied, pr.code, pr.status)
				}
			}
			st = h.wait(p.ID, func(st *engine.PipelineState) bool { return !st.Pipeline.Finished.IsZero() })
			got := statuses(st)
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%q = %s, want %s (%s)", k, got[k], v, describe(st))
				}
			}
			deps, err := h.db.Deployments(ctx, "backend", "production")
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.approvedBy == "" && len(deps) != 0:
				t.Errorf("deployments = %+v, want none", deps)
			case tt.approvedBy != "" && (len(deps) != 1 || deps[0].ApprovedBy != tt.approvedBy || deps[0].StartedBy != tt.author):
				t.Errorf("deployments = %+v, want one approved by %s", deps, tt.approvedBy)
			}
			audit, err := h.db.AuditLog(ctx)
			if err != nil {
				t.Fatal(err)
			}
			presses := 0
			for _, a := range audit {
				if a.Action == "approve" || a.Action == "reject" {
					presses++
				}
			}
			if presses != len(tt.presses) {
				t.Errorf("%d presses audited, want %d: %+v", presses, len(tt.presses), audit)
			}
		})
	}
}

// One approval in front of deploys to two environments must be given by
// someone allowed in both, group membership included: the lists are not
// intersected by name, and an empty intersection never lets anyone in.
func TestApprovalGatingTwoEnvironmentsNeedsAnApproverOfEach(t *testing.T) {
	h := newHarness(t, func(o *engine.Options) {
		o.Apps = map[string]*engine.App{"backend": {Name: "backend", Environments: map[string]*engine.Environment{
			"eu": {Name: "eu", Approvers: []string{"erin", "sre"}},
			"us": {Name: "us", Approvers: []string{"uma", "oncall"}},
		}}}
	})
	ctx := context.Background()
	p := h.submit("alice", wf("deploy", hold("hold"),
		withContext(build("deploy-eu", "hold"), "eu"), withContext(build("deploy-us", "hold"), "us")))
	hold := jobStatus(h.wait(p.ID, onHold), "hold")
	for _, tt := range []struct {
		who     engine.Actor
		applied bool
	}{
		{engine.Actor{ID: "mallory"}, false},
		{engine.Actor{ID: "erin"}, false},
		{engine.Actor{ID: "uma", Groups: []string{"dev"}}, false},
		{engine.Actor{ID: "erin", Groups: []string{"oncall"}}, true},
	} {
		d, err := h.engine.Approve(ctx, hold.ID, tt.who)
		if err != nil {
			t.Fatal(err)
		}
		wantApprovers := engine.Approvers{"eu": {"erin", "sre"}, "us": {"uma", "oncall"}}
		if d.Applied != tt.applied || !tt.applied && (d.Code != engine.RefusedNotAllowed || !cmp.Equal(d.Approvers, wantApprovers)) {
			t.Errorf("%+v approves: %+v, want applied %v", tt.who, d, tt.applied)
		}
	}
	if st := h.settle(p.ID); st.Pipeline.Status != workflows.StatusSuccess {
		t.Errorf("pipeline: %s", describe(st))
	}
}

// An environment with approvers is protected like a GitHub environment:
// a deploy to it waits for one of them even when the workflow has no
// approval job, so a push that edits its config cannot skip the gate;
// being a deployer skips nothing.
func TestProtectedEnvironmentGatesDeploysWithoutAnApprovalJob(t *testing.T) {
	for _, tt := range []struct {
		name    string
		author  string
		presses []engine.Actor
		approve bool
		want    string
	}{
		{"approved by an approver", "alice", []engine.Actor{{ID: "carol"}}, true, "success"},
		{"a deployer's own push waits too, and is not self-approved", "carol", []engine.Actor{{ID: "carol"}, {ID: "dave", Groups: []string{"sre"}}}, true, "success"},
		{"rejected", "alice", []engine.Actor{{ID: "carol"}}, false, "canceled"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			ctx := context.Background()
			p := h.submit(tt.author, wf("deploy", build("test"), withContext(build("deploy-production", "test"), "production")))
			st := h.wait(p.ID, onHold)
			j := jobStatus(st, "deploy-production")
			if j.Status != engine.StatusOnHold || j.Reason != "waiting for approval to deploy to production" {
				t.Fatalf("deploy-production = %s (%s), want on hold at the gate", j.Status, j.Reason)
			}
			ap, err := h.db.Approval(ctx, j.ID)
			if err != nil || !cmp.Equal(ap.Approvers, engine.Approvers{"production": {"carol", "sre"}}) || ap.AllowSelf {
				t.Fatalf("gate = %+v, %v", ap, err)
			}
			var d engine.Decision
			for _, who := range tt.presses {
				if tt.approve {
					d, err = h.engine.Approve(ctx, j.ID, who)
				} else {
					d, err = h.engine.Reject(ctx, j.ID, who)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if !d.Applied {
				t.Fatalf("the last press changed nothing: %+v", d)
			}
			st = h.wait(p.ID, func(st *engine.PipelineState) bool { return !st.Pipeline.Finished.IsZero() })
			if got := jobStatus(st, "deploy-production").Status; got != tt.want {
				t.Errorf("deploy-production = %s, want %s (%s)", got, tt.want, describe(st))
			}
			if tt.want == "success" && h.script.attempts["deploy-production"] != 1 {
				t.Errorf("deploy-production ran %d times", h.script.attempts["deploy-production"])
			}
		})
	}
}

func TestDeploysToOneEnvironmentQueueInOrder(t *testing.T) {
	h := newHarness(t, nil)
	gate := h.script.gate("deploy-staging")
	first := h.submit("alice", wf("deploy", withContext(build("deploy-staging"), "staging")))
	h.wait(first.ID, func(st *engine.PipelineState) bool {
		return jobStatus(st, "deploy-staging").Status == engine.StatusRunning
	})
	second := h.submit("bob", wf("deploy", withContext(build("deploy-staging"), "staging")))
	third := h.submit("erin", wf("deploy", withContext(build("deploy-staging"), "staging")))
	st := h.wait(second.ID, func(st *engine.PipelineState) bool { return jobStatus(st, "deploy-staging").Reason != "" })
	if r := jobStatus(st, "deploy-staging").Reason; r != "waiting for the deploy to backend/staging in progress" {
		t.Errorf("second deploy waits with %q", r)
	}
	close(gate)
	for _, p := range []string{first.ID, second.ID, third.ID} {
		if st := h.settle(p); st.Pipeline.Status != workflows.StatusSuccess {
			t.Fatalf("pipeline %s: %s", p, describe(st))
		}
	}
	deps, err := h.db.Deployments(context.Background(), "backend", "staging")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range slices.Backward(deps) {
		got = append(got, d.PipelineID+" by "+d.StartedBy)
	}
	want := []string{first.ID + " by alice", second.ID + " by bob", third.ID + " by erin"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("deployments in order (-want +got):\n%s", diff)
	}
}

func TestManualLockHoldsDeploysUntilUnlocked(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	tests := []struct {
		name    string
		do      func() (engine.Decision, error)
		applied bool
		code    engine.Code
		actor   string
	}{
		{"stranger may not lock production", func() (engine.Decision, error) {
			return h.engine.Lock(ctx, "backend", "production", engine.Actor{ID: "mallory"}, "mine")
		}, false, engine.RefusedNotAllowed, ""},
		{"an approver may lock production", func() (engine.Decision, error) {
			return h.engine.Lock(ctx, "backend", "production", engine.Actor{ID: "dave", Groups: []string{"sre"}}, "incident")
		}, true, "", "dave"},
		{"lock staging", func() (engine.Decision, error) {
			return h.engine.Lock(ctx, "backend", "staging", engine.Actor{ID: "bob"}, "db migration")
		}, true, "", "bob"},
		{"lock it again", func() (engine.Decision, error) {
			return h.engine.Lock(ctx, "backend", "staging", engine.Actor{ID: "erin"}, "me too")
		}, false, engine.RefusedLocked, "bob"},
		{"a stranger may not unlock production", func() (engine.Decision, error) {
			return h.engine.Unlock(ctx, "backend", "production", engine.Actor{ID: "mallory"})
		}, false, engine.RefusedNotAllowed, ""},
		{"unlock production", func() (engine.Decision, error) {
			return h.engine.Unlock(ctx, "backend", "production", engine.Actor{ID: "carol"})
		}, true, "", "dave"},
		{"unlock what is not locked", func() (engine.Decision, error) {
			return h.engine.Unlock(ctx, "backend", "production", engine.Actor{ID: "carol"})
		}, false, engine.RefusedNotLocked, ""},
	}
	for _, tt := range tests {
		d, err := tt.do()
		if err != nil {
			t.Fatal(err)
		}
		if d.Applied != tt.applied || d.Code != tt.code || d.Actor != tt.actor {
			t.Errorf("%s: %+v, want applied %v, code %q, actor %q", tt.name, d, tt.applied, tt.code, tt.actor)
		}
	}
	p := h.submit("alice", wf("deploy", withContext(build("deploy-staging"), "staging")))
	st := h.wait(p.ID, func(st *engine.PipelineState) bool { return jobStatus(st, "deploy-staging").Reason != "" })
	if r := jobStatus(st, "deploy-staging").Reason; !strings.Contains(r, "backend/staging is locked by bob") || !strings.Contains(r, "db migration") {
		t.Errorf("waiting reason = %q", r)
	}
	if _, err := h.engine.DeliverEvents(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(h.notifier.kinds(p.ID), "job.waiting deploy-staging") {
		t.Errorf("no job.waiting event: %v", h.notifier.kinds(p.ID))
	}
	d, err := h.engine.Unlock(ctx, "backend", "staging", engine.Actor{ID: "bob"})
	if err != nil || !d.Applied {
		t.Fatalf("unlock = %+v, %v", d, err)
	}
	if st := h.settle(p.ID); st.Pipeline.Status != workflows.StatusSuccess {
		t.Fatalf("after unlock: %s", describe(st))
	}
}

func TestCancelStopsRunningAndWaitingJobs(t *testing.T) {
	h := newHarness(t, nil)
	h.script.gate("slow")
	p := h.submit("alice", wf("build", build("slow"), build("after", "slow")), wf("other", hold("hold"), build("x", "hold")))
	h.wait(p.ID, func(st *engine.PipelineState) bool { return jobStatus(st, "slow").Status == engine.StatusRunning })
	d, err := h.engine.Cancel(context.Background(), p.ID, engine.Actor{ID: "alice"})
	if err != nil || !d.Applied {
		t.Fatalf("cancel = %+v, %v", d, err)
	}
	st := h.wait(p.ID, func(st *engine.PipelineState) bool { return !st.Pipeline.Finished.IsZero() })
	want := map[string]string{"": "canceled", "slow": "canceled", "after": "canceled", "hold": "canceled", "x": "canceled"}
	if diff := cmp.Diff(want, statuses(st)); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	d, err = h.engine.Cancel(context.Background(), p.ID, engine.Actor{ID: "alice"})
	if err != nil || d.Applied || d.Code != engine.RefusedEnded || d.Status != workflows.StatusCanceled || d.Pipeline != p.Number {
		t.Errorf("second cancel = %+v, %v", d, err)
	}
}

func TestRerunKeepsAttemptHistory(t *testing.T) {
	tests := []struct {
		name     string
		rerun    func(h *harness, p string) (engine.Decision, error)
		attempts map[string]int // executor runs per job, in all
	}{
		{"failed job", func(h *harness, p string) (engine.Decision, error) {
			return h.engine.RerunJob(context.Background(), p, "build", "flaky", engine.Actor{ID: "alice"})
		}, map[string]int{"a": 1, "flaky": 2, "after": 1}},
		{"whole workflow", func(h *harness, p string) (engine.Decision, error) {
			return h.engine.RerunWorkflow(context.Background(), p, "build", engine.Actor{ID: "alice"})
		}, map[string]int{"a": 2, "flaky": 2, "after": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.script.outcome["flaky"] = workflows.StatusFailed
			p := h.submit("alice", wf("build", build("a"), build("flaky", "a"), build("after", "flaky")))
			if st := h.settle(p.ID); st.Pipeline.Status != workflows.StatusFailed {
				t.Fatalf("first run: %s", describe(st))
			}
			h.script.mu.Lock()
			h.script.outcome["flaky"] = workflows.StatusSuccess
			h.script.mu.Unlock()
			d, err := tt.rerun(h, p.ID)
			if err != nil || !d.Applied {
				t.Fatalf("rerun = %+v, %v", d, err)
			}
			st := h.wait(p.ID, func(st *engine.PipelineState) bool { return !st.Pipeline.Finished.IsZero() })
			if st.Pipeline.Status != workflows.StatusSuccess {
				t.Fatalf("after rerun: %s", describe(st))
			}
			if diff := cmp.Diff(tt.attempts, h.script.attempts); diff != "" {
				t.Errorf("runs per job (-want +got):\n%s", diff)
			}
			history, err := h.db.Attempts(context.Background(), jobStatus(st, "flaky").ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(history) != 2 || history[0].Status != "failed" || history[1].Status != "success" || history[1].Number != 2 {
				t.Errorf("flaky's attempts = %+v", history)
			}
		})
	}
}

func TestRerunRefusals(t *testing.T) {
	h := newHarness(t, nil)
	p := h.submit("alice", wf("build", build("a")))
	h.settle(p.ID)
	d, err := h.engine.RerunJob(context.Background(), p.ID, "build", "a", engine.Actor{ID: "alice"})
	if err != nil || d.Applied || d.Code != engine.RefusedNothingToRun || d.Status != workflows.StatusSuccess {
		t.Errorf("rerun of a successful job = %+v, %v", d, err)
	}
	// A pipeline that deploys to production is production's to control:
	// its deployers, its approvers and the change's authors.
	prod := h.submit("alice", wf("deploy", withContext(build("deploy-production"), "production")))
	h.wait(prod.ID, onHold)
	ctx := context.Background()
	for _, who := range []engine.Actor{{ID: "mallory"}, {ID: "bob", Groups: []string{"dev"}}} {
		if d, err := h.engine.Cancel(ctx, prod.ID, who); err != nil || d.Code != engine.RefusedNotAllowed {
			t.Errorf("cancel by %s = %+v, %v", who.ID, d, err)
		}
		if d, err := h.engine.RerunWorkflow(ctx, prod.ID, "deploy", who); err != nil || d.Code != engine.RefusedNotAllowed {
			t.Errorf("rerun by %s = %+v, %v", who.ID, d, err)
		}
	}
	if d, err := h.engine.Cancel(ctx, prod.ID, engine.Actor{ID: "erin", Groups: []string{"sre"}}); err != nil || !d.Applied {
		t.Errorf("cancel by an approver = %+v, %v", d, err)
	}
}

func TestDownNotifierNeverStallsAPipeline(t *testing.T) {
	h := newHarness(t, nil)
	h.notifier.mu.Lock()
	h.notifier.fail = true
	h.notifier.mu.Unlock()
	p := h.submit("alice", wf("build", build("a"), build("b", "a")))
	if st := h.settle(p.ID); st.Pipeline.Status != workflows.StatusSuccess {
		t.Fatalf("pipeline: %s", describe(st))
	}
	h.notifier.mu.Lock()
	h.notifier.fail = false
	h.notifier.mu.Unlock()
	h.clock.Advance(time.Hour)
	if _, err := h.engine.DeliverEvents(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"pipeline.created ", "job.started a", "job.finished a", "job.started b", "job.finished b",
		"workflow.finished ", "pipeline.finished "}
	if diff := cmp.Diff(want, h.notifier.kinds(p.ID)); diff != "" {
		t.Errorf("events delivered in order (-want +got):\n%s", diff)
	}
}

func TestJobsGetCircleCIEnvironmentAndMaskedSecrets(t *testing.T) {
	h := newHarness(t, nil)
	h.script.output["deploy"] = "key is hunter2-secret\nregion eu-west-1\n"
	p := h.submit("alice", wf("build", withContext(build("deploy"), "aws")))
	st := h.settle(p.ID)
	j := jobStatus(st, "deploy")
	env := h.script.env["deploy"]
	want := map[string]string{
		"CI": "true", "CIRCLECI": "true", "CIRCLE_SHA1": "0123456789abcdef", "CIRCLE_BRANCH": "main",
		"CIRCLE_JOB": "deploy", "CIRCLE_BUILD_NUM": "1", "CIRCLE_WORKFLOW_ID": j.WorkflowID,
		"CIRCLE_PIPELINE_ID": p.ID, "CIRCLE_PROJECT_USERNAME": "acme", "CIRCLE_PROJECT_REPONAME": "backend",
		"CIRCLE_USERNAME": "alice", "AWS_REGION": "eu-west-1", "AWS_SECRET_ACCESS_KEY": "hunter2-secret",
	}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if got := readLog(t, h, j.AttemptID); got != "key is ********\nregion eu-west-1\n" {
		t.Errorf("log = %q", got)
	}
}

func TestUndefinedContextFailsTheJob(t *testing.T) {
	h := newHarness(t, nil)
	p := h.submit("alice", wf("build", withContext(build("a"), "nope")))
	st := h.settle(p.ID)
	if j := jobStatus(st, "a"); j.Status != workflows.StatusFailed || j.Reason != `context "nope" is not defined` {
		t.Errorf("a = %s (%s)", j.Status, j.Reason)
	}
}

func TestRestartFailsInterruptedAttempts(t *testing.T) {
	h := newHarness(t, nil)
	h.script.gate("slow")
	inExecutor := h.script.inExecutor("slow")
	p := h.submit("alice", wf("build", build("slow"), build("after", "slow")), wf("gated", hold("hold"), build("x", "hold")))
	<-inExecutor
	st := h.wait(p.ID, func(st *engine.PipelineState) bool { return jobStatus(st, "slow").Status == engine.StatusRunning })
	attempt := jobStatus(st, "slow").AttemptID
	// A shutdown that runs out of time abandons the attempt: the store
	// still says running, as after a crash.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.engine.Shutdown(ctx); err == nil {
		t.Fatal("shutdown with a running job and no time left returned nil")
	}
	var cleaned []string
	opts := h.opts
	opts.Executor = &fakeExecutor{run: h.script.executor().run, cleanup: func(ctx context.Context, id string) error {
		cleaned = append(cleaned, id)
		return nil
	}}
	h.engine = engine.New(opts)
	if err := h.engine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	st = h.settle(p.ID)
	want := map[string]string{"": "on_hold", "slow": "failed", "after": "not_run", "hold": "on_hold", "x": "blocked"}
	if diff := cmp.Diff(want, statuses(st)); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if r := jobStatus(st, "slow").Reason; r != "interrupted by restart" {
		t.Errorf("reason = %q", r)
	}
	if diff := cmp.Diff([]string{attempt}, cleaned); diff != "" {
		t.Errorf("cleaned up (-want +got):\n%s", diff)
	}
	if n := h.script.attempts["slow"]; n != 1 {
		t.Errorf("slow ran %d times", n)
	}
}

func TestRestartExpiresApprovalsThatRanOutMeanwhile(t *testing.T) {
	h := newHarness(t, nil)
	p := h.submit("alice", deployFlow())
	h.wait(p.ID, onHold)
	if err := h.engine.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(8 * 24 * time.Hour)
	h.engine = engine.New(h.opts)
	if err := h.engine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := h.wait(p.ID, func(st *engine.PipelineState) bool { return !st.Pipeline.Finished.IsZero() })
	want := map[string]string{"": "canceled", "test": "success", "deploy-staging": "success", "hold": "canceled", "deploy-production": "not_run"}
	if diff := cmp.Diff(want, statuses(st)); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if r := jobStatus(st, "hold").Reason; r != "approval expired" {
		t.Errorf("hold reason = %q", r)
	}
}

// A deploy queued behind another starts when that one's result releases
// the lock, even when the scheduler looks at the queued pipeline before
// it records the result (its ID sorts first).
func TestQueuedDeployStartsWhenTheLockIsReleased(t *testing.T) {
	h := newHarness(t, func(o *engine.Options) { o.IDs = &seqIDs{down: true} })
	gate := h.script.gate("deploy-staging")
	first := h.submit("alice", wf("deploy", withContext(build("deploy-staging"), "staging")))
	h.wait(first.ID, func(st *engine.PipelineState) bool {
		return jobStatus(st, "deploy-staging").Status == engine.StatusRunning
	})
	second := h.submit("bob", wf("deploy", withContext(build("deploy-staging"), "staging")))
	h.wait(second.ID, func(st *engine.PipelineState) bool { return jobStatus(st, "deploy-staging").Reason != "" })
	if second.ID > first.ID {
		t.Fatalf("IDs %s and %s: the queued pipeline must sort first", second.ID, first.ID)
	}
	close(gate)
	for _, p := range []string{first.ID, second.ID} {
		if st := h.settle(p); st.Pipeline.Status != workflows.StatusSuccess {
			t.Fatalf("pipeline %s: %s", p, describe(st))
		}
	}
}
