package engine

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/workflows"
)

// register makes an attempt whose start is committed cancelable. It runs
// in the commit of the transaction that started the attempt, so that no
// later transaction (a Cancel's) can see the attempt running without
// finding it here: a cancel reaches every attempt started by a decision
// taken before it, whatever the interleaving.
func (e *Engine) register(attemptID string) *attemptRun {
	ctx, cancel := context.WithCancel(e.jobsCtx)
	r := &attemptRun{ctx: ctx, cancel: cancel}
	e.mu.Lock()
	e.running[attemptID] = r
	e.mu.Unlock()
	e.jobs.Add(1)
	return r
}

// start runs a registered attempt in its own goroutine, which ends when
// the executor returns.
func (e *Engine) start(l launch) {
	go func() {
		defer e.jobs.Done()
		defer l.run.cancel()
		e.runAttempt(l.run.ctx, l, l.run)
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
	a.Outputs = e.natives.take(a.ID)
	// The scheduler records the result with what follows from it, even
	// while shutting down (Shutdown waits for this goroutine). A result
	// the store refuses is handed over again, after a growing wait,
	// until it is recorded or Shutdown gives up on running attempts:
	// then recovery at the next start finds the attempt running.
	for {
		recorded := make(chan error, 1)
		e.mu.Lock()
		e.ended = append(e.ended, endedAttempt{attempt: a, recorded: recorded})
		e.mu.Unlock()
		e.kick()
		if <-recorded == nil {
			return
		}
		t := time.NewTimer(e.trouble.wait())
		select {
		case <-t.C:
		case <-e.jobsCtx.Done():
			t.Stop()
			log.Warn("job result not recorded before shutdown; recovery will fail the attempt at the next start")
			return
		}
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
	if d := l.pipeline.Trigger.Deploy; d != nil && d.Rollback && l.job.Env != "" {
		restore, err := e.restore(ctx, l)
		if err != nil {
			return JobResult{}, err
		}
		run.Restore = restore
	}
	var secrets []string
	run.Env, secrets = e.jobEnv(l)
	w, err := e.store.CreateJobLog(ctx, l.attempt.ID)
	if err != nil {
		return JobResult{}, err
	}
	mw := NewMaskingWriter(w, secrets)
	if needsSource(spec) && e.sources != nil && run.Source.Tarball == "" && run.Source.GitDir == "" {
		src, err := e.sources.FetchSource(ctx, run.Source)
		if err != nil {
			fmt.Fprintf(mw, "checkout: the source of %s at %s could not be fetched: %v\n", run.Source.Repo, run.Source.Revision, err)
			mw.Close()
			return JobResult{Status: workflows.StatusFailed, Reason: fmt.Sprintf("checkout: the source could not be fetched: %v", err)}, nil
		}
		run.Source = src
	}
	res, err := e.exec.Run(ctx, run, mw)
	if cerr := mw.Close(); cerr != nil && err == nil {
		e.log.Warn("close job log", "attempt", l.attempt.ID, "err", cerr)
	}
	return res, err
}

// restore is what a rollback's deploy job goes back to in its
// environment: the artifacts of the newest successful release there of
// the commit the rollback ships.
func (e *Engine) restore(ctx context.Context, l launch) (Outputs, error) {
	releases, err := e.store.Releases(ctx, l.pipeline.App, l.job.Env)
	if err != nil {
		return nil, err
	}
	for _, r := range releases {
		if r.PipelineID != l.pipeline.ID && r.Commit == l.pipeline.Trigger.Revision && r.Outcome == workflows.StatusSuccess {
			return r.Artifacts, nil
		}
	}
	return nil, nil
}

// needsSource reports whether a job checks its commit out.
func needsSource(spec *workflows.JobSpec) bool {
	return slices.ContainsFunc(spec.Steps, func(s workflows.Step) bool { return s.Checkout != nil })
}

// jobEnv is the environment the engine gives an attempt: CircleCI's
// built-in variables, then the job's contexts in order (an environment
// of the app is one too). It also returns the secret values to mask.
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
	app := e.apps[l.pipeline.App]
	for _, name := range l.job.Context {
		// A server context, then the app's environment of that name.
		cs := []*Context{e.contexts[name]}
		if app != nil && app.Environments[name] != nil {
			cs = append(cs, &app.Environments[name].Context)
		}
		for _, c := range cs {
			if c == nil {
				continue
			}
			maps.Copy(env, c.Env)
			for k, v := range c.Secrets {
				env[k] = v
				secrets = append(secrets, v)
			}
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
