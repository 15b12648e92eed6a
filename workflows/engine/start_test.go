package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// configOf loads a config from text, as a ConfigLoader.
func configOf(t *testing.T, text string) engine.ConfigLoader {
	t.Helper()
	return engine.ConfigFunc(func(context.Context) (*workflows.Config, error) {
		return workflows.Load("config.yml", []byte(text), workflows.LoadOptions{AllowMachine: true})
	})
}

const numbered = `version: 2.1
jobs:
  build:
    machine: true
    steps: [{run: "echo pipeline << pipeline.number >> id << pipeline.id >>"}]
  deploy:
    machine: true
    steps: [{run: "echo deploying"}]
workflows:
  ci: {jobs: [build]}
  deploy: {jobs: [deploy]}
`

func (h *harness) start(req engine.StartRequest) engine.Started {
	h.t.Helper()
	if req.App == "" {
		req.App, req.Repo, req.Author = "backend", "acme/backend", "alice"
		req.Trigger = workflows.Trigger{Branch: "main", Revision: "0123456789abcdef"}
	}
	s, err := h.engine.StartPipeline(context.Background(), req)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func (h *harness) command(jobID string) string {
	h.t.Helper()
	spec, err := h.db.JobSpec(context.Background(), jobID)
	if err != nil {
		h.t.Fatal(err)
	}
	return spec.Steps[0].Run.Command
}

// A pipeline is planned with its own values: << pipeline.number >> and
// << pipeline.id >> are the pipeline's (they were always 1 and empty).
func TestStartPipelinePlansWithItsOwnNumber(t *testing.T) {
	h := newHarness(t, nil)
	for want := 1; want <= 2; want++ {
		s := h.start(engine.StartRequest{Config: configOf(t, numbered)})
		st := h.settle(s.Pipeline.ID)
		if s.Pipeline.Number != want || st.Pipeline.Status != workflows.StatusSuccess {
			t.Fatalf("pipeline %d: %s", s.Pipeline.Number, describe(st))
		}
		got := h.command(jobStatus(st, "build").ID)
		if wantCmd := fmt.Sprintf("echo pipeline %d id %s", want, s.Pipeline.ID); got != wantCmd {
			t.Errorf("command = %q, want %q", got, wantCmd)
		}
	}
}

// Asking twice with one ID (a redelivered webhook, a retry after a
// crash) starts one pipeline; a start that failed before its pipeline was
// stored keeps its number when tried again.
func TestStartPipelineOncePerID(t *testing.T) {
	h := newHarness(t, nil)
	var down atomic.Bool
	down.Store(true)
	flaky := engine.ConfigFunc(func(ctx context.Context) (*workflows.Config, error) {
		if down.Load() {
			return nil, errors.New("GET contents: 502 Bad Gateway")
		}
		return configOf(t, numbered).LoadConfig(ctx)
	})
	ctx := context.Background()
	req := engine.StartRequest{ID: "delivery-1", App: "backend", Repo: "acme/backend", Author: "alice",
		Trigger: workflows.Trigger{Branch: "main", Revision: "0123456789abcdef"}, Config: flaky}
	if _, err := h.engine.StartPipeline(ctx, req); err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("start with the forge down: %v", err)
	}
	if _, err := h.db.PipelineState(ctx, "delivery-1"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("a failed start stored a pipeline: %v", err)
	}
	other := h.start(engine.StartRequest{Config: configOf(t, numbered)}) // takes number 2
	down.Store(false)
	first := h.start(req)
	again := h.start(req)
	if first.Existing || !again.Existing || again.Pipeline.ID != first.Pipeline.ID {
		t.Fatalf("first %+v, again %+v", first, again)
	}
	if first.Pipeline.Number != 1 || other.Pipeline.Number != 2 {
		t.Errorf("numbers: retried start %d (want 1, reserved first), other %d", first.Pipeline.Number, other.Pipeline.Number)
	}
	h.settle(first.Pipeline.ID)
	if n := strings.Count(strings.Join(h.script.events(), "\n"), "start build"); n != 2 {
		t.Errorf("build ran %d times for two pipelines", n)
	}
}

// A config that cannot be planned is the pipeline's outcome: it ends in
// error with the reason, runs nothing, and the outbox says so.
func TestStartPipelineWithABrokenConfig(t *testing.T) {
	h := newHarness(t, nil)
	broken := "version: 2.1\njobs:\n  build:\n    docker: [{image: x}]\n    steps: [{nope: 1}]\nworkflows: {w: {jobs: [build]}}\n"
	s := h.start(engine.StartRequest{Config: configOf(t, broken)})
	if s.ConfigErr == nil || !strings.Contains(s.ConfigErr.Error(), "config.yml:5:") {
		t.Fatalf("config error = %v", s.ConfigErr)
	}
	st, err := h.db.PipelineState(context.Background(), s.Pipeline.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pipeline.Status != engine.StatusError || st.Pipeline.Error != s.ConfigErr.Error() || len(st.Jobs) != 0 || st.Pipeline.Finished.IsZero() {
		t.Errorf("pipeline = %+v", st.Pipeline)
	}
	if _, err := h.engine.DeliverEvents(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.notifier.mu.Lock()
	defer h.notifier.mu.Unlock()
	if n := len(h.notifier.events); n != 2 || h.notifier.events[1].Kind != engine.EventPipelineFinished ||
		h.notifier.events[1].Data.Status != engine.StatusError || h.notifier.events[1].Data.Reason != s.ConfigErr.Error() {
		t.Errorf("events: %+v", h.notifier.events)
	}
}

// A start can keep only some workflows (the app's deploy workflow); with
// none left nothing is stored.
func TestStartPipelineKeepsTheWorkflowsAskedFor(t *testing.T) {
	h := newHarness(t, nil)
	s := h.start(engine.StartRequest{Config: configOf(t, numbered), Workflows: []string{"deploy"}})
	st := h.settle(s.Pipeline.ID)
	if len(st.Workflows) != 1 || st.Workflows[0].Name != "deploy" {
		t.Errorf("workflows: %+v", st.Workflows)
	}
	if s := h.start(engine.StartRequest{Config: configOf(t, numbered), Workflows: []string{"nightly"}}); s.Pipeline != nil {
		t.Errorf("a start with nothing to run stored %+v", s.Pipeline)
	}
}

// fetcher is a SourceFetcher that calls its func.
type fetcher func(src engine.Source) (engine.Source, error)

func (f fetcher) FetchSource(ctx context.Context, src engine.Source) (engine.Source, error) {
	return f(src)
}

// A forge's source is fetched for the jobs that check it out, and a
// fetch that fails fails the job with the reason.
func TestSourcesAreFetchedForCheckout(t *testing.T) {
	var fetches atomic.Int32
	var fail atomic.Bool
	var seen atomic.Value
	h := newHarness(t, func(o *engine.Options) {
		o.Sources = fetcher(func(src engine.Source) (engine.Source, error) {
			fetches.Add(1)
			if fail.Load() {
				return src, errors.New("GET tarball: 404 Not Found")
			}
			src.Tarball = "/cache/" + src.Revision + ".tar.gz"
			return src, nil
		})
		o.Executor = &fakeExecutor{run: func(ctx context.Context, job *engine.JobRun, log io.Writer) (engine.JobResult, error) {
			if job.JobName == "build" {
				seen.Store(job.Source)
			}
			return engine.JobResult{Status: workflows.StatusSuccess}, nil
		}}
	})
	checkout := func() *workflows.PlannedJob {
		j := build("build")
		j.Spec.Steps = append([]workflows.Step{{Checkout: &workflows.CheckoutStep{}}}, j.Spec.Steps...)
		return j
	}
	src := engine.Source{Repo: "acme/backend", Revision: "0123456789abcdef"}
	submit := func() *engine.PipelineState {
		p, err := h.engine.Submit(context.Background(), engine.PipelineRequest{App: "backend", Repo: "acme/backend", Author: "alice",
			Trigger: workflows.Trigger{Branch: "main", Revision: src.Revision}, Source: src,
			Plan: &workflows.Plan{Workflows: []*workflows.PlannedWorkflow{wf("w", checkout(), build("lint"))}}})
		if err != nil {
			t.Fatal(err)
		}
		return h.settle(p.ID)
	}
	if st := submit(); st.Pipeline.Status != workflows.StatusSuccess {
		t.Fatal(describe(st))
	}
	if got := seen.Load().(engine.Source).Tarball; got != "/cache/0123456789abcdef.tar.gz" {
		t.Errorf("the job's source tarball = %q", got)
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches for one job that checks out", n)
	}
	fail.Store(true)
	st := submit()
	if j := jobStatus(st, "build"); j.Status != workflows.StatusFailed || !strings.Contains(j.Reason, "404 Not Found") {
		t.Errorf("build with a source that cannot be fetched: %+v", j)
	}
}

// An environment of the app is a context of its jobs: its variables and
// secrets go to the jobs that deploy there, its secrets masked.
func TestEnvironmentVariablesAndSecrets(t *testing.T) {
	h := newHarness(t, func(o *engine.Options) {
		env := o.Apps["backend"].Environments["staging"]
		env.Context = engine.Context{Name: "staging", Env: map[string]string{"DEPLOY_TARGET": "stage"},
			Secrets: map[string]string{"DB_PASSWORD": "s3cret-staging"}}
	})
	h.script.output["deploy"] = "password is s3cret-staging\n"
	p := h.submit("alice", wf("w", withContext(build("deploy"), "staging")))
	st := h.settle(p.ID)
	if st.Pipeline.Status != workflows.StatusSuccess {
		t.Fatal(describe(st))
	}
	h.script.mu.Lock()
	env := h.script.env["deploy"]
	h.script.mu.Unlock()
	if env["DEPLOY_TARGET"] != "stage" || env["DB_PASSWORD"] != "s3cret-staging" {
		t.Errorf("deploy job env: %v", env)
	}
	log := readLog(t, h, jobStatus(st, "deploy").AttemptID)
	if strings.Contains(log, "s3cret") || !strings.Contains(log, "********") {
		t.Errorf("log = %q", log)
	}
}

// A newer push of a branch cancels that branch's older unfinished
// pipelines, and only those.
func TestCancelSuperseded(t *testing.T) {
	h := newHarness(t, nil)
	h.script.gate("a")
	push := func(branch string) *engine.PipelineRecord {
		p, err := h.engine.Submit(context.Background(), engine.PipelineRequest{App: "backend", Repo: "acme/backend", Author: "alice",
			Trigger: workflows.Trigger{Branch: branch, Revision: "0123456789abcdef"},
			Plan:    &workflows.Plan{Workflows: []*workflows.PlannedWorkflow{wf("w", build("a"))}}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	old, other, latest := push("main"), push("feature"), push("main")
	canceled, err := h.engine.CancelSuperseded(context.Background(), latest)
	if err != nil || len(canceled) != 1 || canceled[0] != old.Number {
		t.Fatalf("canceled %v, %v; want [%d]", canceled, err, old.Number)
	}
	if st := h.wait(old.ID, func(st *engine.PipelineState) bool { return !st.Pipeline.Finished.IsZero() }); st.Pipeline.Status != workflows.StatusCanceled {
		t.Errorf("the superseded pipeline: %s", describe(st))
	}
	for _, p := range []*engine.PipelineRecord{other, latest} {
		if st, _ := h.db.PipelineState(context.Background(), p.ID); !st.Pipeline.Finished.IsZero() {
			t.Errorf("pipeline %d ended: %s", p.Number, describe(st))
		}
	}
	close(h.script.gates["a"])
}

// Self-approval is refused to everyone the change is from (the pusher
// and the commit's author, as chat identities), and an author who could
// not be matched makes an approval say so.
func TestSelfApprovalCoversEveryAuthor(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	p, err := h.engine.Submit(ctx, engine.PipelineRequest{App: "backend", Repo: "acme/backend", Author: "carol",
		Authors: []string{"carol", "dave", engine.UnknownAuthor("octocat")},
		Trigger: workflows.Trigger{Branch: "main", Revision: "0123456789abcdef"},
		Plan:    &workflows.Plan{Workflows: []*workflows.PlannedWorkflow{deployFlow()}}})
	if err != nil {
		t.Fatal(err)
	}
	hold := jobStatus(h.wait(p.ID, onHold), "hold")
	for _, who := range []engine.Actor{{ID: "carol"}, {ID: "dave", Groups: []string{"sre"}}} {
		if d, err := h.engine.Approve(ctx, hold.ID, who); err != nil || d.Code != engine.RefusedSelfApproval {
			t.Errorf("%s approves their own change: %+v, %v", who.ID, d, err)
		}
	}
	d, err := h.engine.Approve(ctx, hold.ID, engine.Actor{ID: "erin", Groups: []string{"sre"}})
	if err != nil || !d.Applied || !d.AuthorUnknown {
		t.Errorf("erin approves: %+v, %v; want applied, saying an author is unknown", d, err)
	}
}
