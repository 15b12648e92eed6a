package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/workflows"
)

// pipelineView indexes a PipelineState for the scheduler's questions.
type pipelineView struct {
	*PipelineState
	byID   map[string]*JobRecord
	byName map[string]*JobRecord // "workflowID/name"
	wfs    map[string]*WorkflowRecord
}

func newView(st *PipelineState) *pipelineView {
	v := &pipelineView{PipelineState: st, byID: map[string]*JobRecord{}, byName: map[string]*JobRecord{}, wfs: map[string]*WorkflowRecord{}}
	for i := range st.Jobs {
		j := &st.Jobs[i]
		v.byID[j.ID] = j
		v.byName[j.WorkflowID+"/"+j.Name] = j
	}
	for i := range st.Workflows {
		v.wfs[st.Workflows[i].ID] = &st.Workflows[i]
	}
	return v
}

func (v *pipelineView) job(id string) *JobRecord           { return v.byID[id] }
func (v *pipelineView) workflow(id string) *WorkflowRecord { return v.wfs[id] }

// upstream lists every job j requires, directly or not.
func (v *pipelineView) upstream(j *JobRecord) []*JobRecord {
	var out []*JobRecord
	seen := map[string]bool{}
	var walk func(*JobRecord)
	walk = func(j *JobRecord) {
		for name := range j.Requires {
			u := v.byName[j.WorkflowID+"/"+name]
			if u == nil || seen[u.ID] {
				continue
			}
			seen[u.ID] = true
			out = append(out, u)
			walk(u)
		}
	}
	walk(j)
	return out
}

// downstream lists every job of j's workflow that requires j, directly or not.
func (v *pipelineView) downstream(j *JobRecord) []*JobRecord {
	var out []*JobRecord
	for i := range v.Jobs {
		d := &v.Jobs[i]
		if d.WorkflowID != j.WorkflowID || d.ID == j.ID {
			continue
		}
		if slices.Contains(v.upstream(d), j) {
			out = append(out, d)
		}
	}
	return out
}

// requiresMet says whether j can be decided yet (wait), and if so how:
// status is "" when every job it requires ended in a status it accepts.
// Otherwise j will never run and status says how it ends: not_run when a
// job it waited for in vain failed, was canceled, rejected or not run
// itself; skipped when each such job ended well but went another way (a
// success where j requires a failure, or a skip). reason names the job.
func (v *pipelineView) requiresMet(j *JobRecord) (status string, wait bool, reason string) {
	names := make([]string, 0, len(j.Requires))
	for name := range j.Requires {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		u := v.byName[j.WorkflowID+"/"+name]
		if u == nil {
			return workflows.StatusNotRun, false, fmt.Sprintf("requires %q, which is not in the workflow", name)
		}
		if !Terminal(u.Status) {
			return "", true, ""
		}
	}
	for _, name := range names {
		u := v.byName[j.WorkflowID+"/"+name]
		if accepts(j.Requires[name], u.Status) {
			continue
		}
		r := fmt.Sprintf("%s ended %s", name, u.Status)
		if u.Status != workflows.StatusSuccess && u.Status != workflows.StatusSkipped {
			return workflows.StatusNotRun, false, r
		}
		if status == "" {
			status, reason = workflows.StatusSkipped, r
		}
	}
	return status, false, reason
}

// accepts reports whether an upstream status satisfies a requires entry:
// plain requires mean success; "terminal" accepts any end. A skipped job
// counts as not_run, the status CircleCI reports its skipped jobs with.
func accepts(want []string, status string) bool {
	if len(want) == 0 {
		return status == workflows.StatusSuccess
	}
	if status == workflows.StatusSkipped {
		status = workflows.StatusNotRun
	}
	return slices.Contains(want, status) || slices.Contains(want, workflows.StatusTerminal)
}

// advancer makes the decisions of one advance transaction.
type advancer struct {
	e        *Engine
	tx       StoreTx
	st       *PipelineState
	v        *pipelineView
	now      time.Time
	slots    int
	events   []Event
	launches []launch
	queued   bool
}

func (a *advancer) run(ctx context.Context) error {
	a.v = newView(a.st)
	if a.st.Pipeline.Finished.After(time.Time{}) {
		return nil
	}
	for changed := true; changed; {
		changed = false
		for i := range a.st.Jobs {
			j := &a.st.Jobs[i]
			if j.Status != StatusBlocked {
				continue
			}
			if a.v.workflow(j.WorkflowID).Canceled {
				if err := a.setJob(ctx, j, workflows.StatusCanceled, "workflow canceled"); err != nil {
					return err
				}
				changed = true
				continue
			}
			end, wait, reason := a.v.requiresMet(j)
			if wait {
				continue
			}
			changed = true
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
	}
	for i := range a.st.Jobs {
		j := &a.st.Jobs[i]
		if j.Status != StatusQueued {
			continue
		}
		if a.v.workflow(j.WorkflowID).Canceled {
			if err := a.setJob(ctx, j, workflows.StatusCanceled, "workflow canceled"); err != nil {
				return err
			}
			continue
		}
		a.queued = true
		if a.slots <= 0 {
			continue
		}
		if j.Env != "" {
			ok, reason, err := a.takeLock(ctx, j)
			if err != nil {
				return err
			}
			if !ok {
				if reason != j.Reason {
					if err := a.tx.SetJobStatus(ctx, j.ID, StatusQueued, reason, a.now); err != nil {
						return err
					}
					j.Reason = reason
					a.event(EventJobWaiting, j, EventData{Reason: reason, Env: j.Env})
				}
				continue
			}
		}
		if err := a.startJob(ctx, j); err != nil {
			return err
		}
		a.slots--
	}
	a.queued = slices.ContainsFunc(a.st.Jobs, func(j JobRecord) bool { return j.Status == StatusQueued })
	if err := a.rollup(ctx); err != nil {
		return err
	}
	return a.tx.AddEvents(ctx, a.events)
}

func (a *advancer) event(kind string, j *JobRecord, d EventData) {
	d.Workflow, d.WorkflowID, d.Job, d.JobID = a.v.workflow(j.WorkflowID).Name, j.WorkflowID, j.Name, j.ID
	a.events = append(a.events, Event{PipelineID: a.st.Pipeline.ID, Kind: kind, At: a.now, Data: d})
}

// setJob changes a job that is not running, and says so when it ended.
func (a *advancer) setJob(ctx context.Context, j *JobRecord, status, reason string) error {
	if err := a.tx.SetJobStatus(ctx, j.ID, status, reason, a.now); err != nil {
		return err
	}
	if j.Status == StatusQueued && j.Env != "" {
		if err := a.tx.DequeueDeploy(ctx, j.ID); err != nil {
			return err
		}
	}
	j.Status, j.Reason = status, reason
	if Terminal(status) {
		a.event(EventJobFinished, j, EventData{Status: status, Reason: reason})
	}
	return nil
}

// hold puts an approval job on hold, naming who may decide: the approvers
// of every environment that a job downstream of it deploys to.
func (a *advancer) hold(ctx context.Context, j *JobRecord) error {
	ap := &ApprovalRecord{
		JobID: j.ID, PipelineID: j.PipelineID, AllowSelf: true, Author: a.st.Pipeline.Author,
		Status: ApprovalPending, Created: a.now, Expires: a.now.Add(a.e.ttl),
	}
	app := a.e.apps[a.st.Pipeline.App]
	for _, d := range a.v.downstream(j) {
		if d.Env == "" || slices.Contains(ap.Envs, d.Env) || app == nil {
			continue
		}
		ap.Envs = append(ap.Envs, d.Env)
		env := app.Environments[d.Env]
		ap.AllowSelf = ap.AllowSelf && env.AllowSelfApproval
		if len(env.Approvers) > 0 {
			if ap.Approvers == nil {
				ap.Approvers = Approvers{}
			}
			ap.Approvers[d.Env] = slices.Clone(env.Approvers)
		}
	}
	slices.Sort(ap.Envs)
	if err := a.tx.CreateApproval(ctx, ap); err != nil {
		return err
	}
	if err := a.setJob(ctx, j, StatusOnHold, "waiting for approval"); err != nil {
		return err
	}
	a.event(EventApprovalNeeded, j, EventData{Approvers: ap.Approvers, Env: strings.Join(ap.Envs, ",")})
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
		ok, err := a.mayDeploy(ctx, j, app.Environments[j.Env])
		if err != nil {
			return err
		}
		if !ok {
			return a.setJob(ctx, j, workflows.StatusUnauthorized, fmt.Sprintf("%s may not deploy to %s/%s without an approval by its approvers",
				a.st.Pipeline.Author, a.st.Pipeline.App, j.Env))
		}
		if err := a.tx.EnqueueDeploy(ctx, a.st.Pipeline.App, j.Env, j.ID, j.PipelineID, a.now); err != nil {
			return err
		}
	}
	return a.setJob(ctx, j, StatusQueued, "")
}

// mayDeploy reports whether the pipeline may deploy to env: its author is
// a deployer there, or an approval upstream was given by an approver there.
func (a *advancer) mayDeploy(ctx context.Context, j *JobRecord, env *Environment) (bool, error) {
	if (Actor{ID: a.st.Pipeline.Author}).allowed(env.Deployers) {
		return true, nil
	}
	for _, u := range a.v.upstream(j) {
		if u.Type != workflows.JobApproval || u.Status != workflows.StatusSuccess {
			continue
		}
		ap, err := a.tx.Approval(ctx, u.ID)
		if err != nil {
			return false, err
		}
		if ap.Status == ApprovalApproved && slices.Contains(ap.Envs, j.Env) {
			return true, nil
		}
	}
	return false, nil
}

// takeLock gives j its environment's lock when the lock is free and j is
// first in the environment's queue; otherwise it says why j waits.
func (a *advancer) takeLock(ctx context.Context, j *JobRecord) (bool, string, error) {
	app := a.st.Pipeline.App
	l, err := a.tx.EnvLock(ctx, app, j.Env)
	if err != nil {
		return false, "", err
	}
	if l != nil {
		if l.Manual {
			return false, fmt.Sprintf("%s/%s is locked by %s since %s: %s", app, j.Env, l.Holder,
				l.Since.Format(time.RFC3339), l.Reason), nil
		}
		if l.JobID != j.ID {
			return false, fmt.Sprintf("waiting for the deploy to %s/%s in progress", app, j.Env), nil
		}
	}
	q, err := a.tx.DeployQueue(ctx, app, j.Env)
	if err != nil {
		return false, "", err
	}
	if pos := slices.IndexFunc(q, func(d QueuedDeploy) bool { return d.JobID == j.ID }); pos > 0 {
		return false, fmt.Sprintf("queued behind %d earlier deploys to %s/%s", pos, app, j.Env), nil
	}
	if err := a.tx.SetEnvLock(ctx, &EnvLock{App: app, Env: j.Env, Holder: j.ID, Reason: "deploy", JobID: j.ID, Since: a.now}); err != nil {
		return false, "", err
	}
	return true, "", a.tx.DequeueDeploy(ctx, j.ID)
}

func (a *advancer) startJob(ctx context.Context, j *JobRecord) error {
	at := AttemptRecord{ID: a.e.ids.NewID(), JobID: j.ID, PipelineID: j.PipelineID, Executor: a.e.execName, Started: a.now}
	if err := a.tx.StartAttempt(ctx, &at, a.st.Pipeline.App); err != nil {
		return err
	}
	spec, err := a.tx.JobSpec(ctx, j.ID)
	if err != nil {
		return err
	}
	j.Status, j.Reason, j.Attempt, j.AttemptID = StatusRunning, "", at.Number, at.ID
	a.event(EventJobStarted, j, EventData{AttemptID: at.ID, Env: j.Env})
	a.launches = append(a.launches, launch{attempt: at, job: *j, spec: spec, pipeline: a.st.Pipeline, workflow: a.v.workflow(j.WorkflowID).Name})
	return nil
}

// rollup sets the statuses of workflows and the pipeline from their jobs.
func (a *advancer) rollup(ctx context.Context) error {
	var wfStatuses []string
	for i := range a.st.Workflows {
		w := &a.st.Workflows[i]
		var statuses []string
		for _, j := range a.st.Jobs {
			if j.WorkflowID == w.ID {
				statuses = append(statuses, j.Status)
			}
		}
		s := rollupStatus(statuses)
		wfStatuses = append(wfStatuses, s)
		if s == w.Status {
			continue
		}
		if err := a.tx.SetWorkflowStatus(ctx, w.ID, s, a.now); err != nil {
			return err
		}
		w.Status = s
		if s != StatusRunning && s != StatusOnHold {
			a.events = append(a.events, Event{PipelineID: a.st.Pipeline.ID, Kind: EventWorkflowFinished, At: a.now,
				Data: EventData{Workflow: w.Name, WorkflowID: w.ID, Status: s}})
		}
	}
	s := rollupStatus(wfStatuses)
	if s == a.st.Pipeline.Status {
		return nil
	}
	if err := a.tx.SetPipelineStatus(ctx, a.st.Pipeline.ID, s, a.now); err != nil {
		return err
	}
	a.st.Pipeline.Status = s
	if s != StatusRunning && s != StatusOnHold {
		a.events = append(a.events, Event{PipelineID: a.st.Pipeline.ID, Kind: EventPipelineFinished, At: a.now,
			Data: EventData{Status: s, Commit: a.st.Pipeline.Trigger.Revision}})
	}
	return nil
}

// rollupStatus is a workflow's status from its jobs' (or a pipeline's from
// its workflows'): running while anything can still move by itself, on
// hold when only approvals are left, then failed, canceled or success.
// Jobs not run or skipped add nothing: a not_run job is behind one that
// already decides the outcome, a skipped job behind one that went well.
// As in CircleCI, a failed job fails its workflow even when a `requires`
// status form handles the failure.
func rollupStatus(statuses []string) string {
	var active, hold, failed, canceled bool
	for _, s := range statuses {
		switch s {
		case StatusQueued, StatusRunning, StatusBlocked:
			active = true
		case StatusOnHold:
			hold = true
		case workflows.StatusFailed, workflows.StatusUnauthorized:
			failed = true
		case workflows.StatusCanceled:
			canceled = true
		}
	}
	switch {
	case hold && !slices.ContainsFunc(statuses, func(s string) bool { return s == StatusQueued || s == StatusRunning }):
		return StatusOnHold
	case active || hold:
		return StatusRunning
	case failed:
		return workflows.StatusFailed
	case canceled:
		return workflows.StatusCanceled
	}
	return workflows.StatusSuccess
}
