package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/workflows"
)

// hold puts an approval job on hold, naming who may decide: the approvers
// of every environment that a job downstream of it deploys to.
func (a *advancer) hold(ctx context.Context, j *JobRecord) error {
	var envs []string
	for _, d := range a.v.downstream(j) {
		if d.Env != "" && !slices.Contains(envs, d.Env) {
			envs = append(envs, d.Env)
		}
	}
	return a.gate(ctx, j, envs, "waiting for approval")
}

// gate puts j on hold until someone allowed for every one of envs (their
// approvers; anyone where none are listed) decides: an approval job, or a
// deploy to a protected environment that no approval upstream covers.
func (a *advancer) gate(ctx context.Context, j *JobRecord, envs []string, reason string) error {
	ap := &ApprovalRecord{
		JobID: j.ID, PipelineID: j.PipelineID, AllowSelf: true, Author: a.st.Pipeline.Author,
		Status: ApprovalPending, Created: a.now, Expires: a.now.Add(a.e.ttl),
	}
	app := a.e.apps[a.st.Pipeline.App]
	for _, name := range envs {
		env := app.Environments[name]
		ap.Envs = append(ap.Envs, name)
		ap.AllowSelf = ap.AllowSelf && env.AllowSelfApproval
		if len(env.Approvers) > 0 {
			if ap.Approvers == nil {
				ap.Approvers = Approvers{}
			}
			ap.Approvers[name] = slices.Clone(env.Approvers)
		}
	}
	slices.Sort(ap.Envs)
	if err := a.tx.CreateApproval(ctx, ap); err != nil {
		return err
	}
	if err := a.setJob(ctx, j, StatusOnHold, reason); err != nil {
		return err
	}
	a.event(EventApprovalNeeded, j, EventData{Approvers: ap.Approvers, Env: strings.Join(ap.Envs, ",")})
	return nil
}

// approved reports whether a deploy of j to its environment was approved
// by someone allowed there: an approval job upstream of it that gated
// that environment, or the gate on j itself.
func (a *advancer) approved(ctx context.Context, j *JobRecord) (bool, error) {
	gates := []*JobRecord{j}
	for _, u := range a.v.upstream(j) {
		if u.Type == workflows.JobApproval && u.Status == workflows.StatusSuccess {
			gates = append(gates, u)
		}
	}
	for _, g := range gates {
		ap, err := a.tx.Approval(ctx, g.ID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if ap.Status == ApprovalApproved && slices.Contains(ap.Envs, j.Env) {
			return true, nil
		}
	}
	return false, nil
}

// Approve approves the pending approval of an approval job, or of a
// deploy waiting at its protected environment's gate. Pressing it twice,
// after someone else decided, after expiry, or without being allowed (see
// MayApprove) changes nothing and says so. Every press is audited.
func (e *Engine) Approve(ctx context.Context, jobID string, by Actor) (Decision, error) {
	return e.decide(ctx, jobID, by, true)
}

// Reject rejects a pending approval: the job ends canceled, and jobs
// requiring it succeed are not run. Its approvers and the change's
// authors may reject.
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
		p, err := tx.Pipeline(ctx, a.PipelineID)
		if err != nil {
			return err
		}
		pipelineID, d.Pipeline, d.Envs = a.PipelineID, p.Number, a.Envs
		authors := p.AuthorList()
		now := e.clock.Now()
		var refusal *Decision
		if approve {
			refusal = MayApprove(by, a, authors)
		} else {
			refusal = MayReject(by, a, authors)
		}
		switch {
		case a.Status != ApprovalPending:
			d.Code, d.Status, d.Actor, d.At = RefusedDecided, a.Status, a.DecidedBy, a.Decided
		case !now.Before(a.Expires):
			if err := e.expire(ctx, tx, a, now); err != nil {
				return err
			}
			d.Code, d.At = RefusedExpired, a.Expires
		case refusal != nil:
			refusal.Pipeline = d.Pipeline
			d = *refusal
		default:
			d.Applied = true
			a.Status, a.DecidedBy, a.Decided = ApprovalRejected, by.ID, now
			if approve {
				a.Status = ApprovalApproved
				d.AuthorUnknown = !a.AllowSelf && authorsUnknown(authors)
			}
			d.Status = a.Status
			if err := e.settleApproval(ctx, tx, a, by.ID); err != nil {
				return err
			}
		}
		return tx.Audit(ctx, AuditEntry{At: now, Actor: by.ID, Action: action, Subject: "job " + jobID, Detail: d.String()})
	})
	if err != nil {
		return Decision{}, fmt.Errorf("engine: %s: %w", action, err)
	}
	e.changedPipeline(pipelineID)
	return d, nil
}

// settleApproval records the decision taken on a pending approval (its
// Status set) and moves its job: an approval job ends, success when
// approved, else canceled; a deploy held at its gate goes back to wait
// for its turn when approved, else ends canceled.
func (e *Engine) settleApproval(ctx context.Context, tx StoreTx, a *ApprovalRecord, actor string) error {
	if err := tx.DecideApproval(ctx, a); err != nil {
		return err
	}
	st, err := e.jobState(ctx, tx, a.PipelineID, a.JobID)
	if err != nil {
		return err
	}
	j := st.job(a.JobID)
	status, reason := workflows.StatusCanceled, a.Status+" by "+a.DecidedBy
	switch {
	case a.Status == ApprovalExpired:
		reason = "approval expired"
	case a.Status == ApprovalCanceled:
		reason = a.Reason
	case a.Status == ApprovalApproved && j.Type == workflows.JobApproval:
		status, reason = workflows.StatusSuccess, ""
	case a.Status == ApprovalApproved:
		status, reason = StatusBlocked, ""
	}
	if err := tx.SetJobStatus(ctx, a.JobID, status, reason, a.Decided); err != nil {
		return err
	}
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
	events := []Event{{PipelineID: a.PipelineID, Kind: EventApprovalDecided, At: a.Decided, Data: data}}
	if Terminal(status) {
		fin := data
		fin.Status, fin.Reason, fin.Actor, fin.Env = status, reason, "", j.Env
		events = append(events, Event{PipelineID: a.PipelineID, Kind: EventJobFinished, At: a.Decided, Data: fin})
	}
	return tx.AddEvents(ctx, events)
}

func (e *Engine) expire(ctx context.Context, tx StoreTx, a *ApprovalRecord, now time.Time) error {
	a.Status, a.DecidedBy, a.Decided = ApprovalExpired, "slipway", now
	a.Reason = fmt.Sprintf("no decision within %s", a.Expires.Sub(a.Created))
	if err := e.settleApproval(ctx, tx, a, "slipway"); err != nil {
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
