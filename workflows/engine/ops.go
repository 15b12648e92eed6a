package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/workflows"
)

// Decision is the outcome of a request a person made (a button press, a
// command): whether it changed anything, and a sentence that says what.
type Decision struct {
	Applied bool
	Message string
}

// Approve approves the pending approval of an approval job. Pressing it
// twice, after someone else decided, after expiry, or without being one of
// its approvers changes nothing and says so. Every press is audited.
func (e *Engine) Approve(ctx context.Context, jobID string, by Actor) (Decision, error) {
	return e.decide(ctx, jobID, by, true)
}

// Reject rejects the pending approval of an approval job: the job ends
// canceled, and jobs requiring it succeed are not run. Its approvers and
// the pipeline's author may reject.
func (e *Engine) Reject(ctx context.Context, jobID string, by Actor) (Decision, error) {
	return e.decide(ctx, jobID, by, false)
}

func (e *Engine) decide(ctx context.Context, jobID string, by Actor, approve bool) (Decision, error) {
	action := "reject"
	if approve {
		action = "approve"
	}
	var d Decision
	var pipelineID string
	err := e.update(ctx, func(tx StoreTx) error {
		d = Decision{}
		a, err := tx.Approval(ctx, jobID)
		if err != nil {
			return err
		}
		pipelineID = a.PipelineID
		now := e.clock.Now()
		switch {
		case a.Status != ApprovalPending:
			d.Message = fmt.Sprintf("already %s by %s at %s; nothing changed", a.Status, a.DecidedBy, a.Decided.Format(time.RFC3339))
		case !now.Before(a.Expires):
			if err := e.expire(ctx, tx, a, now); err != nil {
				return err
			}
			d.Message = fmt.Sprintf("the approval expired at %s; nothing changed", a.Expires.Format(time.RFC3339))
		case approve && by.ID == a.Author && !a.AllowSelf:
			d.Message = fmt.Sprintf("%s started this pipeline and %s needs someone else's approval; nothing changed",
				by.ID, strings.Join(a.Envs, ", "))
		case approve && a.Approvers.nobody():
			d.Message = "no one may approve this: no approver is allowed in every environment it gates; nothing changed"
		case approve && !by.mayApprove(a.Approvers):
			d.Message = fmt.Sprintf("only %s may approve this; nothing changed", a.Approvers)
		case !approve && by.ID != a.Author && !by.mayApprove(a.Approvers):
			if a.Approvers.nobody() {
				d.Message = fmt.Sprintf("only %s may reject this; nothing changed", a.Author)
			} else {
				d.Message = fmt.Sprintf("only %s or %s may reject this; nothing changed", a.Approvers, a.Author)
			}
		default:
			d.Applied = true
			a.Status, a.DecidedBy, a.Decided = ApprovalRejected, by.ID, now
			status, reason := workflows.StatusCanceled, "rejected by "+by.ID
			if approve {
				a.Status, status, reason = ApprovalApproved, workflows.StatusSuccess, ""
			}
			d.Message = fmt.Sprintf("%s by %s", a.Status, by.ID)
			if err := e.settleApproval(ctx, tx, a, status, reason, by.ID); err != nil {
				return err
			}
		}
		detail := d.Message
		if !d.Applied {
			detail = "refused: " + d.Message
		}
		return tx.Audit(ctx, AuditEntry{At: now, Actor: by.ID, Action: action, Subject: "job " + jobID, Detail: detail})
	})
	if err != nil {
		return Decision{}, fmt.Errorf("engine: %s: %w", action, err)
	}
	e.changedPipeline(pipelineID)
	return d, nil
}

// settleApproval records a decision on a pending approval and ends its job.
func (e *Engine) settleApproval(ctx context.Context, tx StoreTx, a *ApprovalRecord, status, reason, actor string) error {
	if err := tx.DecideApproval(ctx, a); err != nil {
		return err
	}
	if err := tx.SetJobStatus(ctx, a.JobID, status, reason, a.Decided); err != nil {
		return err
	}
	st, err := jobState(ctx, tx, a.PipelineID, a.JobID)
	if err != nil {
		return err
	}
	j := st.job(a.JobID)
	// The workflow and pipeline move again (the next advance says how),
	// so that nobody waiting for them to settle sees a stale on_hold.
	if w := st.workflow(j.WorkflowID); w.Status == StatusOnHold {
		if err := tx.SetWorkflowStatus(ctx, w.ID, StatusRunning, a.Decided); err != nil {
			return err
		}
	}
	if st.Pipeline.Status == StatusOnHold {
		if err := tx.SetPipelineStatus(ctx, st.Pipeline.ID, StatusRunning, a.Decided); err != nil {
			return err
		}
	}
	data := EventData{Workflow: st.workflow(j.WorkflowID).Name, WorkflowID: j.WorkflowID, Job: j.Name, JobID: j.ID,
		Status: a.Status, Reason: a.Reason, Actor: actor, Env: strings.Join(a.Envs, ",")}
	fin := data
	fin.Status, fin.Reason, fin.Actor = status, reason, ""
	return tx.AddEvents(ctx, []Event{
		{PipelineID: a.PipelineID, Kind: EventApprovalDecided, At: a.Decided, Data: data},
		{PipelineID: a.PipelineID, Kind: EventJobFinished, At: a.Decided, Data: fin},
	})
}

func (e *Engine) expire(ctx context.Context, tx StoreTx, a *ApprovalRecord, now time.Time) error {
	a.Status, a.DecidedBy, a.Decided = ApprovalExpired, "slipway", now
	a.Reason = fmt.Sprintf("no decision within %s", a.Expires.Sub(a.Created))
	if err := e.settleApproval(ctx, tx, a, workflows.StatusCanceled, "approval expired", "slipway"); err != nil {
		return err
	}
	return tx.Audit(ctx, AuditEntry{At: now, Actor: "slipway", Action: "expire", Subject: "job " + a.JobID, Detail: a.Reason})
}

// ExpireApprovals ends the pending approvals whose time is up. The
// scheduler loop calls it every tick.
func (e *Engine) ExpireApprovals(ctx context.Context) error {
	ids, err := e.store.PendingApprovals(ctx)
	if err != nil {
		return fmt.Errorf("engine: expire: %w", err)
	}
	for _, jobID := range ids {
		var pipelineID string
		err := e.update(ctx, func(tx StoreTx) error {
			a, err := tx.Approval(ctx, jobID)
			if err != nil {
				return err
			}
			now := e.clock.Now()
			if a.Status != ApprovalPending || now.Before(a.Expires) {
				return nil
			}
			pipelineID = a.PipelineID
			return e.expire(ctx, tx, a, now)
		})
		if err != nil {
			return fmt.Errorf("engine: expire: %w", err)
		}
		if pipelineID != "" {
			e.changedPipeline(pipelineID)
		}
	}
	return nil
}

// Cancel stops a pipeline: nothing new starts, running attempts are
// canceled, waiting jobs and approvals end canceled.
func (e *Engine) Cancel(ctx context.Context, pipelineID string, by Actor) (Decision, error) {
	var d Decision
	var attempts []string
	err := e.update(ctx, func(tx StoreTx) error {
		d, attempts = Decision{}, nil
		st, err := tx.PipelineState(ctx, pipelineID)
		if err != nil {
			return err
		}
		now := e.clock.Now()
		if !st.Pipeline.Finished.IsZero() {
			d.Message = fmt.Sprintf("pipeline %d already ended %s; nothing changed", st.Pipeline.Number, st.Pipeline.Status)
		} else {
			d = Decision{Applied: true, Message: fmt.Sprintf("pipeline %d canceled by %s", st.Pipeline.Number, by.ID)}
			if err := e.cancelJobs(ctx, tx, st, now, by.ID, &attempts); err != nil {
				return err
			}
		}
		return tx.Audit(ctx, AuditEntry{At: now, Actor: by.ID, Action: "cancel", Subject: "pipeline " + pipelineID, Detail: d.Message})
	})
	if err != nil {
		return Decision{}, fmt.Errorf("engine: cancel: %w", err)
	}
	e.mu.Lock()
	for _, id := range attempts {
		if r := e.running[id]; r != nil {
			r.cancel()
		}
	}
	e.mu.Unlock()
	e.changedPipeline(pipelineID)
	return d, nil
}

func (e *Engine) cancelJobs(ctx context.Context, tx StoreTx, st *PipelineState, now time.Time, actor string, attempts *[]string) error {
	for _, w := range st.Workflows {
		if w.Finished.IsZero() {
			if err := tx.SetWorkflowCanceled(ctx, w.ID, true); err != nil {
				return err
			}
		}
	}
	for _, j := range st.Jobs {
		switch j.Status {
		case StatusRunning:
			*attempts = append(*attempts, j.AttemptID)
		case StatusOnHold:
			a, err := tx.Approval(ctx, j.ID)
			if err != nil {
				return err
			}
			a.Status, a.DecidedBy, a.Decided, a.Reason = ApprovalCanceled, actor, now, "pipeline canceled"
			if err := e.settleApproval(ctx, tx, a, workflows.StatusCanceled, "pipeline canceled", actor); err != nil {
				return err
			}
		case StatusQueued, StatusBlocked:
			if j.Env != "" {
				if err := tx.DequeueDeploy(ctx, j.ID); err != nil {
					return err
				}
			}
			if err := tx.SetJobStatus(ctx, j.ID, workflows.StatusCanceled, "canceled by "+actor, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// RerunWorkflow runs a finished workflow again from the start. Each job
// gets a new attempt; earlier attempts and approvals stay in the history.
func (e *Engine) RerunWorkflow(ctx context.Context, pipelineID, workflow string, by Actor) (Decision, error) {
	return e.rerun(ctx, pipelineID, workflow, "", by)
}

// RerunJob runs a failed (or canceled, or unauthorized) job of a finished
// workflow again, with the jobs downstream of it.
func (e *Engine) RerunJob(ctx context.Context, pipelineID, workflow, job string, by Actor) (Decision, error) {
	return e.rerun(ctx, pipelineID, workflow, job, by)
}

func (e *Engine) rerun(ctx context.Context, pipelineID, workflow, job string, by Actor) (Decision, error) {
	var d Decision
	err := e.update(ctx, func(tx StoreTx) error {
		d = Decision{}
		st, err := tx.PipelineState(ctx, pipelineID)
		if err != nil {
			return err
		}
		v := newView(st)
		now := e.clock.Now()
		var w *WorkflowRecord
		for i := range st.Workflows {
			if st.Workflows[i].Name == workflow {
				w = &st.Workflows[i]
			}
		}
		if w == nil {
			return fmt.Errorf("workflow %q of pipeline %s: %w", workflow, pipelineID, ErrNotFound)
		}
		var reset []*JobRecord
		switch {
		case w.Finished.IsZero():
			d.Message = fmt.Sprintf("workflow %s is still %s; nothing changed", workflow, w.Status)
		case job == "":
			for i := range st.Jobs {
				if st.Jobs[i].WorkflowID == w.ID {
					reset = append(reset, &st.Jobs[i])
				}
			}
		default:
			j := v.byName[w.ID+"/"+job]
			if j == nil {
				return fmt.Errorf("job %q of workflow %q: %w", job, workflow, ErrNotFound)
			}
			if j.Status == workflows.StatusSuccess || j.Status == workflows.StatusNotRun || j.Status == workflows.StatusSkipped {
				d.Message = fmt.Sprintf("job %s ended %s; rerun the workflow to run it again; nothing changed", job, j.Status)
				break
			}
			reset = append([]*JobRecord{j}, v.downstream(j)...)
		}
		if len(reset) > 0 {
			for _, j := range reset {
				if err := tx.SetJobStatus(ctx, j.ID, StatusBlocked, "", now); err != nil {
					return err
				}
			}
			if err := tx.SetWorkflowCanceled(ctx, w.ID, false); err != nil {
				return err
			}
			if err := tx.SetWorkflowStatus(ctx, w.ID, StatusRunning, now); err != nil {
				return err
			}
			if err := tx.SetPipelineStatus(ctx, pipelineID, StatusRunning, now); err != nil {
				return err
			}
			d = Decision{Applied: true, Message: fmt.Sprintf("rerunning %d jobs of %s", len(reset), workflow)}
		}
		subject := "workflow " + w.ID
		if job != "" {
			subject += " job " + job
		}
		return tx.Audit(ctx, AuditEntry{At: now, Actor: by.ID, Action: "rerun", Subject: subject, Detail: d.Message})
	})
	if err != nil {
		return Decision{}, fmt.Errorf("engine: rerun: %w", err)
	}
	e.changedPipeline(pipelineID)
	return d, nil
}

// Lock takes an environment's lock by hand: deploys to it wait, saying
// who holds it and why, until Unlock. Its deployers may lock it.
func (e *Engine) Lock(ctx context.Context, app, env string, by Actor, reason string) (Decision, error) {
	en, err := e.environment(app, env)
	if err != nil {
		return Decision{}, err
	}
	var d Decision
	err = e.update(ctx, func(tx StoreTx) error {
		d = Decision{}
		now := e.clock.Now()
		l, err := tx.EnvLock(ctx, app, env)
		if err != nil {
			return err
		}
		switch {
		case !by.allowed(en.Deployers):
			d.Message = fmt.Sprintf("only %s may lock %s/%s; nothing changed", strings.Join(en.Deployers, ", "), app, env)
		case l != nil && l.Manual:
			d.Message = fmt.Sprintf("%s/%s is already locked by %s: %s; nothing changed", app, env, l.Holder, l.Reason)
		case l != nil:
			d.Message = fmt.Sprintf("%s/%s is being deployed; lock it when the deploy ends; nothing changed", app, env)
		default:
			if err := tx.SetEnvLock(ctx, &EnvLock{App: app, Env: env, Holder: by.ID, Reason: reason, Manual: true, Since: now}); err != nil {
				return err
			}
			d = Decision{Applied: true, Message: fmt.Sprintf("%s/%s locked by %s: %s", app, env, by.ID, reason)}
		}
		return tx.Audit(ctx, AuditEntry{At: now, Actor: by.ID, Action: "lock", Subject: app + "/" + env, Detail: d.Message})
	})
	if err != nil {
		return Decision{}, fmt.Errorf("engine: lock: %w", err)
	}
	return d, nil
}

// Unlock releases a manual lock; queued deploys then go in arrival order.
func (e *Engine) Unlock(ctx context.Context, app, env string, by Actor) (Decision, error) {
	en, err := e.environment(app, env)
	if err != nil {
		return Decision{}, err
	}
	var d Decision
	err = e.update(ctx, func(tx StoreTx) error {
		d = Decision{}
		now := e.clock.Now()
		l, err := tx.EnvLock(ctx, app, env)
		if err != nil {
			return err
		}
		switch {
		case !by.allowed(en.Deployers):
			d.Message = fmt.Sprintf("only %s may unlock %s/%s; nothing changed", strings.Join(en.Deployers, ", "), app, env)
		case l == nil:
			d.Message = fmt.Sprintf("%s/%s is not locked; nothing changed", app, env)
		case !l.Manual:
			d.Message = fmt.Sprintf("%s/%s is held by a deploy in progress; it unlocks when the deploy ends; nothing changed", app, env)
		default:
			if err := tx.DeleteEnvLock(ctx, app, env); err != nil {
				return err
			}
			d = Decision{Applied: true, Message: fmt.Sprintf("%s/%s unlocked by %s (was locked by %s: %s)", app, env, by.ID, l.Holder, l.Reason)}
		}
		return tx.Audit(ctx, AuditEntry{At: now, Actor: by.ID, Action: "unlock", Subject: app + "/" + env, Detail: d.Message})
	})
	if err != nil {
		return Decision{}, fmt.Errorf("engine: unlock: %w", err)
	}
	if d.Applied {
		e.mu.Lock()
		for id := range e.waiting {
			e.dirty[id] = true
		}
		e.mu.Unlock()
		e.kick()
	}
	return d, nil
}

func (e *Engine) environment(app, env string) (*Environment, error) {
	a := e.apps[app]
	if a == nil || a.Environments[env] == nil {
		return nil, fmt.Errorf("engine: environment %s/%s: %w", app, env, ErrNotFound)
	}
	return a.Environments[env], nil
}

// changedPipeline asks for a pipeline to be advanced after a change made
// outside the scheduler, and tells waiters and the outbox.
func (e *Engine) changedPipeline(id string) {
	if id != "" {
		e.markDirty(id)
	}
	e.broadcast()
}

func (e *Engine) kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}
