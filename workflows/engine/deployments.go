package engine

import (
	"context"
	"slices"
	"strings"

	"github.com/slipway-ci/slipway/workflows"
)

// finishDeploy releases a deploy job's environment lock and, when it
// succeeded, records the deployment.
func (e *Engine) finishDeploy(ctx context.Context, tx StoreTx, j *JobRecord, a *AttemptRecord) ([]Event, error) {
	st, err := e.jobState(ctx, tx, j.PipelineID, j.ID)
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
		Job: j.Name, JobID: j.ID, Env: j.Env, Actor: approvedBy,
	}}}, nil
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
