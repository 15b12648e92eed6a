package engine_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// fakeExecutor runs jobs by calling its func fields.
type fakeExecutor struct {
	run     func(ctx context.Context, job *engine.JobRun, log io.Writer) (engine.JobResult, error)
	cleanup func(ctx context.Context, attemptID string) error
}

func (f *fakeExecutor) Run(ctx context.Context, job *engine.JobRun, log io.Writer) (engine.JobResult, error) {
	return f.run(ctx, job, log)
}

func (f *fakeExecutor) Cleanup(ctx context.Context, attemptID string) error {
	if f.cleanup == nil {
		return nil
	}
	return f.cleanup(ctx, attemptID)
}

// script is a fakeExecutor's behaviour: per job name an outcome, and
// gates that hold a job until the test opens them. It records the order
// jobs start and end in.
type script struct {
	mu       sync.Mutex
	outcome  map[string]string // job name -> status; default success
	gates    map[string]chan struct{}
	started  map[string]chan struct{} // closed when a gated job is in the executor
	log      []string                 // "start x", "end x"
	running  int
	maxSeen  int
	env      map[string]map[string]string // job name -> env of its last run
	output   map[string]string            // job name -> what it writes to its log
	attempts map[string]int
}

func newScript() *script {
	return &script{outcome: map[string]string{}, gates: map[string]chan struct{}{}, started: map[string]chan struct{}{}, env: map[string]map[string]string{},
		output: map[string]string{}, attempts: map[string]int{}}
}

func (s *script) gate(job string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	s.gates[job] = ch
	s.started[job] = make(chan struct{})
	return ch
}

// inExecutor returns a channel closed once the gated job is running in the executor.
func (s *script) inExecutor(job string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started[job]
}

func (s *script) executor() *fakeExecutor {
	return &fakeExecutor{run: func(ctx context.Context, job *engine.JobRun, log io.Writer) (engine.JobResult, error) {
		s.mu.Lock()
		s.log = append(s.log, "start "+job.JobName)
		s.running++
		s.maxSeen = max(s.maxSeen, s.running)
		s.env[job.JobName] = job.Env
		s.attempts[job.JobName]++
		gate := s.gates[job.JobName]
		// The channel stays, closed, so that a test asking after the
		// job started is not handed a nil channel that never closes.
		if ch := s.started[job.JobName]; ch != nil {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
		status := s.outcome[job.JobName]
		out := s.output[job.JobName]
		s.mu.Unlock()
		if out != "" {
			io.WriteString(log, out)
		}
		res := engine.JobResult{Status: workflows.StatusSuccess}
		if status != "" {
			res.Status = status
		}
		if res.Status == workflows.StatusFailed {
			res.ExitCode = 1
		}
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				res = engine.JobResult{Status: workflows.StatusCanceled}
			}
		}
		s.mu.Lock()
		s.log = append(s.log, "end "+job.JobName)
		s.running--
		s.mu.Unlock()
		return res, nil
	}}
}

func (s *script) events() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// seqIDs hands out id-0001, id-0002, ..., or counts down.
type seqIDs struct {
	mu   sync.Mutex
	n    int
	down bool // each ID sorts before every earlier one: id-9998, id-9997, ...
}

func (s *seqIDs) NewID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if s.down {
		return fmt.Sprintf("id-%04d", 9999-s.n)
	}
	return fmt.Sprintf("id-%04d", s.n)
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recorder is a Notifier that keeps what it hears, failing while fail is
// set, and for the pipelines in down.
type recorder struct {
	mu     sync.Mutex
	events []engine.Event
	fail   bool
	down   map[string]bool
}

func (r *recorder) Notify(ctx context.Context, e engine.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail || r.down[e.PipelineID] {
		return fmt.Errorf("notifier down")
	}
	r.events = append(r.events, e)
	return nil
}

func (r *recorder) kinds(pipelineID string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.PipelineID == pipelineID {
			out = append(out, e.Kind+" "+e.Data.Job)
		}
	}
	return out
}

type harness struct {
	t        *testing.T
	db       *store.DB
	dbPath   string
	engine   *engine.Engine
	script   *script
	clock    *fakeClock
	notifier *recorder
	opts     engine.Options
}

// backend is the app the tests deploy: staging open to all, production
// approved by carol or the sre group, never by the change's author.
func backend() map[string]*engine.App {
	return map[string]*engine.App{"backend": {
		Name: "backend", Repo: "acme/backend",
		Environments: map[string]*engine.Environment{
			"staging":    {Name: "staging", AllowSelfApproval: true},
			"production": {Name: "production", Approvers: []string{"carol", "sre"}, Deployers: []string{"carol"}},
		},
	}}
}

func newHarness(t *testing.T, configure func(*engine.Options)) *harness {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(context.Background(), filepath.Join(dir, "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, db: db, dbPath: filepath.Join(dir, "slipway.db"), script: newScript(), clock: &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, notifier: &recorder{}}
	h.opts = engine.Options{
		Store: db, Executor: h.script.executor(), ExecutorName: "fake", Notifiers: map[string]engine.Notifier{"test": h.notifier}, Clock: h.clock,
		IDs: &seqIDs{}, Apps: backend(), DataDir: filepath.Join(dir, "data"),
		Contexts: map[string]*engine.Context{
			"aws": {Name: "aws", Env: map[string]string{"AWS_REGION": "eu-west-1"}, Secrets: map[string]string{"AWS_SECRET_ACCESS_KEY": "hunter2-secret"}},
		},
	}
	if configure != nil {
		configure(&h.opts)
	}
	h.engine = engine.New(h.opts)
	if err := h.engine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.engine.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		db.Close()
	})
	return h
}

func (h *harness) submit(author string, wfs ...*workflows.PlannedWorkflow) *engine.PipelineRecord {
	h.t.Helper()
	rec, err := h.engine.Submit(context.Background(), engine.PipelineRequest{
		App: "backend", Repo: "acme/backend", Author: author,
		Trigger: workflows.Trigger{Branch: "main", Revision: "0123456789abcdef"},
		Plan:    &workflows.Plan{Workflows: wfs},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return rec
}

// wait returns the pipeline's state once cond holds, failing the test
// after a generous bound (a hang is a bug, not a slow machine).
func (h *harness) wait(id string, cond func(*engine.PipelineState) bool) *engine.PipelineState {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := h.engine.Wait(ctx, id, cond)
	if err != nil {
		h.t.Fatalf("waiting for pipeline %s: %v; state: %s", id, err, describe(st))
	}
	return st
}

func (h *harness) settle(id string) *engine.PipelineState {
	h.t.Helper()
	return h.wait(id, engine.Settled)
}

func jobStatus(st *engine.PipelineState, name string) *engine.JobRecord {
	for i := range st.Jobs {
		if st.Jobs[i].Name == name {
			return &st.Jobs[i]
		}
	}
	return nil
}

// statuses maps job names to statuses, with the pipeline's under "".
func statuses(st *engine.PipelineState) map[string]string {
	m := map[string]string{"": st.Pipeline.Status}
	for _, j := range st.Jobs {
		m[j.Name] = j.Status
	}
	return m
}

func describe(st *engine.PipelineState) string {
	if st == nil {
		return "<none>"
	}
	s := "pipeline " + st.Pipeline.Status
	for _, j := range st.Jobs {
		s += fmt.Sprintf("; %s=%s(%s)", j.Name, j.Status, j.Reason)
	}
	return s
}

func wf(name string, jobs ...*workflows.PlannedJob) *workflows.PlannedWorkflow {
	return &workflows.PlannedWorkflow{Name: name, Jobs: jobs}
}

// build is a build job requiring the named jobs to succeed.
func build(name string, requires ...string) *workflows.PlannedJob {
	j := &workflows.PlannedJob{Name: name, Job: name, Type: workflows.JobBuild, Requires: map[string][]string{},
		Spec: &workflows.JobSpec{Steps: []workflows.Step{{Run: &workflows.RunStep{Command: "true"}}}}}
	for _, r := range requires {
		j.Requires[r] = nil
	}
	return j
}

func hold(name string, requires ...string) *workflows.PlannedJob {
	j := build(name, requires...)
	j.Type, j.Spec = workflows.JobApproval, nil
	return j
}

func withContext(j *workflows.PlannedJob, contexts ...string) *workflows.PlannedJob {
	j.Context = contexts
	return j
}

// readLog reads an attempt's whole log.
func readLog(t *testing.T, h *harness, attemptID string) string {
	t.Helper()
	r, err := h.db.JobLog(context.Background(), attemptID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
