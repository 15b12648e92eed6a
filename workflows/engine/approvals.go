package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/workflows"
)

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
	st, err := e.jobState(ctx, tx, a.PipelineID, a.JobID)
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
