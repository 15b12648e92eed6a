package engine

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/workflows"
)

// finishDeploy releases a deploy job's environment lock and, when it
// succeeded, records the deployment; then it settles the pipeline's
// release to that environment when this was the last of its deploy jobs
// there, or failed.
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
	if a.Status == workflows.StatusSuccess && len(a.Outputs) > 0 {
		r, err := tx.Release(ctx, j.PipelineID, j.Env)
		if err != nil {
			return nil, err
		}
		if r.Artifacts == nil {
			r.Artifacts = Outputs{}
		}
		maps.Copy(r.Artifacts, a.Outputs)
		if err := tx.SaveRelease(ctx, r); err != nil {
			return nil, err
		}
	}
	if a.Status == workflows.StatusSuccess {
		approvedBy, err := approvedBy(ctx, tx, st, j)
		if err != nil {
			return nil, err
		}
		t := st.Pipeline.Trigger
		if err := tx.RecordDeployment(ctx, &Deployment{
			ID: e.ids.NewID(), App: app, Env: j.Env, Commit: t.Revision, Version: deployVersion(t),
			PipelineID: j.PipelineID, JobID: j.ID, AttemptID: a.ID, StartedBy: st.Pipeline.Author,
			ApprovedBy: approvedBy, Outcome: workflows.StatusSuccess, Created: a.Finished,
		}); err != nil {
			return nil, err
		}
	}
	return e.settleRelease(ctx, tx, st, j.Env, a.Finished)
}

// deployVersion is what a pipeline deploys: the version /deploy named,
// else the commit.
func deployVersion(t workflows.Trigger) string {
	if t.Deploy != nil && t.Deploy.Version != "" {
		return t.Deploy.Version
	}
	return t.Revision
}

// startRelease records, as a pipeline's first deploy job to env starts,
// its release there.
func (e *Engine) startRelease(ctx context.Context, tx StoreTx, p *PipelineRecord, env string, now time.Time) error {
	_, err := tx.StartRelease(ctx, &Release{ID: e.ids.NewID(), App: p.App, Env: env, PipelineID: p.ID,
		Commit: p.Trigger.Revision, Version: deployVersion(p.Trigger), StartedBy: p.Author, Outcome: StatusRunning,
		Rollback: p.Trigger.Deploy != nil && p.Trigger.Deploy.Rollback, Created: now})
	return err
}

// settleRelease ends the pipeline's running release to env once its
// deploy jobs there say how it went: failed as soon as one failed;
// success once all succeeded, with a deployed event (and, after a
// rollback, the environment locked where the app asks for it); canceled
// when the others can no longer run.
func (e *Engine) settleRelease(ctx context.Context, tx StoreTx, v *pipelineView, env string, now time.Time) ([]Event, error) {
	r, err := tx.Release(ctx, v.Pipeline.ID, env)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil || r.Outcome != StatusRunning {
		return nil, err
	}
	outcome := workflows.StatusSuccess
	var approvers []string
	for i := range v.Jobs {
		j := &v.Jobs[i]
		if j.Env != env {
			continue
		}
		switch {
		case j.Status == workflows.StatusFailed || j.Status == workflows.StatusUnauthorized:
			outcome = workflows.StatusFailed
		case !Terminal(j.Status):
			if outcome == workflows.StatusSuccess {
				outcome = ""
			}
		case j.Status != workflows.StatusSuccess && outcome == workflows.StatusSuccess:
			outcome = workflows.StatusCanceled
		}
		if j.Status == workflows.StatusSuccess {
			who, err := approvedBy(ctx, tx, v, j)
			if err != nil {
				return nil, err
			}
			for _, w := range strings.Split(who, ",") {
				if w != "" && !slices.Contains(approvers, w) {
					approvers = append(approvers, w)
				}
			}
		}
	}
	if outcome == "" {
		return nil, nil // deploy jobs to env still to come
	}
	r.Outcome, r.ApprovedBy, r.Finished = outcome, strings.Join(approvers, ","), now
	if err := tx.SaveRelease(ctx, r); err != nil {
		return nil, err
	}
	if outcome != workflows.StatusSuccess {
		return nil, nil
	}
	if a := e.apps[r.App]; r.Rollback && a != nil && a.LockAfterRollback {
		l, err := tx.EnvLock(ctx, r.App, env)
		if err != nil {
			return nil, err
		}
		if l == nil {
			if err := tx.SetEnvLock(ctx, &EnvLock{App: r.App, Env: env, Holder: r.StartedBy, Reason: LockedAfterRollback,
				Manual: true, Since: now}); err != nil {
				return nil, err
			}
		}
	}
	return []Event{{PipelineID: v.Pipeline.ID, Kind: EventDeployed, At: now, Data: EventData{
		Env: env, Actor: r.ApprovedBy, Release: r.Number,
	}}}, nil
}

// LockedAfterRollback is the reason of the lock a rollback leaves, so
// that the next push does not roll forward again until someone unlocks.
const LockedAfterRollback = "locked after rollback"

// approvedBy names who approved the deploy of j: the approvals upstream
// of it, and its own gate.
func approvedBy(ctx context.Context, tx StoreTx, v *pipelineView, j *JobRecord) (string, error) {
	var who []string
	for _, up := range append([]*JobRecord{j}, v.upstream(j)...) {
		if up != j && (up.Type != workflows.JobApproval || up.Status != workflows.StatusSuccess) {
			continue
		}
		a, err := tx.Approval(ctx, up.ID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		if a.Status == ApprovalApproved && !slices.Contains(who, a.DecidedBy) {
			who = append(who, a.DecidedBy)
		}
	}
	return strings.Join(who, ","), nil
}
