package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/slipway-ci/slipway/workflows"
)

// Cancel stops a pipeline: nothing new starts, running attempts are
// canceled, waiting jobs and approvals end canceled. Who may: MayControl.
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
		refusal := MayControl(by, e.apps[st.Pipeline.App], st.Pipeline.AuthorList(), deployEnvs(st.Jobs))
		switch {
		case by.ID != systemActor && refusal != nil:
			d = *refusal
		case !st.Pipeline.Finished.IsZero():
			d.Code, d.Status = RefusedEnded, st.Pipeline.Status
		default:
			d = Decision{Applied: true, Status: workflows.StatusCanceled}
			if err := e.cancelJobs(ctx, tx, st, now, by.ID, &attempts); err != nil {
				return err
			}
		}
		d.Pipeline = st.Pipeline.Number
		return tx.Audit(ctx, AuditEntry{At: now, Actor: by.ID, Action: "cancel", Subject: "pipeline " + pipelineID, Detail: d.String()})
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
			if err := e.settleApproval(ctx, tx, a, actor); err != nil {
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

// CancelSuperseded cancels the unfinished pipelines of p's app and branch
// that were started before p: a newer push supersedes them (the app's
// cancel_superseded). It returns their numbers.
func (e *Engine) CancelSuperseded(ctx context.Context, p *PipelineRecord) ([]int, error) {
	if p.Trigger.Branch == "" {
		return nil, nil
	}
	ids, err := e.store.ActivePipelines(ctx)
	if err != nil {
		return nil, fmt.Errorf("engine: cancel superseded: %w", err)
	}
	var canceled []int
	for _, id := range ids {
		if id == p.ID {
			continue
		}
		o, err := e.store.Pipeline(ctx, id)
		if err != nil {
			return canceled, fmt.Errorf("engine: cancel superseded: %w", err)
		}
		if o.App != p.App || o.Trigger.Branch != p.Trigger.Branch || o.Trigger.Tag != "" || o.Number > p.Number ||
			o.Trigger.Deploy != nil {
			continue
		}
		d, err := e.Cancel(ctx, id, Actor{ID: systemActor})
		if err != nil {
			return canceled, err
		}
		if d.Applied {
			canceled = append(canceled, o.Number)
		}
	}
	return canceled, nil
}

// systemActor is slipway itself, acting on its own rules (a superseded
// pipeline, an expired approval): the policy does not apply to it.
const systemActor = "slipway"

// deployEnvs lists the environments jobs deploy to.
func deployEnvs(jobs []JobRecord) []string {
	var envs []string
	for _, j := range jobs {
		if j.Env != "" && !slices.Contains(envs, j.Env) {
			envs = append(envs, j.Env)
		}
	}
	return envs
}
