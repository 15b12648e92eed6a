package engine

import (
	"context"
	"fmt"

	"github.com/slipway-ci/slipway/workflows"
)

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
		v := e.view(st)
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
			j := v.named(w.ID, job)
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
