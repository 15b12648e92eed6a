package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slipway-ci/slipway/workflows"
)

// Options configure an Engine. Store and Executor are required.
type Options struct {
	Store    Store
	Executor Executor
	// ExecutorName is recorded on each attempt ("local", "docker").
	ExecutorName string
	// Notifier hears every event through the outbox; nil drops them
	// (they are still kept in the store).
	Notifier Notifier
	Clock    Clock        // default: the system clock
	IDs      IDs          // default: random
	Logger   *slog.Logger // default: discard
	Apps     map[string]*App
	Contexts map[string]*Context
	// Parallelism is how many jobs run at once, across pipelines; default 4.
	Parallelism int
	// ApprovalTTL is how long an approval waits before it expires; default 7 days.
	ApprovalTTL time.Duration
	// DataDir holds workflow workspaces, caches and job outputs.
	DataDir string
	// RetryMin and RetryMax bound the outbox's exponential backoff;
	// defaults 1s and 5m.
	RetryMin, RetryMax time.Duration
	// Tick is how often approvals are checked for expiry; default 1 minute.
	Tick time.Duration
	// Natives carry out the steps of built-in orbs, by orb name
	// (OrbAWS); slipway/slack is the engine's own.
	Natives map[string]NativeRunner
}

// Engine runs pipelines durably: every decision is a transaction in the
// Store before it takes effect, so that a new Engine on the same store
// resumes where a dead one stopped.
//
// Its goroutines are: one scheduler loop and one outbox loop, both
// started by Start and ended by Shutdown; and one per running job attempt,
// ended when the executor returns (Shutdown waits for them, then cancels
// them when its context ends).
type Engine struct {
	store    Store
	exec     Executor
	execName string
	notifier Notifier
	clock    Clock
	ids      IDs
	log      *slog.Logger
	apps     map[string]*App
	contexts map[string]*Context
	parallel int
	ttl      time.Duration
	dataDir  string
	retryMin time.Duration
	retryMax time.Duration
	tick     time.Duration
	natives  nativeSteps

	mu       sync.Mutex
	dirty    map[string]bool // pipelines to advance
	waiting  map[string]bool // pipelines with queued jobs, advanced when a slot or lock frees
	running  map[string]*attemptRun
	ended    []endedAttempt // results for the scheduler to record
	changed  chan struct{}  // closed and replaced on every state change
	stopping bool

	deliverMu  sync.Mutex
	out        outbox        // see outbox.go
	wake       chan struct{} // scheduler loop
	outboxWake chan struct{}
	jobs       sync.WaitGroup
	abandon    context.CancelFunc // cancels running attempts at the end of Shutdown
	jobsCtx    context.Context    // parent of attempts; canceled by abandon
	stopLoops  context.CancelFunc
	loops      sync.WaitGroup
	started    bool
}

// attemptRun is an attempt in an executor, owned by its goroutine.
type attemptRun struct {
	cancel    context.CancelFunc
	abandoned bool // set by Shutdown: the result is not recorded
}

// endedAttempt is an attempt's result handed to the scheduler, which
// records it in the transaction that decides what follows and then
// says on recorded whether that worked.
type endedAttempt struct {
	attempt  AttemptRecord
	recorded chan error
}

// randomIDs are 20 random hex digits: unique across processes, which
// matters because a restarted engine must never reuse an attempt ID.
type randomIDs struct{}

func (randomIDs) NewID() string {
	var b [10]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now().UTC() }

// New returns an engine; Start runs it.
func New(opts Options) *Engine {
	e := &Engine{
		store: opts.Store, exec: opts.Executor, execName: opts.ExecutorName, notifier: opts.Notifier,
		clock: opts.Clock, ids: opts.IDs, log: opts.Logger, apps: opts.Apps, contexts: opts.Contexts,
		parallel: opts.Parallelism, ttl: opts.ApprovalTTL, dataDir: opts.DataDir,
		retryMin: opts.RetryMin, retryMax: opts.RetryMax, tick: opts.Tick,
		dirty: map[string]bool{}, waiting: map[string]bool{}, running: map[string]*attemptRun{},
		changed: make(chan struct{}), wake: make(chan struct{}, 1), outboxWake: make(chan struct{}, 1),
	}
	if e.clock == nil {
		e.clock = systemClock{}
	}
	if e.ids == nil {
		e.ids = randomIDs{}
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.parallel <= 0 {
		e.parallel = 4
	}
	if e.ttl <= 0 {
		e.ttl = 7 * 24 * time.Hour
	}
	if e.dataDir == "" {
		e.dataDir = filepath.Join(os.TempDir(), "slipway")
	}
	if e.retryMin <= 0 {
		e.retryMin = time.Second
	}
	if e.retryMax <= 0 {
		e.retryMax = 5 * time.Minute
	}
	if e.tick <= 0 {
		e.tick = time.Minute
	}
	if e.execName == "" {
		e.execName = "executor"
	}
	e.natives = newNativeSteps(e, opts.Natives)
	e.out.fromStore = true // a previous process may have left events
	e.jobsCtx, e.abandon = context.WithCancel(context.Background())
	return e
}

// PipelineRequest asks for a planned pipeline to run.
type PipelineRequest struct {
	// ID, when set, is the pipeline's ID instead of a new one, so that a
	// caller retrying a submit (a redelivered webhook) cannot start the
	// pipeline twice: the second submit fails.
	ID      string
	App     string // may name no configured app: then nothing deploys
	Repo    string // "owner/name"
	Author  string
	Trigger workflows.Trigger
	Source  Source
	Plan    *workflows.Plan
}

// Submit stores a new pipeline; it runs once the engine is started.
func (e *Engine) Submit(ctx context.Context, req PipelineRequest) (*PipelineRecord, error) {
	if req.Plan == nil || len(req.Plan.Workflows) == 0 {
		return nil, errors.New("engine: submit: the plan has no workflows")
	}
	now := e.clock.Now()
	p := &NewPipeline{
		ID: req.ID, App: req.App, Repo: req.Repo, Author: req.Author, Trigger: req.Trigger,
		Source: req.Source, Plan: req.Plan, Envs: map[string]string{}, Created: now,
	}
	if p.ID == "" {
		p.ID = e.ids.NewID()
	}
	app := e.apps[req.App]
	for _, w := range req.Plan.Workflows {
		p.WorkflowIDs = append(p.WorkflowIDs, e.ids.NewID())
		ids := make([]string, len(w.Jobs))
		for i, j := range w.Jobs {
			ids[i] = e.ids.NewID()
			if app == nil {
				continue
			}
			for _, c := range j.Context {
				if _, ok := app.Environments[c]; ok {
					p.Envs[w.Name+"/"+j.Name] = c
					break
				}
			}
		}
		p.JobIDs = append(p.JobIDs, ids)
	}
	p.Trigger.ID = p.ID
	ev := []Event{{PipelineID: p.ID, Kind: EventPipelineCreated, At: now, Data: EventData{Commit: req.Trigger.Revision, Actor: req.Author}}}
	var rec *PipelineRecord
	err := e.update(ctx, func(tx StoreTx) error {
		var err error
		if rec, err = tx.CreatePipeline(ctx, p); err != nil {
			return err
		}
		return tx.AddEvents(ctx, ev)
	})
	if err != nil {
		return nil, fmt.Errorf("engine: submit: %w", err)
	}
	e.markDirty(rec.ID)
	return rec, nil
}

// Start recovers from a previous process (see recover) and starts the
// scheduler and outbox loops. They run until Shutdown.
func (e *Engine) Start(ctx context.Context) error {
	if e.started {
		return errors.New("engine: already started")
	}
	e.started = true
	if err := e.recover(ctx); err != nil {
		return err
	}
	loopCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	e.stopLoops = stop
	e.loops.Add(2)
	go func() {
		defer e.loops.Done()
		e.schedule(loopCtx)
	}()
	go func() {
		defer e.loops.Done()
		e.deliver(loopCtx)
	}()
	return nil
}

// Shutdown stops starting jobs, waits for running ones to finish until
// ctx ends, then cancels them without recording their end: the next Start
// treats them as interrupted. It then stops the loops.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.stopping = true
	e.mu.Unlock()
	done := make(chan struct{})
	go func() {
		e.jobs.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		e.mu.Lock()
		for _, r := range e.running {
			r.abandoned = true
		}
		e.mu.Unlock()
		e.abandon()
		<-done
	}
	if e.stopLoops != nil {
		e.stopLoops()
	}
	e.loops.Wait()
	return err
}

// recover deals with what a dead process left behind: attempts marked
// running lost their executor work (it died with the process), so each is
// cleaned up and failed "interrupted by restart", never run again.
// Pending approvals stay pending unless they expired meanwhile; every
// unfinished pipeline is advanced.
func (e *Engine) recover(ctx context.Context) error {
	runs, err := e.store.RunningAttempts(ctx)
	if err != nil {
		return fmt.Errorf("engine: recover: %w", err)
	}
	for _, a := range runs {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		if err := e.exec.Cleanup(cctx, a.ID); err != nil {
			e.log.Warn("cleanup of interrupted attempt failed", "attempt", a.ID, "err", err)
		}
		cancel()
		a.Status, a.Reason, a.Finished = workflows.StatusFailed, "interrupted by restart", e.clock.Now()
		if err := e.finish(ctx, &a); err != nil {
			return fmt.Errorf("engine: recover: %w", err)
		}
		e.log.Info("attempt interrupted by restart", "attempt", a.ID, "job", a.JobID)
	}
	// Approvals whose time ran out while no engine was running.
	if err := e.ExpireApprovals(ctx); err != nil {
		return fmt.Errorf("engine: recover: %w", err)
	}
	ids, err := e.store.ActivePipelines(ctx)
	if err != nil {
		return fmt.Errorf("engine: recover: %w", err)
	}
	for _, id := range ids {
		e.markDirty(id)
	}
	return nil
}

// markDirty asks the scheduler to advance a pipeline.
func (e *Engine) markDirty(id string) {
	e.mu.Lock()
	e.dirty[id] = true
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) notifyOutbox() {
	select {
	case e.outboxWake <- struct{}{}:
	default:
	}
}

// broadcast wakes everyone waiting in Wait.
func (e *Engine) broadcast() {
	e.mu.Lock()
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

// Wait returns the pipeline's state once cond holds for it, checking after
// every change the engine makes.
func (e *Engine) Wait(ctx context.Context, pipelineID string, cond func(*PipelineState) bool) (*PipelineState, error) {
	for {
		e.mu.Lock()
		ch := e.changed
		e.mu.Unlock()
		st, err := e.store.PipelineState(ctx, pipelineID)
		if err != nil {
			return nil, err
		}
		if cond(st) {
			return st, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
}

// Settled reports whether a pipeline has nothing left to do by itself:
// it finished, or it waits for an approval.
func Settled(st *PipelineState) bool {
	return st.Pipeline.Status != StatusRunning
}

// schedule is the scheduler loop: it advances dirty pipelines and, every
// tick, expires approvals.
func (e *Engine) schedule(ctx context.Context) {
	tick := time.NewTicker(e.tick)
	defer tick.Stop()
	for {
		e.mu.Lock()
		ended := map[string][]endedAttempt{}
		for _, r := range e.ended {
			ended[r.attempt.PipelineID] = append(ended[r.attempt.PipelineID], r)
			e.dirty[r.attempt.PipelineID] = true
		}
		e.ended = nil
		ids := slices.Sorted(maps.Keys(e.dirty))
		clear(e.dirty)
		stopping := e.stopping
		e.mu.Unlock()
		for _, id := range ids {
			if stopping {
				// Results still reach the store; nothing new starts.
				for _, r := range ended[id] {
					r.recorded <- e.finish(ctx, &r.attempt)
				}
				e.broadcast()
				continue
			}
			if err := e.advance(ctx, id, ended[id]); err != nil && ctx.Err() == nil {
				e.log.Error("advance pipeline", "pipeline", id, "err", err)
			}
			if len(ended[id]) > 0 {
				// The attempt freed a slot, and recording its result may
				// have released an environment's lock: pipelines with
				// queued jobs look again, even those advanced earlier in
				// this round or queued since the attempt ended.
				e.recheckWaiting(id)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-tick.C:
			if err := e.ExpireApprovals(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("expire approvals", "err", err)
			}
		}
	}
}

// recheckWaiting marks the pipelines with queued jobs, other than the
// one just advanced, for the scheduler's next round.
func (e *Engine) recheckWaiting(advanced string) {
	e.mu.Lock()
	again := false
	for id := range e.waiting {
		if id != advanced {
			e.dirty[id], again = true, true
		}
	}
	e.mu.Unlock()
	if again {
		e.kick()
	}
}

// launch is an attempt decided in a transaction, started after its commit.
type launch struct {
	attempt  AttemptRecord
	job      JobRecord
	spec     *workflows.JobSpec
	pipeline PipelineRecord
	workflow string
}

// advance records the results of the pipeline's attempts that ended,
// makes every decision its state then allows, all in one transaction,
// and starts the attempts it decided on.
func (e *Engine) advance(ctx context.Context, pipelineID string, ended []endedAttempt) error {
	e.mu.Lock()
	slots := e.parallel - len(e.running)
	e.mu.Unlock()
	var launches []launch
	var queued bool
	err := e.update(ctx, func(tx StoreTx) error {
		launches, queued = nil, false
		for i := range ended {
			if err := e.finishIn(ctx, tx, &ended[i].attempt); err != nil {
				return err
			}
		}
		st, err := tx.PipelineState(ctx, pipelineID)
		if err != nil {
			return err
		}
		a := &advancer{e: e, tx: tx, st: st, now: e.clock.Now(), slots: slots}
		if err := a.run(ctx); err != nil {
			return err
		}
		launches, queued = a.launches, a.queued
		return nil
	})
	if err != nil && len(ended) > 0 {
		// Whatever went wrong deciding, the results must not be lost:
		// each is recorded on its own, as restart recovery does.
		for _, r := range ended {
			r.recorded <- e.finish(context.WithoutCancel(ctx), &r.attempt)
		}
		e.broadcast()
	}
	if err != nil {
		return fmt.Errorf("engine: advance %s: %w", pipelineID, err)
	}
	for _, r := range ended {
		r.recorded <- nil
	}
	e.mu.Lock()
	if queued {
		e.waiting[pipelineID] = true
	} else {
		delete(e.waiting, pipelineID)
	}
	e.mu.Unlock()
	for _, l := range launches {
		e.start(l)
	}
	e.broadcast()
	return nil
}

// start runs an attempt in its own goroutine, which ends when the
// executor returns.
func (e *Engine) start(l launch) {
	ctx, cancel := context.WithCancel(e.jobsCtx)
	r := &attemptRun{cancel: cancel}
	e.mu.Lock()
	e.running[l.attempt.ID] = r
	e.mu.Unlock()
	e.jobs.Add(1)
	go func() {
		defer e.jobs.Done()
		defer cancel()
		e.runAttempt(ctx, l, r)
	}()
}

func (e *Engine) runAttempt(ctx context.Context, l launch, r *attemptRun) {
	log := e.log.With("pipeline", l.pipeline.ID, "job", l.job.Name, "attempt", l.attempt.ID)
	res, err := e.execute(ctx, l)
	if err != nil {
		log.Warn("executor could not run the job", "err", err)
		res = JobResult{Status: workflows.StatusFailed, Reason: err.Error()}
	}
	e.mu.Lock()
	abandoned := r.abandoned
	delete(e.running, l.attempt.ID)
	e.mu.Unlock()
	if abandoned {
		log.Info("attempt abandoned at shutdown")
		return
	}
	if res.Status != workflows.StatusSuccess && res.Status != workflows.StatusCanceled {
		res.Status = workflows.StatusFailed
	}
	a := l.attempt
	a.Status, a.ExitCode, a.Reason, a.Steps, a.Finished = res.Status, res.ExitCode, res.Reason, res.Steps, e.clock.Now()
	// The scheduler records the result with what follows from it, even
	// while shutting down (Shutdown waits for this goroutine).
	recorded := make(chan error, 1)
	e.mu.Lock()
	e.ended = append(e.ended, endedAttempt{attempt: a, recorded: recorded})
	e.mu.Unlock()
	e.kick()
	if err := <-recorded; err != nil {
		log.Error("record job result", "err", err)
	}
}

// execute prepares an attempt's folders, environment and masked log, and
// hands it to the executor.
func (e *Engine) execute(ctx context.Context, l launch) (JobResult, error) {
	spec := l.spec
	if spec == nil {
		return JobResult{}, fmt.Errorf("job %q has nothing to run", l.job.Name)
	}
	run := &JobRun{
		ID: l.attempt.ID, PipelineID: l.pipeline.ID, WorkflowID: l.job.WorkflowID, JobName: l.job.Name,
		Spec: spec, Source: l.pipeline.Source,
		Workspace: filepath.Join(e.dataDir, "workspaces", l.job.WorkflowID),
		CacheDir:  filepath.Join(e.dataDir, "cache", safeName(l.pipeline.App)),
		OutputDir: filepath.Join(e.dataDir, "output", l.attempt.ID),
		Native:    e.natives,
	}
	// The folders are made by whoever stores something in them (both
	// executors do): a workspace made up front for every workflow cost a
	// folder per pipeline on disk, most of them never used.
	var secrets []string
	run.Env, secrets = e.jobEnv(l)
	w, err := e.store.CreateJobLog(ctx, l.attempt.ID)
	if err != nil {
		return JobResult{}, err
	}
	mw := NewMaskingWriter(w, secrets)
	res, err := e.exec.Run(ctx, run, mw)
	if cerr := mw.Close(); cerr != nil && err == nil {
		e.log.Warn("close job log", "attempt", l.attempt.ID, "err", cerr)
	}
	return res, err
}

// jobEnv is the environment the engine gives an attempt: CircleCI's
// built-in variables, then the job's contexts in order. It also returns
// the secret values to mask.
func (e *Engine) jobEnv(l launch) (map[string]string, []string) {
	t := l.pipeline.Trigger
	user, repo, _ := strings.Cut(l.pipeline.Repo, "/")
	env := map[string]string{
		"CI":                      "true",
		"CIRCLECI":                "true",
		"CIRCLE_SHA1":             t.Revision,
		"CIRCLE_BRANCH":           t.Branch,
		"CIRCLE_TAG":              t.Tag,
		"CIRCLE_JOB":              l.job.Name,
		"CIRCLE_BUILD_NUM":        strconv.Itoa(l.attempt.BuildNum),
		"CIRCLE_WORKFLOW_ID":      l.job.WorkflowID,
		"CIRCLE_PIPELINE_ID":      l.pipeline.ID,
		"CIRCLE_PROJECT_USERNAME": user,
		"CIRCLE_PROJECT_REPONAME": repo,
		"CIRCLE_USERNAME":         l.pipeline.Author,
	}
	if t.Tag == "" {
		delete(env, "CIRCLE_TAG")
	}
	if t.Branch == "" {
		delete(env, "CIRCLE_BRANCH")
	}
	var secrets []string
	for _, name := range l.job.Context {
		c := e.contexts[name]
		if c == nil {
			continue
		}
		maps.Copy(env, c.Env)
		for k, v := range c.Secrets {
			env[k] = v
			secrets = append(secrets, v)
		}
	}
	return env, secrets
}

// finish records how an attempt ended, with what follows from it in the
// same transaction: the environment lock released and, for a successful
// deploy, the deployment. A unique attempt ID on deployments makes a
// repeated finish fail rather than deploy twice.
func (e *Engine) finish(ctx context.Context, a *AttemptRecord) error {
	return e.update(ctx, func(tx StoreTx) error { return e.finishIn(ctx, tx, a) })
}

// finishIn is finish inside a transaction.
func (e *Engine) finishIn(ctx context.Context, tx StoreTx, a *AttemptRecord) error {
	j, err := tx.Job(ctx, a.JobID)
	if err != nil {
		return err
	}
	if j.Status != StatusRunning || j.AttemptID != a.ID {
		return nil // already recorded
	}
	w, err := tx.Workflow(ctx, j.WorkflowID)
	if err != nil {
		return err
	}
	if a.Status == workflows.StatusFailed && w.Canceled {
		a.Status = workflows.StatusCanceled
	}
	if err := tx.FinishAttempt(ctx, a); err != nil {
		return err
	}
	events := []Event{{PipelineID: j.PipelineID, Kind: EventJobFinished, At: a.Finished, Data: EventData{
		Workflow: w.Name, WorkflowID: j.WorkflowID, Job: j.Name, JobID: j.ID,
		AttemptID: a.ID, Status: a.Status, ExitCode: a.ExitCode, Reason: a.Reason, Env: j.Env,
	}}}
	if j.Env != "" {
		ev, err := e.finishDeploy(ctx, tx, j, a)
		if err != nil {
			return err
		}
		events = append(events, ev...)
	}
	return tx.AddEvents(ctx, events)
}

// finishDeploy releases a deploy job's environment lock and, when it
// succeeded, records the deployment.
func (e *Engine) finishDeploy(ctx context.Context, tx StoreTx, j *JobRecord, a *AttemptRecord) ([]Event, error) {
	st, err := jobState(ctx, tx, j.PipelineID, j.ID)
	if err != nil {
		return nil, err
	}
	app := st.Pipeline.App
	l, err := tx.EnvLock(ctx, app, j.Env)
	if err != nil {
		return nil, err
	}
	if l != nil && !l.Manual && l.JobID == j.ID {
		if err := tx.DeleteEnvLock(ctx, app, j.Env); err != nil {
			return nil, err
		}
	}
	if a.Status != workflows.StatusSuccess {
		return nil, nil
	}
	approvedBy, err := approvedBy(ctx, tx, st, j)
	if err != nil {
		return nil, err
	}
	t := st.Pipeline.Trigger
	version := t.Revision
	if t.Deploy != nil && t.Deploy.Version != "" {
		version = t.Deploy.Version
	}
	if err := tx.RecordDeployment(ctx, &Deployment{
		ID: e.ids.NewID(), App: app, Env: j.Env, Commit: t.Revision, Version: version,
		PipelineID: j.PipelineID, JobID: j.ID, AttemptID: a.ID, StartedBy: st.Pipeline.Author,
		ApprovedBy: approvedBy, Outcome: workflows.StatusSuccess, Created: a.Finished,
	}); err != nil {
		return nil, err
	}
	return []Event{{PipelineID: j.PipelineID, Kind: EventDeployed, At: a.Finished, Data: EventData{
		Job: j.Name, JobID: j.ID, Env: j.Env, Commit: t.Revision, Actor: approvedBy,
	}}}, nil
}

// jobState loads the pipeline a job belongs to.
func jobState(ctx context.Context, tx StoreTx, pipelineID, jobID string) (*pipelineView, error) {
	st, err := tx.PipelineState(ctx, pipelineID)
	if err != nil {
		return nil, err
	}
	v := newView(st)
	if v.job(jobID) == nil {
		return nil, fmt.Errorf("job %s: %w", jobID, ErrNotFound)
	}
	return v, nil
}

// approvedBy names who approved the approval jobs upstream of j.
func approvedBy(ctx context.Context, tx StoreTx, v *pipelineView, j *JobRecord) (string, error) {
	var who []string
	for _, up := range v.upstream(j) {
		if up.Type != workflows.JobApproval || up.Status != workflows.StatusSuccess {
			continue
		}
		a, err := tx.Approval(ctx, up.ID)
		if err != nil {
			return "", err
		}
		if a.Status == ApprovalApproved && !slices.Contains(who, a.DecidedBy) {
			who = append(who, a.DecidedBy)
		}
	}
	return strings.Join(who, ","), nil
}

func safeName(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 {
			return '_'
		}
		return r
	}, s)
}
