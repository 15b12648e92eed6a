package forge_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/slipway-ci/slipway/forge"
	"github.com/slipway-ci/slipway/forge/forgetest"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// events builds a pipeline's events by hand, numbered as the store
// would.
type events struct {
	p   engine.PipelineRef
	seq *int64
	all []engine.Event
}

func newEvents(seq *int64, id string, number int, sha string) *events {
	return &events{seq: seq, p: engine.PipelineRef{ID: id, Number: number, App: "backend", Repo: repo, Revision: sha,
		Branch: "main", Author: "alice", Source: "webhook"}}
}

func (e *events) add(kind string, d engine.EventData) engine.Event {
	*e.seq++
	ev := engine.Event{Seq: *e.seq, PipelineID: e.p.ID, Pipeline: e.p, Kind: kind, At: time.Unix(1700000000+*e.seq, 0), Data: d}
	e.all = append(e.all, ev)
	return ev
}

// job is the EventData naming a job of the workflow "main".
func job(name, attempt string) engine.EventData {
	return engine.EventData{Workflow: "main", WorkflowID: "w1", Job: name, JobID: "j-" + name, AttemptID: attempt}
}

func with(d engine.EventData, f func(*engine.EventData)) engine.EventData {
	f(&d)
	return d
}

func notifyAll(t *testing.T, n *forge.Notifier, evs []engine.Event) {
	t.Helper()
	for _, ev := range evs {
		if err := n.Notify(context.Background(), ev); err != nil {
			t.Fatalf("Notify %d %s %s: %v", ev.Seq, ev.Kind, ev.Data.Job, err)
		}
	}
}

func targetURL(ev engine.Event) string {
	return "https://slipway.example.com/pipelines/" + ev.PipelineID + "#" + ev.Data.Job
}

func TestNotifierStatuses(t *testing.T) {
	gh, c := setup(t)
	sha := gh.AddCommit(repo, "main", forgetest.Commit{Files: map[string]string{"README": "x"}})
	kv := newKV()
	n := forge.NewNotifier(c, kv, forge.NotifierOptions{TargetURL: targetURL})
	var seq int64
	e := newEvents(&seq, "p1", 12, sha)
	long := strings.Repeat("the smoke test could not reach https://staging.example.com/healthz ", 4)
	e.add(engine.EventPipelineCreated, engine.EventData{Actor: "alice"})
	e.add(engine.EventJobStarted, job("build", "a1"))
	e.add(engine.EventJobFinished, with(job("build", "a1"), func(d *engine.EventData) { d.Status = "success" }))
	e.add(engine.EventJobStarted, job("test", "a2"))
	e.add(engine.EventJobFinished, with(job("test", "a2"), func(d *engine.EventData) { d.Status, d.ExitCode = "failed", 2 }))
	e.add(engine.EventJobFinished, with(job("lint", "a3"), func(d *engine.EventData) { d.Status, d.Reason = "failed", "no output for 10m0s" }))
	e.add(engine.EventJobFinished, with(job("smoke", "a4"), func(d *engine.EventData) { d.Status, d.Reason = "failed", long }))
	e.add(engine.EventJobFinished, with(job("migrate", ""), func(d *engine.EventData) { d.Status, d.Reason = "not_run", "test failed" }))
	e.add(engine.EventApprovalNeeded, with(job("hold", ""), func(d *engine.EventData) { d.Env = "production" }))
	e.add(engine.EventApprovalDecided, with(job("hold", ""), func(d *engine.EventData) { d.Status, d.Actor = "rejected", "U0BOB" }))
	e.add(engine.EventJobFinished, with(job("hold", ""), func(d *engine.EventData) { d.Status, d.Reason = "canceled", "rejected by U0BOB" }))
	e.add(engine.EventJobFinished, with(job("notify", ""), func(d *engine.EventData) { d.Status = "skipped" }))
	e.add(engine.EventJobWaiting, with(job("deploy", ""), func(d *engine.EventData) {
		d.Reason, d.Env = "backend/staging is locked by pipeline 11", "staging"
	}))
	e.add(engine.EventJobFinished, with(job("deploy", ""), func(d *engine.EventData) {
		d.Status, d.Reason, d.Env = "unauthorized", "alice may not deploy to backend/staging without an approval by its approvers", "staging"
	}))
	e.add(engine.EventWorkflowFinished, engine.EventData{Workflow: "main", WorkflowID: "w1", Status: "failed"})
	e.add(engine.EventPipelineFinished, engine.EventData{Status: "failed"})
	notifyAll(t, n, e.all)

	st := func(job, state, desc string) forgetest.Status {
		return forgetest.Status{SHA: sha, State: state, Context: "slipway/main/" + job, Description: desc,
			TargetURL: "https://slipway.example.com/pipelines/p1#" + job}
	}
	cut := strings.TrimSpace(long)
	cut = string([]rune(cut)[:139]) + "…"
	want := []forgetest.Status{
		st("build", "pending", "running"),
		st("build", "success", "succeeded"),
		st("test", "pending", "running"),
		st("test", "failure", "failed (exit 2)"),
		st("lint", "failure", "no output for 10m0s"),
		st("smoke", "failure", cut),
		st("migrate", "error", "not run: test failed"),
		st("hold", "pending", "waiting for approval"),
		st("hold", "error", "canceled"),
		st("notify", "success", "skipped"),
		st("deploy", "pending", "queued: backend/staging is locked by pipeline 11"),
		st("deploy", "failure", "alice may not deploy to backend/staging without an approval by its approvers"),
	}
	if diff := cmp.Diff(want, gh.Statuses(repo)); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s", diff)
	}

	// The outbox delivers at least once: again, nothing is posted twice.
	keys := len(kv.snapshot())
	notifyAll(t, n, e.all)
	if diff := cmp.Diff(want, gh.Statuses(repo)); diff != "" {
		t.Errorf("statuses after redelivery (-want +got):\n%s", diff)
	}
	if got := len(kv.snapshot()); got != keys {
		t.Errorf("%d keys after redelivery, want %d", got, keys)
	}

	// A rerun's attempt is a new transition.
	notifyAll(t, n, []engine.Event{
		e.add(engine.EventJobStarted, job("test", "a9")),
		e.add(engine.EventJobFinished, with(job("test", "a9"), func(d *engine.EventData) { d.Status = "success" })),
	})
	want = append(want, st("test", "pending", "running"), st("test", "success", "succeeded"))
	if diff := cmp.Diff(want, gh.Statuses(repo)); diff != "" {
		t.Errorf("statuses after a rerun (-want +got):\n%s", diff)
	}
}

func TestNotifierConfigError(t *testing.T) {
	gh, c := setup(t)
	sha := gh.AddCommit(repo, "main", forgetest.Commit{Files: map[string]string{"README": "x"}})
	// No TargetURL: statuses link nowhere.
	n := forge.NewNotifier(c, newKV(), forge.NotifierOptions{})
	var seq int64
	e := newEvents(&seq, "p1", 3, sha)
	reason := ".circleci/config.yml:12:5: unknown key \"jobz\" in job build\n" +
		".circleci/config.yml:40:9: workflow main: job deploy requires buidl, which is not a job of the workflow"
	e.add(engine.EventPipelineCreated, engine.EventData{Actor: "alice"})
	e.add(engine.EventPipelineFinished, engine.EventData{Status: engine.StatusError, Reason: reason})
	notifyAll(t, n, e.all)
	notifyAll(t, n, e.all)
	desc := ".circleci/config.yml:12:5: unknown key \"jobz\" in job build; .circleci/config.yml:40:9: workflow main: job deploy requires buidl, which is n…"
	if n := len([]rune(desc)); n != 140 {
		t.Fatalf("the expected description is %d characters", n)
	}
	want := []forgetest.Status{{SHA: sha, State: "error", Context: "slipway", Description: desc}}
	if diff := cmp.Diff(want, gh.Statuses(repo)); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}

func TestNotifierIgnores(t *testing.T) {
	const sha = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name, repo, revision string
	}{
		{"slipway run", "local/backend", sha},
		{"no repository", "", sha},
		{"not owner/name", "backend", sha},
		{"three parts", "acme/backend/extra", sha},
		{"leaves the path", "../acme/backend", sha},
		{"no revision", repo, ""},
		{"a ref, not a SHA", repo, "HEAD"},
		{"a short SHA", repo, sha[:7]},
		{"a SHA with a path", repo, sha + "/../x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gh, c := setup(t)
			n := forge.NewNotifier(c, newKV(), forge.NotifierOptions{TargetURL: targetURL})
			p := engine.PipelineRef{ID: "p1", Number: 1, Repo: tt.repo, Revision: tt.revision}
			for _, ev := range []engine.Event{
				{Seq: 1, PipelineID: "p1", Pipeline: p, Kind: engine.EventJobStarted, Data: with(job("deploy", "a1"), func(d *engine.EventData) { d.Env = "production" })},
				{Seq: 2, PipelineID: "p1", Pipeline: p, Kind: engine.EventPipelineFinished, Data: engine.EventData{Status: engine.StatusError, Reason: "x"}},
			} {
				if err := n.Notify(context.Background(), ev); err != nil {
					t.Errorf("Notify %s: %v", ev.Kind, err)
				}
			}
			if calls := gh.Calls(); len(calls) > 0 {
				t.Errorf("the fake saw %d requests: %+v", len(calls), calls[0])
			}
		})
	}
}

func TestNotifierErrors(t *testing.T) {
	reset := time.Now().Add(2 * time.Minute).Unix()
	tests := []struct {
		name      string
		fault     forgetest.Fault
		down      bool
		kvErr     bool
		permanent bool
		after     time.Duration // a RetryAfterError's wait; -1 for none
		tolerance time.Duration
		redeliver bool // works once the fault is gone
	}{
		{name: "5xx", fault: forgetest.Fault{Status: 502}, after: -1, redeliver: true},
		{name: "429 with Retry-After", fault: forgetest.Fault{Status: 429, Header: map[string]string{"Retry-After": "30"}},
			after: 30 * time.Second, redeliver: true},
		{name: "429 without a header", fault: forgetest.Fault{Status: 429}, after: time.Minute, redeliver: true},
		{name: "403 rate limit", fault: forgetest.Fault{Status: 403, Header: map[string]string{
			"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": strconv.FormatInt(reset, 10)},
			Body: `{"message":"API rate limit exceeded for installation ID 42.","documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}`},
			after: 2 * time.Minute, tolerance: 2 * time.Second},
		{name: "403 secondary rate limit", fault: forgetest.Fault{Status: 403, Header: map[string]string{"Retry-After": "60"},
			Body: `{"message":"You have exceeded a secondary rate limit.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}`},
			after: time.Minute},
		{name: "401 bad credentials", fault: forgetest.Fault{Status: 401}, after: -1, redeliver: true},
		{name: "409 conflict", fault: forgetest.Fault{Status: 409}, permanent: true, after: -1},
		{name: "422", fault: forgetest.Fault{Status: 422}, permanent: true, after: -1},
		{name: "404 repository gone", fault: forgetest.Fault{Status: 404}, permanent: true, after: -1},
		{name: "server down", down: true, after: -1},
		{name: "store down", kvErr: true, after: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gh, c := setup(t)
			sha := gh.AddCommit(repo, "main", forgetest.Commit{Files: map[string]string{"README": "x"}})
			kv := newKV()
			n := forge.NewNotifier(c, kv, forge.NotifierOptions{})
			f := tt.fault
			f.Method, f.Path, f.Times = "POST", "/repos/acme/backend/statuses/*", 1
			gh.Inject(f)
			if tt.down {
				gh.Close()
			}
			if tt.kvErr {
				kv.getErr = errors.New("database is locked")
			}
			var seq int64
			ev := newEvents(&seq, "p1", 1, sha).add(engine.EventJobStarted, job("build", "a1"))
			err := n.Notify(context.Background(), ev)
			if err == nil {
				t.Fatal("Notify: nil, want an error")
			}
			var perm *engine.PermanentError
			if errors.As(err, &perm) != tt.permanent {
				t.Errorf("Notify: %v: permanent %v, want %v", err, !tt.permanent, tt.permanent)
			}
			var ra *engine.RetryAfterError
			switch {
			case tt.after < 0 && errors.As(err, &ra):
				t.Errorf("Notify: %v: asks to wait %v", err, ra.After)
			case tt.after >= 0 && !errors.As(err, &ra):
				t.Errorf("Notify: %T %v, want a RetryAfterError", err, err)
			case tt.after >= 0 && (ra.After < tt.after-tt.tolerance || ra.After > tt.after):
				t.Errorf("Notify: wait %v, want %v", ra.After, tt.after)
			}
			if !tt.redeliver {
				return
			}
			if err := n.Notify(context.Background(), ev); err != nil {
				t.Fatalf("Notify again: %v", err)
			}
			if err := n.Notify(context.Background(), ev); err != nil {
				t.Fatalf("Notify a third time: %v", err)
			}
			if got := len(gh.Statuses(repo)); got != 1 {
				t.Errorf("%d statuses, want 1", got)
			}
		})
	}
}

// TestNotifierPermanentGoesOn: a status GitHub refuses for good does not
// keep the event's deployment from being made.
func TestNotifierPermanentGoesOn(t *testing.T) {
	gh, c := setup(t)
	sha := gh.AddCommit(repo, "main", forgetest.Commit{Files: map[string]string{"README": "x"}})
	n := forge.NewNotifier(c, newKV(), forge.NotifierOptions{})
	gh.Inject(forgetest.Fault{Method: "POST", Path: "/repos/acme/backend/statuses/*", Status: 422})
	var seq int64
	ev := newEvents(&seq, "p1", 1, sha).add(engine.EventJobStarted, with(job("deploy", "a1"), func(d *engine.EventData) { d.Env = "staging" }))
	err := n.Notify(context.Background(), ev)
	var perm *engine.PermanentError
	if !errors.As(err, &perm) {
		t.Fatalf("Notify: %v, want a PermanentError", err)
	}
	deps := gh.Deployments(repo)
	if len(deps) != 1 || len(deps[0].Statuses) != 1 || deps[0].Statuses[0].State != "in_progress" {
		t.Errorf("deployments: %+v, want one in progress", deps)
	}
}
