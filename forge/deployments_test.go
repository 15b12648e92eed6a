package forge_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/slipway-ci/slipway/forge"
	"github.com/slipway-ci/slipway/forge/forgetest"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// deploy is the EventData of a deploy job to env.
func deploy(name, attempt, env string) engine.EventData {
	return with(job(name, attempt), func(d *engine.EventData) { d.Env = env })
}

func finished(d engine.EventData, status string, exit int) engine.EventData {
	d.Status, d.ExitCode = status, exit
	return d
}

// deployments is what the fake holds, without what the fake makes up.
func deployments(gh *forgetest.Server) []forgetest.Deployment {
	return gh.Deployments(repo)
}

var ignoreMadeUp = cmp.Options{
	cmpopts.IgnoreFields(forgetest.Deployment{}, "ID", "Created", "Payload"),
	cmpopts.IgnoreFields(forgetest.DeploymentStatus{}, "ID"),
}

func TestNotifierDeployments(t *testing.T) {
	gh, c := setup(t)
	sha1 := gh.AddCommit(repo, "main", forgetest.Commit{Files: map[string]string{"README": "1"}})
	sha2 := gh.AddCommit(repo, "main", forgetest.Commit{Files: map[string]string{"README": "2"}})
	sha3 := gh.AddCommit(repo, "main", forgetest.Commit{Files: map[string]string{"README": "3"}})
	kv := newKV()
	n := forge.NewNotifier(c, kv, forge.NotifierOptions{TargetURL: targetURL})
	var seq int64
	var all []engine.Event

	// p1 deploys sha1 to staging; p2 sha2, replacing it; p3 fails to
	// deploy sha3; p4 deploys sha3 to staging and production with two
	// jobs each, one of production's canceled.
	p1 := newEvents(&seq, "p1", 1, sha1)
	p1.add(engine.EventPipelineCreated, engine.EventData{Actor: "alice"})
	p1.add(engine.EventJobStarted, deploy("deploy-staging", "a1", "staging"))
	p1.add(engine.EventJobFinished, finished(deploy("deploy-staging", "a1", "staging"), "success", 0))
	p1.add(engine.EventDeployed, deploy("deploy-staging", "", "staging"))
	p1.add(engine.EventPipelineFinished, engine.EventData{Status: "success"})
	p2 := newEvents(&seq, "p2", 2, sha2)
	p2.add(engine.EventJobStarted, deploy("deploy-staging", "a2", "staging"))
	p2.add(engine.EventJobFinished, finished(deploy("deploy-staging", "a2", "staging"), "success", 0))
	p2.add(engine.EventPipelineFinished, engine.EventData{Status: "success"})
	p3 := newEvents(&seq, "p3", 3, sha3)
	p3.add(engine.EventJobStarted, deploy("deploy-staging", "a3", "staging"))
	p3.add(engine.EventJobFinished, finished(deploy("deploy-staging", "a3", "staging"), "failed", 1))
	p3.add(engine.EventPipelineFinished, engine.EventData{Status: "failed"})
	p4 := newEvents(&seq, "p4", 4, sha3)
	p4.add(engine.EventJobStarted, deploy("app-staging", "a4", "staging"))
	p4.add(engine.EventJobStarted, deploy("workers-staging", "a5", "staging"))
	p4.add(engine.EventJobFinished, finished(deploy("app-staging", "a4", "staging"), "success", 0))
	p4.add(engine.EventJobFinished, finished(deploy("workers-staging", "a5", "staging"), "success", 0))
	// An approval's end names the environments it gates: it deploys
	// nothing.
	p4.add(engine.EventJobFinished, finished(deploy("hold", "", "production"), "success", 0))
	p4.add(engine.EventJobStarted, deploy("app-production", "a6", "production"))
	p4.add(engine.EventJobStarted, deploy("workers-production", "a7", "production"))
	p4.add(engine.EventJobFinished, finished(deploy("app-production", "a6", "production"), "canceled", 0))
	p4.add(engine.EventJobFinished, finished(deploy("workers-production", "a7", "production"), "failed", 3))
	p4.add(engine.EventPipelineFinished, engine.EventData{Status: "canceled"})
	for _, e := range []*events{p1, p2, p3, p4} {
		all = append(all, e.all...)
	}
	notifyAll(t, n, all)

	f, tr := false, true
	none := &[]string{}
	ds := func(state, desc, env string, job string, pipeline string, autoInactive *bool) forgetest.DeploymentStatus {
		s := forgetest.DeploymentStatus{State: state, Description: desc, Environment: env, AutoInactive: autoInactive}
		if job != "" {
			s.LogURL = "https://slipway.example.com/pipelines/" + pipeline + "#" + job
		} else if pipeline != "" {
			s.LogURL = "https://slipway.example.com/pipelines/" + pipeline + "#"
		}
		return s
	}
	want := []forgetest.Deployment{
		{SHA: sha1, Ref: sha1, Task: "deploy", Environment: "staging", Description: "backend to staging: pipeline #1 by alice",
			AutoMerge: &f, RequiredContexts: none, Statuses: []forgetest.DeploymentStatus{
				ds("in_progress", "deploying "+sha1[:7]+" to staging", "staging", "deploy-staging", "p1", nil),
				ds("success", "deployed "+sha1[:7]+" to staging", "staging", "", "p1", &f),
				ds("inactive", "replaced by "+sha2[:7], "staging", "", "p2", nil),
			}},
		{SHA: sha2, Ref: sha2, Task: "deploy", Environment: "staging", Description: "backend to staging: pipeline #2 by alice",
			AutoMerge: &f, RequiredContexts: none, Statuses: []forgetest.DeploymentStatus{
				ds("in_progress", "deploying "+sha2[:7]+" to staging", "staging", "deploy-staging", "p2", nil),
				ds("success", "deployed "+sha2[:7]+" to staging", "staging", "", "p2", &f),
				ds("inactive", "replaced by "+sha3[:7], "staging", "", "p4", nil),
			}},
		{SHA: sha3, Ref: sha3, Task: "deploy", Environment: "staging", Description: "backend to staging: pipeline #3 by alice",
			AutoMerge: &f, RequiredContexts: none, Statuses: []forgetest.DeploymentStatus{
				ds("in_progress", "deploying "+sha3[:7]+" to staging", "staging", "deploy-staging", "p3", nil),
				ds("failure", "failed: deploy-staging: failed (exit 1)", "staging", "deploy-staging", "p3", nil),
			}},
		{SHA: sha3, Ref: sha3, Task: "deploy", Environment: "staging", Description: "backend to staging: pipeline #4 by alice",
			AutoMerge: &f, RequiredContexts: none, Statuses: []forgetest.DeploymentStatus{
				ds("in_progress", "deploying "+sha3[:7]+" to staging", "staging", "app-staging", "p4", nil),
				ds("success", "deployed "+sha3[:7]+" to staging", "staging", "", "p4", &f),
			}},
		{SHA: sha3, Ref: sha3, Task: "deploy", Environment: "production", Description: "backend to production: pipeline #4 by alice",
			AutoMerge: &f, RequiredContexts: none, Production: tr, Statuses: []forgetest.DeploymentStatus{
				ds("in_progress", "deploying "+sha3[:7]+" to production", "production", "app-production", "p4", nil),
				ds("error", "canceled: app-production", "production", "app-production", "p4", nil),
			}},
	}
	if diff := cmp.Diff(want, deployments(gh), ignoreMadeUp); diff != "" {
		t.Fatalf("deployments (-want +got):\n%s", diff)
	}
	var pl struct {
		Slipway struct {
			PipelineID string `json:"pipeline_id"`
			Number     int    `json:"pipeline_number"`
			AttemptID  string `json:"attempt_id"`
		} `json:"slipway"`
	}
	if err := json.Unmarshal(deployments(gh)[3].Payload, &pl); err != nil || pl.Slipway.PipelineID != "p4" || pl.Slipway.Number != 4 || pl.Slipway.AttemptID != "a4" {
		t.Errorf("payload %s (%v), want p4's", deployments(gh)[3].Payload, err)
	}

	// Delivered again, nothing changes.
	before := gh.Calls()
	statuses := gh.Statuses(repo)
	notifyAll(t, n, all)
	if diff := cmp.Diff(want, deployments(gh), ignoreMadeUp); diff != "" {
		t.Errorf("deployments after redelivery (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(statuses, gh.Statuses(repo)); diff != "" {
		t.Errorf("commit statuses after redelivery (-want +got):\n%s", diff)
	}
	for _, call := range gh.Calls()[len(before):] {
		if call.Method != "GET" {
			t.Errorf("redelivery made %s %s", call.Method, call.Path)
		}
	}

	// A rerun of p3's deploy is a new deployment, which replaces p4's.
	notifyAll(t, n, []engine.Event{
		p3.add(engine.EventJobStarted, deploy("deploy-staging", "a8", "staging")),
		p3.add(engine.EventJobFinished, finished(deploy("deploy-staging", "a8", "staging"), "success", 0)),
		p3.add(engine.EventPipelineFinished, engine.EventData{Status: "success"}),
	})
	got := deployments(gh)
	if len(got) != 6 {
		t.Fatalf("%d deployments after the rerun, want 6", len(got))
	}
	states := func(d forgetest.Deployment) []string {
		var s []string
		for _, st := range d.Statuses {
			s = append(s, st.State)
		}
		return s
	}
	if diff := cmp.Diff([]string{"in_progress", "success"}, states(got[5])); diff != "" {
		t.Errorf("the rerun's deployment (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"in_progress", "success", "inactive"}, states(got[3])); diff != "" {
		t.Errorf("the replaced deployment (-want +got):\n%s", diff)
	}
}

// TestNotifierDeploymentsOutOfOrder: the deployment that started later
// stays live, whichever pipeline's end reaches GitHub first.
func TestNotifierDeploymentsOutOfOrder(t *testing.T) {
	gh, c := setup(t)
	sha1 := gh.AddCommit(repo, "main", forgetest.Commit{Files: map[string]string{"README": "1"}})
	sha2 := gh.AddCommit(repo, "main", forgetest.Commit{Files: map[string]string{"README": "2"}})
	n := forge.NewNotifier(c, newKV(), forge.NotifierOptions{})
	var seq int64
	early, late := newEvents(&seq, "p1", 1, sha1), newEvents(&seq, "p2", 2, sha2)
	earlyStart := early.add(engine.EventJobStarted, deploy("deploy", "a1", "staging"))
	earlyEnd := early.add(engine.EventPipelineFinished, engine.EventData{Status: "success"})
	// p1's events were held back (GitHub refused them a while): p2's went
	// first.
	notifyAll(t, n, []engine.Event{
		late.add(engine.EventJobStarted, deploy("deploy", "a2", "staging")),
		late.add(engine.EventPipelineFinished, engine.EventData{Status: "success"}),
		earlyStart, earlyEnd,
	})
	got := deployments(gh)
	if len(got) != 2 {
		t.Fatalf("%d deployments, want 2", len(got))
	}
	var states [][]string
	for _, d := range got {
		var s []string
		for _, st := range d.Statuses {
			s = append(s, st.State)
		}
		states = append(states, s)
	}
	want := [][]string{{"in_progress", "success"}, {"in_progress", "success", "inactive"}}
	if diff := cmp.Diff(want, states); diff != "" {
		t.Errorf("states of p2's and p1's deployments (-want +got):\n%s", diff)
	}
	if got[0].SHA != sha2 || got[1].SHA != sha1 {
		t.Errorf("deployments of %s and %s, want p2's then p1's", got[0].SHA[:7], got[1].SHA[:7])
	}
}

// TestNotifierDeploymentAdopted: a deployment created by a delivery that
// died before recording it is found again, not created twice.
func TestNotifierDeploymentAdopted(t *testing.T) {
	gh, c := setup(t)
	sha := gh.AddCommit(repo, "main", forgetest.Commit{Files: map[string]string{"README": "1"}})
	var seq int64
	e := newEvents(&seq, "p1", 1, sha)
	start := e.add(engine.EventJobStarted, deploy("deploy", "a1", "staging"))
	if err := forge.NewNotifier(c, newKV(), forge.NotifierOptions{}).Notify(context.Background(), start); err != nil {
		t.Fatal(err)
	}
	// The KV lost it all.
	n := forge.NewNotifier(c, newKV(), forge.NotifierOptions{})
	notifyAll(t, n, []engine.Event{start, e.add(engine.EventPipelineFinished, engine.EventData{Status: "success"})})
	got := deployments(gh)
	if len(got) != 1 {
		t.Fatalf("%d deployments, want 1", len(got))
	}
	if n := len(got[0].Statuses); n != 3 || got[0].Statuses[2].State != "success" {
		t.Errorf("statuses %+v, want in_progress (twice: the record of it was lost) then success", got[0].Statuses)
	}
}

func TestNotifierDeploymentErrors(t *testing.T) {
	tests := []struct {
		name      string
		fault     forgetest.Fault
		permanent bool
	}{
		{"create 5xx", forgetest.Fault{Method: "POST", Path: "/repos/acme/backend/deployments", Status: 500}, false},
		{"list 5xx", forgetest.Fault{Method: "GET", Path: "/repos/acme/backend/deployments", Status: 503}, false},
		{"status 5xx", forgetest.Fault{Method: "POST", Path: "/repos/acme/backend/deployments/*/statuses", Status: 502}, false},
		{"create 422", forgetest.Fault{Method: "POST", Path: "/repos/acme/backend/deployments", Status: 422}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gh, c := setup(t)
			sha := gh.AddCommit(repo, "main", forgetest.Commit{Files: map[string]string{"README": "1"}})
			n := forge.NewNotifier(c, newKV(), forge.NotifierOptions{})
			f := tt.fault
			f.Times = 1
			gh.Inject(f)
			var seq int64
			start := newEvents(&seq, "p1", 1, sha).add(engine.EventJobStarted, deploy("deploy", "a1", "staging"))
			err := n.Notify(context.Background(), start)
			var perm *engine.PermanentError
			if err == nil || errors.As(err, &perm) != tt.permanent {
				t.Fatalf("Notify: %v, want permanent %v", err, tt.permanent)
			}
			if tt.permanent {
				return // the outbox parks the event
			}
			if err := n.Notify(context.Background(), start); err != nil {
				t.Fatalf("Notify again: %v", err)
			}
			got := deployments(gh)
			if len(got) != 1 || len(got[0].Statuses) != 1 || got[0].Statuses[0].State != "in_progress" {
				t.Errorf("deployments %+v, want one in progress", got)
			}
			if n := len(gh.Statuses(repo)); n != 1 {
				t.Errorf("%d commit statuses, want 1", n)
			}
		})
	}
}
