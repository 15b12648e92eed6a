package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/slipway-ci/slipway/workflows"
)

// progress is what the scheduler knows of a pipeline between two of its
// steps: the statuses its last step left, the jobs queued, and a tally
// per workflow. With it, a step after jobs ended looks at those jobs'
// dependents and at the queue, not at every job, so that a step costs
// the same in a pipeline of 10,000 jobs as in one of 100. A step that
// starts from anything else (a new pipeline, an approval, a cancel, a
// rerun, a restart, a failed step) rebuilds it from the state. It is
// only ever used by the scheduler loop's goroutine. The statuses in the
// state are the truth; progress only says where to look.
type progress struct {
	status  []string // by job index
	queued  []int    // job indexes, in plan order
	tallies []tally  // by workflow index
}

func newProgress(v *pipelineView) *progress {
	p := &progress{status: make([]string, len(v.Jobs)), tallies: make([]tally, len(v.Workflows))}
	for i := range v.Jobs {
		p.set(v, i, v.Jobs[i].Status)
	}
	return p
}

// set notes job i's status.
func (p *progress) set(v *pipelineView, i int, status string) {
	old := p.status[i]
	if old == status {
		return
	}
	w := v.d.wfOf[i]
	if old != "" {
		p.tallies[w].add(old, -1)
	}
	p.tallies[w].add(status, 1)
	p.status[i] = status
	pos, found := slices.BinarySearch(p.queued, i)
	switch {
	case status == StatusQueued && !found:
		p.queued = slices.Insert(p.queued, pos, i)
	case status != StatusQueued && found:
		p.queued = slices.Delete(p.queued, pos, pos+1)
	}
}

// recount rebuilds workflow w's tally from the state.
func (p *progress) recount(v *pipelineView, w int) {
	for _, i := range v.d.wfJobs[w] {
		p.set(v, i, v.Jobs[i].Status)
	}
}

// advancer makes the decisions of one advance transaction.
type advancer struct {
	e        *Engine
	tx       StoreTx
	st       *PipelineState
	v        *pipelineView
	p        *progress
	now      time.Time
	slots    int
	events   []Event
	launches []launch
	queued   bool
	// ended are the jobs whose attempts ended in this step; nil with a
	// progress rebuilt, when every job is looked at.
	ended []int
	full  bool
	// next are the blocked jobs to look at, in plan order.
	next []int
}

func (a *advancer) run(ctx context.Context) error {
	if !a.st.Pipeline.Finished.IsZero() {
		return nil
	}
	if a.full || a.p == nil || len(a.p.status) != len(a.st.Jobs) {
		a.full, a.p = true, newProgress(a.v)
		for i := range a.st.Jobs {
			a.consider(i)
		}
	} else {
		for _, i := range a.ended {
			a.p.set(a.v, i, a.st.Jobs[i].Status)
			a.considerDependents(i)
		}
	}
	// Starting queued jobs can end some (a serial group's older jobs
	// are skipped), which decides their dependents in turn.
	for {
		if err := a.decideNext(ctx); err != nil {
			return err
		}
		if err := a.runQueued(ctx); err != nil {
			return err
		}
		if len(a.next) == 0 {
			break
		}
	}
	a.queued = len(a.p.queued) > 0
	if err := a.rollup(ctx); err != nil {
		return err
	}
	return a.tx.AddEvents(ctx, a.events)
}

// decideNext decides the blocked jobs to look at, in plan order: ended,
// held for approval, or queued.
func (a *advancer) decideNext(ctx context.Context) error {
	for len(a.next) > 0 {
		i := a.next[0]
		a.next = a.next[1:]
		j := &a.st.Jobs[i]
		if j.Status != StatusBlocked {
			continue
		}
		if a.v.workflow(j.WorkflowID).Canceled {
			if err := a.setJob(ctx, j, workflows.StatusCanceled, "workflow canceled"); err != nil {
				return err
			}
			continue
		}
		end, wait, reason := a.v.requiresMet(j)
		if wait {
			continue
		}
		var err error
		switch {
		case end != "":
			err = a.setJob(ctx, j, end, reason)
		case j.Type == workflows.JobNoOp:
			err = a.setJob(ctx, j, workflows.StatusSuccess, "")
		case j.Type == workflows.JobApproval:
			err = a.hold(ctx, j)
		default:
			err = a.ready(ctx, j)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// consider puts blocked job i among those to look at, in plan order.
func (a *advancer) consider(i int) {
	if a.st.Jobs[i].Status != StatusBlocked {
		return
	}
	if pos, found := slices.BinarySearch(a.next, i); !found {
		a.next = slices.Insert(a.next, pos, i)
	}
}

// considerDependents looks again at the jobs requiring job i, which ended.
func (a *advancer) considerDependents(i int) {
	for _, d := range a.v.d.deps[i] {
		a.consider(d)
	}
}

// runQueued starts queued jobs, in plan order, while slots are free and
// their environments' locks allow; those of canceled workflows end.
func (a *advancer) runQueued(ctx context.Context) error {
	for _, i := range slices.Clone(a.p.queued) {
		j := &a.st.Jobs[i]
		if j.Status != StatusQueued {
			a.p.set(a.v, i, j.Status) // changed by a step of someone else's
			continue
		}
		if a.v.workflow(j.WorkflowID).Canceled {
			if err := a.setJob(ctx, j, workflows.StatusCanceled, "workflow canceled"); err != nil {
				return err
			}
			continue
		}
		if a.slots <= 0 {
			if a.full {
				continue // a rebuilt step still ends the queued jobs of canceled workflows
			}
			break
		}
		spec, err := a.tx.JobSpec(ctx, j.ID)
		if err != nil {
			return err
		}
		if spec != nil && spec.SerialGroup != "" {
			ok, end, reason, err := a.takeSerial(ctx, j, spec.SerialGroup)
			if err != nil {
				return err
			}
			if end != "" {
				if err := a.setJob(ctx, j, end, reason); err != nil {
					return err
				}
				continue
			}
			if !ok {
				if err := a.wait(ctx, j, reason); err != nil {
					return err
				}
				continue
			}
		}
		if j.Env != "" {
			ok, reason, err := a.takeLock(ctx, j)
			if err != nil {
				return err
			}
			if !ok {
				if err := a.wait(ctx, j, reason); err != nil {
					return err
				}
				continue
			}
		}
		if err := a.startJob(ctx, j, spec); err != nil {
			return err
		}
		a.slots--
	}
	return nil
}

// wait notes why a ready job waits, when the reason changed.
func (a *advancer) wait(ctx context.Context, j *JobRecord, reason string) error {
	if reason == j.Reason {
		return nil
	}
	if err := a.tx.SetJobStatus(ctx, j.ID, StatusQueued, reason, a.now); err != nil {
		return err
	}
	a.event(EventJobWaiting, j, EventData{Reason: reason, Env: j.Env})
	return nil
}

func (a *advancer) event(kind string, j *JobRecord, d EventData) {
	d.Workflow, d.WorkflowID, d.Job, d.JobID = a.v.workflow(j.WorkflowID).Name, j.WorkflowID, j.Name, j.ID
	a.events = append(a.events, Event{PipelineID: a.st.Pipeline.ID, Kind: kind, At: a.now, Data: d})
}

// setJob changes a job that is not running, and says so when it ended.
func (a *advancer) setJob(ctx context.Context, j *JobRecord, status, reason string) error {
	if j.Status == StatusQueued && j.Env != "" {
		if err := a.tx.DequeueDeploy(ctx, j.ID); err != nil {
			return err
		}
	}
	if err := a.tx.SetJobStatus(ctx, j.ID, status, reason, a.now); err != nil {
		return err
	}
	i := a.v.index(j)
	a.p.set(a.v, i, status)
	if Terminal(status) {
		a.event(EventJobFinished, j, EventData{Status: status, Reason: reason})
		a.considerDependents(i)
	}
	return nil
}

// ready queues a build job whose requires are met, unless it cannot run:
// a context nobody defined, or a deploy its author may not start.
func (a *advancer) ready(ctx context.Context, j *JobRecord) error {
	app := a.e.apps[a.st.Pipeline.App]
	for _, c := range j.Context {
		if a.e.contexts[c] != nil {
			continue
		}
		if app != nil && app.Environments[c] != nil {
			continue
		}
		return a.setJob(ctx, j, workflows.StatusFailed, fmt.Sprintf("context %q is not defined", c))
	}
	if j.Env != "" {
		// A protected environment (one with approvers) is gated like a
		// GitHub environment: whatever the pipeline's config says, its
		// deploys wait for one of its approvers, so that a push cannot
		// remove its own gate.
		if env := app.Environments[j.Env]; len(env.Approvers) > 0 {
			ok, err := a.approved(ctx, j)
			if err != nil {
				return err
			}
			if !ok {
				return a.gate(ctx, j, []string{j.Env}, "waiting for approval to deploy to "+j.Env)
			}
		}
		if err := a.tx.EnqueueDeploy(ctx, a.st.Pipeline.App, j.Env, j.ID, j.PipelineID, a.now); err != nil {
			return err
		}
	}
	return a.setJob(ctx, j, StatusQueued, "")
}

func (a *advancer) startJob(ctx context.Context, j *JobRecord, spec *workflows.JobSpec) error {
	at := AttemptRecord{ID: a.e.ids.NewID(), JobID: j.ID, PipelineID: j.PipelineID, Executor: a.e.execName, Started: a.now}
	if err := a.tx.StartAttempt(ctx, &at, a.st.Pipeline.App); err != nil {
		return err
	}
	if spec != nil && spec.SerialGroup != "" {
		app := a.st.Pipeline.App
		a.tx.AfterCommit(func() { a.e.holdSerial(at.ID, app, spec.SerialGroup) })
	}
	a.p.set(a.v, a.v.index(j), StatusRunning)
	if j.Env != "" {
		if err := a.e.startRelease(ctx, a.tx, &a.st.Pipeline, j.Env, a.now); err != nil {
			return err
		}
	}
	a.event(EventJobStarted, j, EventData{AttemptID: at.ID, Env: j.Env})
	a.launches = append(a.launches, launch{attempt: at, job: *j, spec: spec, pipeline: a.st.Pipeline, workflow: a.v.workflow(j.WorkflowID).Name})
	return nil
}

// rollup sets the statuses of workflows and the pipeline from their
// jobs'. A workflow's tally says when its status may have changed; the
// state, counted again, says whether it did.
func (a *advancer) rollup(ctx context.Context) error {
	var wfs tally
	for i := range a.st.Workflows {
		w := &a.st.Workflows[i]
		s := a.p.tallies[i].status()
		if s != w.Status && !a.full {
			a.p.recount(a.v, i)
			s = a.p.tallies[i].status()
		}
		wfs.add(s, 1)
		if s == w.Status {
			continue
		}
		if err := a.tx.SetWorkflowStatus(ctx, w.ID, s, a.now); err != nil {
			return err
		}
		if s != StatusRunning && s != StatusOnHold {
			a.events = append(a.events, Event{PipelineID: a.st.Pipeline.ID, Kind: EventWorkflowFinished, At: a.now,
				Data: EventData{Workflow: w.Name, WorkflowID: w.ID, Status: s}})
		}
	}
	s := wfs.status()
	if s == a.st.Pipeline.Status {
		return nil
	}
	if err := a.tx.SetPipelineStatus(ctx, a.st.Pipeline.ID, s, a.now); err != nil {
		return err
	}
	if s != StatusRunning && s != StatusOnHold {
		// A release whose last deploy jobs never ran ends with the pipeline.
		for _, env := range deployEnvs(a.st.Jobs) {
			ev, err := a.e.settleRelease(ctx, a.tx, a.v, env, a.now)
			if err != nil {
				return err
			}
			a.events = append(a.events, ev...)
		}
		a.events = append(a.events, Event{PipelineID: a.st.Pipeline.ID, Kind: EventPipelineFinished, At: a.now,
			Data: EventData{Status: s}})
	}
	return nil
}

// schedule is the scheduler loop: it advances dirty pipelines and, every
// tick, expires approvals. A pipeline whose advance failed (the store
// refused a write) is advanced again after a growing wait, until it works.
func (e *Engine) schedule(ctx context.Context) {
	tick := time.NewTicker(e.tick)
	defer tick.Stop()
	retry := map[string]bool{}
	var retryTimer <-chan time.Time
	for {
		e.round.Lock()
		e.mu.Lock()
		ended := map[string][]endedAttempt{}
		for _, r := range e.ended {
			ended[r.attempt.PipelineID] = append(ended[r.attempt.PipelineID], r)
			e.dirty[r.attempt.PipelineID] = true
		}
		e.ended = nil
		ids := slices.Sorted(maps.Keys(e.dirty))
		clear(e.dirty)
		full := maps.Clone(e.full)
		clear(e.full)
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
			if err := e.advance(ctx, id, ended[id], full[id]); err != nil {
				if ctx.Err() != nil {
					e.round.Unlock()
					return
				}
				wait := e.trouble.failed("advance pipeline "+id, err)
				if retryTimer == nil {
					retryTimer = time.After(wait)
				}
				retry[id] = true
			} else {
				delete(retry, id)
			}
			if len(ended[id]) > 0 {
				// The attempt freed a slot, and recording its result may
				// have released an environment's lock: pipelines with
				// queued jobs look again, even those advanced earlier in
				// this round or queued since the attempt ended.
				e.recheckWaiting(id)
			}
		}
		e.round.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-retryTimer:
			retryTimer = nil
			for id := range retry {
				e.markDirty(id)
			}
			clear(retry)
		case <-tick.C:
			if err := e.ExpireApprovals(ctx); err != nil && ctx.Err() == nil {
				e.trouble.failed("expire approvals", err)
			}
			// Jobs waiting for a serial group or a lock may have waited
			// too long.
			e.recheckWaiting("")
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
	run      *attemptRun // registered as the transaction commits
}

// advance records the results of the pipeline's attempts that ended,
// makes every decision its state then allows, all in one transaction,
// and starts the attempts it decided on. Unless full is set, it looks
// only at what the ended attempts' jobs and the queue could have changed
// since its last step (see progress).
func (e *Engine) advance(ctx context.Context, pipelineID string, ended []endedAttempt, full bool) error {
	e.mu.Lock()
	slots := e.parallel - len(e.running)
	e.mu.Unlock()
	var launches []launch
	var queued bool
	var p *progress
	err := e.update(ctx, func(tx StoreTx) error {
		launches, queued = nil, false
		for i := range ended {
			if err := e.finishIn(ctx, tx, &ended[i].attempt); err != nil {
				return err
			}
			if err := e.releaseSerial(ctx, tx, &ended[i].attempt); err != nil {
				return err
			}
		}
		st, err := tx.PipelineState(ctx, pipelineID)
		if err != nil {
			return err
		}
		a := &advancer{e: e, tx: tx, st: st, now: e.clock.Now(), slots: slots, full: full, p: e.progress[pipelineID]}
		a.v = e.view(st)
		for _, r := range ended {
			if i, ok := a.v.d.byID[r.attempt.JobID]; ok {
				a.ended = append(a.ended, i)
			}
		}
		if err := a.run(ctx); err != nil {
			return err
		}
		launches, queued, p = a.launches, a.queued, a.p
		if !st.Pipeline.Finished.IsZero() {
			p = nil
		}
		// The attempts are registered as running before any later
		// transaction can commit, so that a Cancel, whose transaction
		// comes after this one, finds them (see Engine.register).
		tx.AfterCommit(func() {
			for i := range launches {
				launches[i].run = e.register(launches[i].attempt.ID)
			}
		})
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
		delete(e.progress, pipelineID) // it may hold what the transaction undid
		return fmt.Errorf("engine: advance %s: %w", pipelineID, err)
	}
	if p != nil {
		e.progress[pipelineID] = p
	} else {
		delete(e.progress, pipelineID)
		e.dags.forget(pipelineID)
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
