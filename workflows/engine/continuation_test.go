package engine_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/slipway-ci/slipway/executors/local"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// continued is the config setup pipelines continue with in these tests.
const continued = `version: 2.1
parameters:
  make_jobs: {type: integer, default: 1}
  resource_class: {type: string, default: small}
jobs:
  build:
    docker: [{image: x}]
    steps: [{run: "make -j << pipeline.parameters.make_jobs >>"}]
workflows:
  main: {jobs: [build]}
`

// continueJob is a setup pipeline's job as the config language compiles
// circleci/continuation's continue: its last step keeps what it leaves
// where the engine looks.
func continueJob(name string) *workflows.PlannedJob {
	j := build(name)
	j.Spec.Steps = append(j.Spec.Steps, workflows.Step{StoreArtifacts: &workflows.StoreArtifactsStep{Path: "~/" + workflows.ContinuationDir, Destination: workflows.ContinuationDir}})
	return j
}

// continuationHarness is a harness whose executor does what the continue
// step does for the jobs named in configs: leaves their config and
// parameters in the attempt's artifacts.
func continuationHarness(t *testing.T, configs map[string][2]string, configure func(*engine.Options)) *harness {
	t.Helper()
	var h *harness
	h = newHarness(t, func(o *engine.Options) {
		o.Continuations = engine.ContinuationFunc(func(ctx context.Context, setup *engine.PipelineRecord, name string, src []byte) (*workflows.Config, error) {
			return workflows.Load(name, src, workflows.LoadOptions{})
		})
		inner := o.Executor
		o.Executor = &fakeExecutor{run: func(ctx context.Context, job *engine.JobRun, log io.Writer) (engine.JobResult, error) {
			if c, ok := configs[job.JobName]; ok {
				dir := filepath.Join(job.OutputDir, "artifacts", workflows.ContinuationDir)
				os.MkdirAll(dir, 0o755)
				os.WriteFile(filepath.Join(dir, workflows.ContinuationConfig), []byte(c[0]), 0o644)
				os.WriteFile(filepath.Join(dir, workflows.ContinuationConfigPath), []byte(".circleci/main.yml"), 0o644)
				os.WriteFile(filepath.Join(dir, workflows.ContinuationParameters), []byte(c[1]), 0o644)
			}
			return inner.Run(ctx, job, log)
		}}
		if configure != nil {
			configure(o)
		}
	})
	return h
}

func (h *harness) submitSetup(params map[string]any, jobs ...*workflows.PlannedJob) *engine.PipelineRecord {
	h.t.Helper()
	rec, err := h.engine.Submit(context.Background(), engine.PipelineRequest{
		App: "backend", Repo: "acme/backend", Author: "alice",
		Trigger: workflows.Trigger{Branch: "main", Revision: "0123456789abcdef", Parameters: params},
		Plan:    &workflows.Plan{Setup: true, Workflows: []*workflows.PlannedWorkflow{wf("setup", jobs...)}},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return rec
}

// waitPipeline waits for a pipeline to exist and settle.
func (h *harness) waitPipeline(id string) *engine.PipelineState {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := h.db.Pipeline(context.Background(), id); err == nil {
			return h.settle(id)
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("pipeline %s never started", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestContinuation: a setup pipeline's job continues it; the engine
// starts the continued pipeline once, with the parameters given.
func TestContinuation(t *testing.T) {
	h := continuationHarness(t, map[string][2]string{
		"generate":       {continued, `{"make_jobs": 10, "resource_class": "2xlarge"}`},
		"generate-again": {continued, `{"make_jobs": 99}`},
	}, nil)
	setup := h.submitSetup(nil, continueJob("generate"), continueJob("generate-again"))
	if st := h.settle(setup.ID); st.Pipeline.Status != workflows.StatusSuccess {
		t.Fatalf("setup: %s", describe(st))
	}
	st := h.waitPipeline(engine.ContinuationID(setup.ID))
	if st.Pipeline.Status != workflows.StatusSuccess || len(st.Jobs) != 1 || st.Jobs[0].Name != "build" {
		t.Fatalf("continued: %s", describe(st))
	}
	p := st.Pipeline
	if p.Number != 2 || p.Author != "alice" || p.Trigger.Revision != setup.Trigger.Revision || p.Source != setup.Source {
		t.Errorf("continued pipeline %+v", p)
	}
	// Only one continuation: the first job's.
	if !cmp.Equal(p.Trigger.Parameters, map[string]any{"make_jobs": "10", "resource_class": "2xlarge"}) &&
		!cmp.Equal(p.Trigger.Parameters, map[string]any{"make_jobs": "99"}) {
		t.Errorf("parameters %v", p.Trigger.Parameters)
	}
	spec, err := h.db.JobSpec(context.Background(), st.Jobs[0].ID)
	if err != nil || !strings.HasPrefix(spec.Steps[0].Run.Command, "make -j ") {
		t.Errorf("continued job runs %+v, %v", spec, err)
	}
	ps, _ := h.db.ActivePipelines(context.Background())
	if len(ps) != 0 {
		t.Errorf("pipelines still active: %v", ps)
	}
}

// TestContinuationRules: what CircleCI refuses ends the continued
// pipeline in error, saying why.
func TestContinuationRules(t *testing.T) {
	for name, tt := range map[string]struct {
		config, params string
		trigger        map[string]any
		late           bool
		want           string
	}{
		"late":           {continued, `{}`, nil, true, ".circleci/main.yml: the pipeline was continued 6h1m0s after it was created; a setup pipeline is continued within 6h0m0s"},
		"overlap":        {continued, `{"make_jobs": 2}`, map[string]any{"make_jobs": "4"}, false, `.circleci/main.yml: continuation parameter "make_jobs" was given when the pipeline was triggered`},
		"setup again":    {"version: 2.1\nsetup: true\njobs: {a: {docker: [{image: x}], steps: [checkout]}}\nworkflows: {w: {jobs: [a]}}\n", `{}`, nil, false, ".circleci/main.yml: a continued config cannot be a setup config"},
		"bad parameters": {continued, `[1]`, nil, false, ".circleci/main.yml: the continuation's parameters are not a JSON object"},
		"bad config":     {"version: 2.1\njobs: {}\n", `{}`, nil, false, ".circleci/main.yml:1:1: no workflows"},
	} {
		t.Run(name, func(t *testing.T) {
			h := continuationHarness(t, map[string][2]string{"generate": {tt.config, tt.params}}, nil)
			var setup *engine.PipelineRecord
			if tt.late {
				setup = h.submitSetupEnding(tt.trigger, 6*time.Hour+time.Minute, continueJob("generate"))
			} else {
				setup = h.submitSetup(tt.trigger, continueJob("generate"))
			}
			st := h.waitPipeline(engine.ContinuationID(setup.ID))
			if st.Pipeline.Status != engine.StatusError || !strings.HasPrefix(st.Pipeline.Error, tt.want) {
				t.Errorf("continued pipeline %s: %q, want %q", st.Pipeline.Status, st.Pipeline.Error, tt.want)
			}
		})
	}
}

// submitSetupEnding submits a setup pipeline whose first job ends d
// after the pipeline was created.
func (h *harness) submitSetupEnding(params map[string]any, d time.Duration, jobs ...*workflows.PlannedJob) *engine.PipelineRecord {
	h.t.Helper()
	gate := h.script.gate(jobs[0].Name)
	rec := h.submitSetup(params, jobs...)
	h.wait(rec.ID, func(st *engine.PipelineState) bool { return st.Jobs[0].Status == engine.StatusRunning })
	h.clock.Advance(d)
	close(gate)
	return rec
}

// TestNoContinuationWithoutLoader: an engine without a loader continues
// nothing, and hears no job's end for it.
func TestNoContinuationWithoutLoader(t *testing.T) {
	h := newHarness(t, nil)
	setup := h.submitSetup(nil, continueJob("generate"))
	h.settle(setup.ID)
	if _, err := h.db.Pipeline(context.Background(), engine.ContinuationID(setup.ID)); err == nil {
		t.Error("continued without a loader")
	}
}

// TestContinuationEndToEnd runs a setup config (ipfs/kubo's, in the
// corpus) with circleci/continuation as slipway compiles it, in the
// local executor: the continued config runs with the parameters the job
// generated.
func TestContinuationEndToEnd(t *testing.T) {
	orbs := t.TempDir()
	orb, err := os.ReadFile("../../testdata/orbregistry/circleci/continuation/0.2.0.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(orbs, "circleci"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(orbs, "circleci", "continuation@0.2.0.yml"), orb, 0o644); err != nil {
		t.Fatal(err)
	}
	setupConfig := `version: 2.1
setup: true
orbs:
  continuation: circleci/continuation@0.2.0
jobs:
  generate-params:
    executor: continuation/default
    steps:
      - run:
          name: Generate params
          command: |
            mkdir -p .circleci
            printf '%s\n' 'version: 2.1' 'parameters:' '  make_jobs: {type: integer, default: 1}' \
              'jobs:' '  build: {docker: [{image: x}], steps: [{run: "echo make -j \<< pipeline.parameters.make_jobs >>"}]}' \
              'workflows: {main: {jobs: [build]}}' > .circleci/main.yml
            cat \<<- EOF > params.json
              {"make_jobs": 10}
            EOF
      - continuation/continue:
          parameters: params.json
          configuration_path: .circleci/main.yml
workflows:
  version: 2
  setup-workflow:
    jobs:
      - generate-params
`
	load := func(ctx context.Context, setup *engine.PipelineRecord, name string, src []byte) (*workflows.Config, error) {
		return workflows.Load(name, src, workflows.LoadOptions{OrbDirs: []string{orbs}})
	}
	h := newHarness(t, func(o *engine.Options) {
		exe, err := local.New(local.Options{Dir: filepath.Join(t.TempDir(), "attempts"), AllowRoot: true})
		if err != nil {
			t.Fatal(err)
		}
		o.Executor = exe
		o.Continuations = engine.ContinuationFunc(load)
	})
	cfg, err := workflows.Load("config.yml", []byte(setupConfig), workflows.LoadOptions{OrbDirs: []string{orbs}})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := cfg.Plan(workflows.Trigger{Branch: "main", Revision: "0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	setup, err := h.engine.Submit(context.Background(), engine.PipelineRequest{App: "backend", Repo: "acme/backend", Author: "alice",
		Trigger: workflows.Trigger{Branch: "main", Revision: "0123456789abcdef"}, Plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	if st := h.settle(setup.ID); st.Pipeline.Status != workflows.StatusSuccess {
		t.Fatalf("setup: %s\n%s", describe(st), readLog(t, h, st.Jobs[0].AttemptID))
	}
	st := h.waitPipeline(engine.ContinuationID(setup.ID))
	if st.Pipeline.Status != workflows.StatusSuccess {
		t.Fatalf("continued: %s %s", describe(st), st.Pipeline.Error)
	}
	if log := readLog(t, h, st.Jobs[0].AttemptID); !strings.Contains(log, "make -j 10") {
		t.Errorf("continued job's log:\n%s", log)
	}
}
