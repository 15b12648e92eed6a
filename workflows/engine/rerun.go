package engine

import (
	"context"
	"fmt"
	"slices"

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
		d.Pipeline = st.Pipeline.Number
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
		var envs []string
		for _, j := range st.Jobs {
			if j.WorkflowID == w.ID && j.Env != "" && (job == "" || j.Name == job || slices.ContainsFunc(v.upstream(&j), func(u *JobRecord) bool { return u.Name == job })) {
				envs = append(envs, j.Env)
			}
		}
		refusal := MayControl(by, e.apps[st.Pipeline.App], st.Pipeline.AuthorList(), envs)
		switch {
		case refusal != nil:
			refusal.Pipeline = d.Pipeline
			d = *refusal
		case w.Finished.IsZero():
			d.Code, d.Status = RefusedRunning, w.Status
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
				d.Code, d.Job, d.Status = RefusedNothingToRun, job, j.Status
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
			d = Decision{Applied: true, Pipeline: d.Pipeline, Job: job, Jobs: len(reset)}
		}
		subject := "workflow " + w.ID
		if job != "" {
			subject += " job " + job
		}
		return tx.Audit(ctx, AuditEntry{At: now, Actor: by.ID, Action: "rerun", Subject: subject, Detail: d.String()})
	})
	if err != nil {
		return Decision{}, fmt.Errorf("engine: rerun: %w", err)
	}
	e.changedPipeline(pipelineID)
	return d, nil
}
