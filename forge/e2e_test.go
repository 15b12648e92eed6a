package forge_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/slipway-ci/slipway/forge"
	"github.com/slipway-ci/slipway/forge/forgetest"
	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// checkoutExecutor succeeds every job, checking that a job that checks
// its commit out got the commit's tarball.
type checkoutExecutor struct {
	mu       sync.Mutex
	tarballs map[string]string // job name → the tarball it got
}

func (x *checkoutExecutor) Run(ctx context.Context, job *engine.JobRun, log io.Writer) (engine.JobResult, error) {
	if job.Source.Tarball != "" {
		if _, err := os.Stat(job.Source.Tarball); err != nil {
			return engine.JobResult{Status: workflows.StatusFailed, Reason: err.Error()}, nil
		}
		x.mu.Lock()
		x.tarballs[job.JobName] = job.Source.Tarball
		x.mu.Unlock()
	}
	return engine.JobResult{Status: workflows.StatusSuccess}, nil
}

func (x *checkoutExecutor) Cleanup(ctx context.Context, attemptID string) error { return nil }

// TestSeedPipeline runs the seed repository's pipeline for a push to main
// through the engine, with its config, source and reports all going
// through the fake GitHub: every job's status goes pending then success,
// and each environment gets one deployment that ends in success.
func TestSeedPipeline(t *testing.T) {
	ctx := ctxTimeout(t, 30*time.Second)
	gh := forgetest.New(t)
	dir := t.TempDir()
	c := newClient(t, gh, forge.Options{DataDir: filepath.Join(dir, "forge")})
	sha := gh.AddCommitFromDir(repo, "main", "../testdata/seed")
	db, err := store.Open(ctx, filepath.Join(dir, "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	x := &checkoutExecutor{tarballs: map[string]string{}}
	n := forge.NewNotifier(c, db.KV("github"), forge.NotifierOptions{TargetURL: func(ev engine.Event) string {
		return "https://slipway.example.com/p/" + ev.PipelineID
	}})
	eng := engine.New(engine.Options{
		Store: db, Executor: x, ExecutorName: "fake", DataDir: filepath.Join(dir, "engine"),
		Notifiers: map[string]engine.Notifier{"github": n}, Sources: c,
		RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		Apps: map[string]*engine.App{"backend": {Name: "backend", Repo: repo, Environments: map[string]*engine.Environment{
			"staging":    {Name: "staging"},
			"production": {Name: "production", Approvers: []string{"carol"}},
		}}},
	})
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := eng.Shutdown(context.WithoutCancel(ctx)); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})

	started, err := eng.StartPipeline(ctx, engine.StartRequest{
		ID: "push-1", App: "backend", Repo: repo, Author: "alice",
		Trigger: workflows.Trigger{Branch: "main", Revision: sha, Source: "webhook"},
		Source:  engine.Source{Repo: repo, Revision: sha},
		Config:  c.Config(repo, sha, "", workflows.LoadOptions{}),
	})
	if err != nil || started.ConfigErr != nil {
		t.Fatalf("StartPipeline: %v, %v", err, started.ConfigErr)
	}
	id := started.Pipeline.ID
	st, err := eng.WaitSettled(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var hold string
	for _, j := range st.Jobs {
		if j.Name == "hold-production" {
			hold = j.ID
		}
	}
	if d, err := eng.Approve(ctx, hold, engine.Actor{ID: "carol"}); err != nil || !d.Applied {
		t.Fatalf("Approve: %+v, %v", d, err)
	}
	if st, err = eng.WaitFinished(ctx, id); err != nil || st.Pipeline.Status != workflows.StatusSuccess {
		t.Fatalf("pipeline %s: %v", st.Pipeline.Status, err)
	}

	// The outbox delivers on its own; wait for the pipeline's end to
	// reach GitHub.
	for {
		deps := gh.Deployments(repo)
		if len(deps) == 2 && len(deps[0].Statuses) == 2 && len(deps[1].Statuses) == 2 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("deployments never ended: %+v", deps)
		case <-time.After(20 * time.Millisecond):
		}
	}

	want := map[string][]string{}
	for _, j := range st.Jobs {
		first := "pending running"
		if j.Type == workflows.JobApproval {
			first = "pending waiting for approval"
		}
		want["slipway/build-test-deploy/"+j.Name] = []string{first, "success succeeded"}
	}
	got := map[string][]string{}
	for _, s := range gh.Statuses(repo) {
		if s.SHA != sha || s.TargetURL != "https://slipway.example.com/p/"+id {
			t.Errorf("status %+v", s)
		}
		// Production's jobs deploy one at a time: those that found the
		// environment locked say so first.
		if s.Description == "queued: waiting for the deploy to backend/production in progress" {
			continue
		}
		got[s.Context] = append(got[s.Context], s.State+" "+s.Description)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses by context (-want +got):\n%s", diff)
	}
	var deps []string
	for _, d := range gh.Deployments(repo) {
		var states []string
		for _, s := range d.Statuses {
			states = append(states, s.State)
		}
		deps = append(deps, d.Environment+" "+d.SHA+" "+strings.Join(states, ","))
	}
	wantDeps := []string{"staging " + sha + " in_progress,success", "production " + sha + " in_progress,success"}
	if diff := cmp.Diff(wantDeps, deps); diff != "" {
		t.Errorf("deployments (-want +got):\n%s", diff)
	}
	tarball := filepath.Join(dir, "forge", "sources", "acme", "backend", sha+".tar.gz")
	wantTarballs := map[string]string{"build": tarball, "test": tarball, "push-image": tarball}
	if diff := cmp.Diff(wantTarballs, x.tarballs); diff != "" {
		t.Errorf("sources given to checkouts (-want +got):\n%s", diff)
	}
	if n := len(gh.CallsTo("GET", "/acme/backend/legacy.tar.gz/*")); n != 1 {
		t.Errorf("the tarball was downloaded %d times, want 1", n)
	}
}
