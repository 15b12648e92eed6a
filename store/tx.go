package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// tx is one write transaction, handed to the engine by Update.
type tx struct {
	db    *DB
	q     runner
	cache *stateCache
	work  map[string]*held // states read or changed here; cached once committed
	after []func()         // AfterCommit's
}

var _ engine.StoreTx = (*tx)(nil)

// PipelineState reads a pipeline as this transaction sees it, from the
// cache when it holds it (see stateCache). It is the transaction's own
// state: later writes of the transaction show in it.
func (t *tx) PipelineState(ctx context.Context, id string) (*engine.PipelineState, error) {
	h, err := t.state(ctx, id)
	if err != nil {
		return nil, err
	}
	return h.st, nil
}

func (t *tx) JobSpec(ctx context.Context, jobID string) (*workflows.JobSpec, error) {
	return jobSpec(ctx, t.q, jobID)
}

func (t *tx) Pipeline(ctx context.Context, id string) (*engine.PipelineRecord, error) {
	return pipelineRecord(ctx, t.q, id)
}

// Workflow and Job answer from the state the transaction holds, when it
// holds the pipeline, and else read the one row.
func (t *tx) Workflow(ctx context.Context, id string) (*engine.WorkflowRecord, error) {
	if w := t.cachedWorkflow(id); w != nil {
		rec := *w
		return &rec, nil
	}
	var w workflowRow
	if err := sqlx.GetContext(ctx, t.q, &w, `SELECT `+workflowCols+` FROM workflows WHERE id = ?`, id); err != nil {
		return nil, notFound("workflow", id, err)
	}
	rec := w.record()
	return &rec, nil
}

func (t *tx) Job(ctx context.Context, id string) (*engine.JobRecord, error) {
	if j := t.cachedJob(id); j != nil {
		rec := *j
		rec.Requires, rec.Context = cloneRequires(j.Requires), slices.Clone(j.Context)
		return &rec, nil
	}
	var j jobRow
	if err := sqlx.GetContext(ctx, t.q, &j, `SELECT `+jobCols+` FROM jobs j WHERE j.id = ?`, id); err != nil {
		return nil, notFound("job", id, err)
	}
	rec, err := j.record()
	if err != nil {
		return nil, err
	}
	return &rec, nil
}

// The methods that change pipelines, workflows and jobs make the same
// change to the cached state, if any, found before the database changes.

func (t *tx) SetPipelineStatus(ctx context.Context, id, status string, at time.Time) error {
	fin := int64(0)
	if status != engine.StatusRunning && status != engine.StatusOnHold {
		fin = nanos(at)
	}
	h := t.cached(id)
	if err := exec1(ctx, t.q, "pipeline", id, `UPDATE pipelines SET status = ?, finished_at = ? WHERE id = ?`, status, fin, id); err != nil {
		return err
	}
	if h != nil {
		h.st.Pipeline.Status, h.st.Pipeline.Finished = status, fromNanos(fin)
	}
	return nil
}

func (t *tx) SetWorkflowStatus(ctx context.Context, id, status string, at time.Time) error {
	fin := int64(0)
	if status != engine.StatusRunning && status != engine.StatusOnHold {
		fin = nanos(at)
	}
	w := t.cachedWorkflow(id)
	if err := exec1(ctx, t.q, "workflow", id, `UPDATE workflows SET status = ?, finished_at = ? WHERE id = ?`, status, fin, id); err != nil {
		return err
	}
	if w != nil {
		w.Status, w.Finished = status, fromNanos(fin)
	}
	return nil
}

func (t *tx) SetWorkflowCanceled(ctx context.Context, id string, canceled bool) error {
	w := t.cachedWorkflow(id)
	if err := exec1(ctx, t.q, "workflow", id, `UPDATE workflows SET canceled = ? WHERE id = ?`, canceled, id); err != nil {
		return err
	}
	if w != nil {
		w.Canceled = canceled
	}
	return nil
}

func (t *tx) SetJobStatus(ctx context.Context, jobID, status, reason string, at time.Time) error {
	fin := int64(0)
	if engine.Terminal(status) {
		fin = nanos(at)
	}
	j := t.cachedJob(jobID)
	if err := exec1(ctx, t.q, "job", jobID, `UPDATE jobs SET status = ?, reason = ?, finished_at = ? WHERE id = ?`,
		status, reason, fin, jobID); err != nil {
		return err
	}
	if j != nil {
		j.Status, j.Reason, j.Finished = status, reason, fromNanos(fin)
	}
	return nil
}

func (t *tx) StartAttempt(ctx context.Context, a *engine.AttemptRecord, app string) error {
	var n int
	if err := sqlx.GetContext(ctx, t.q, &n, `SELECT attempt + 1 FROM jobs WHERE id = ?`, a.JobID); err != nil {
		return notFound("job", a.JobID, err)
	}
	build, err := nextCounter(ctx, t.q, "build:"+app)
	if err != nil {
		return err
	}
	a.Number, a.BuildNum, a.Status = n, build, engine.StatusRunning
	if _, err := t.q.ExecContext(ctx, `INSERT INTO attempts
		(id, job_id, number, build_num, executor, status, log_path, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.JobID, n, build, a.Executor, a.Status, logPath(t.db.logDir, a.ID), nanos(a.Started)); err != nil {
		return err
	}
	j := t.cachedJob(a.JobID)
	if err := exec1(ctx, t.q, "job", a.JobID, `UPDATE jobs SET status = ?, reason = '', attempt = ?, attempt_id = ?,
		exit_code = 0, started_at = ?, finished_at = 0 WHERE id = ?`, engine.StatusRunning, n, a.ID, nanos(a.Started), a.JobID); err != nil {
		return err
	}
	if j != nil {
		j.Status, j.Reason, j.Attempt, j.AttemptID = engine.StatusRunning, "", n, a.ID
		j.ExitCode, j.Started, j.Finished = 0, fromNanos(nanos(a.Started)), time.Time{}
	}
	return nil
}

func (t *tx) FinishAttempt(ctx context.Context, a *engine.AttemptRecord) error {
	if err := t.storeLog(ctx, a.ID); err != nil {
		return err
	}
	outputs, err := jsonTexts(a.Outputs)
	if err != nil {
		return err
	}
	if err := exec1(ctx, t.q, "attempt", a.ID, `UPDATE attempts SET status = ?, exit_code = ?, reason = ?, finished_at = ?,
		outputs_json = ? WHERE id = ?`, a.Status, a.ExitCode, a.Reason, nanos(a.Finished), outputs[0], a.ID); err != nil {
		return err
	}
	for i, st := range a.Steps {
		if _, err := t.q.ExecContext(ctx, `INSERT INTO steps (attempt_id, idx, name, status, exit_code, started_at, finished_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, a.ID, i, st.Name, st.Status, st.ExitCode, nanos(st.Started), nanos(st.Finished)); err != nil {
			return err
		}
	}
	j := t.cachedJob(a.JobID)
	if err := exec1(ctx, t.q, "job", a.JobID, `UPDATE jobs SET status = ?, reason = ?, exit_code = ?, finished_at = ?
		WHERE id = ? AND attempt_id = ?`, a.Status, a.Reason, a.ExitCode, nanos(a.Finished), a.JobID, a.ID); err != nil {
		return err
	}
	if j != nil {
		j.Status, j.Reason, j.ExitCode, j.Finished = a.Status, a.Reason, a.ExitCode, fromNanos(nanos(a.Finished))
	}
	return nil
}

func (t *tx) CreateApproval(ctx context.Context, a *engine.ApprovalRecord) error {
	text, err := jsonTexts(a.Envs, a.Approvers)
	if err != nil {
		return err
	}
	res, err := t.q.ExecContext(ctx, `INSERT INTO approvals
		(job_id, pipeline_id, envs_json, approvers_json, allow_self, author, status, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, a.JobID, a.PipelineID, text[0], text[1], a.AllowSelf, a.Author,
		a.Status, nanos(a.Created), nanos(a.Expires))
	if err != nil {
		return err
	}
	a.ID, err = res.LastInsertId()
	return err
}

func (t *tx) Approval(ctx context.Context, jobID string) (*engine.ApprovalRecord, error) {
	return approval(ctx, t.q, jobID)
}

func (t *tx) DecideApproval(ctx context.Context, a *engine.ApprovalRecord) error {
	// Only a pending approval changes: a decision is never overwritten.
	return exec1(ctx, t.q, "pending approval", fmt.Sprint(a.ID), `UPDATE approvals SET status = ?, decided_by = ?, reason = ?,
		decided_at = ? WHERE id = ? AND status = 'pending'`, a.Status, a.DecidedBy, a.Reason, nanos(a.Decided), a.ID)
}

func (t *tx) RecordDeployment(ctx context.Context, d *engine.Deployment) error {
	_, err := t.q.ExecContext(ctx, `INSERT INTO deployments (id, app, env, commit_sha, version, pipeline_id, job_id,
		attempt_id, started_by, approved_by, outcome, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.App, d.Env, d.Commit, d.Version, d.PipelineID, d.JobID, d.AttemptID, d.StartedBy, d.ApprovedBy,
		d.Outcome, nanos(d.Created))
	return err
}

func (t *tx) EnvLock(ctx context.Context, app, env string) (*engine.EnvLock, error) {
	var r struct {
		Holder string `db:"holder"`
		Reason string `db:"reason"`
		Manual bool   `db:"manual"`
		JobID  string `db:"job_id"`
		Since  int64  `db:"since"`
	}
	err := sqlx.GetContext(ctx, t.q, &r, `SELECT holder, reason, manual, job_id, since FROM env_locks WHERE app = ? AND env = ?`, app, env)
	if err == sql.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &engine.EnvLock{App: app, Env: env, Holder: r.Holder, Reason: r.Reason, Manual: r.Manual, JobID: r.JobID,
		Since: fromNanos(r.Since)}, nil
}

func (t *tx) SetEnvLock(ctx context.Context, l *engine.EnvLock) error {
	_, err := t.q.ExecContext(ctx, `INSERT INTO env_locks (app, env, holder, reason, manual, job_id, since)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, l.App, l.Env, l.Holder, l.Reason, l.Manual, l.JobID, nanos(l.Since))
	return err
}

func (t *tx) DeleteEnvLock(ctx context.Context, app, env string) error {
	_, err := t.q.ExecContext(ctx, `DELETE FROM env_locks WHERE app = ? AND env = ?`, app, env)
	return err
}

func (t *tx) EnqueueDeploy(ctx context.Context, app, env, jobID, pipelineID string, at time.Time) error {
	_, err := t.q.ExecContext(ctx, `INSERT INTO deploy_queue (app, env, job_id, pipeline_id, queued_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING`, app, env, jobID, pipelineID, nanos(at))
	return err
}

func (t *tx) DeployQueue(ctx context.Context, app, env string) ([]engine.QueuedDeploy, error) {
	var rows []struct {
		JobID      string `db:"job_id"`
		PipelineID string `db:"pipeline_id"`
		QueuedAt   int64  `db:"queued_at"`
	}
	if err := sqlx.SelectContext(ctx, t.q, &rows, `SELECT job_id, pipeline_id, queued_at FROM deploy_queue WHERE app = ? AND env = ? ORDER BY seq`,
		app, env); err != nil {
		return nil, err
	}
	out := make([]engine.QueuedDeploy, len(rows))
	for i, r := range rows {
		out[i] = engine.QueuedDeploy{JobID: r.JobID, PipelineID: r.PipelineID, QueuedAt: fromNanos(r.QueuedAt)}
	}
	return out, nil
}

func (t *tx) DequeueDeploy(ctx context.Context, jobID string) error {
	_, err := t.q.ExecContext(ctx, `DELETE FROM deploy_queue WHERE job_id = ?`, jobID)
	return err
}

func (t *tx) AddEvents(ctx context.Context, events []engine.Event) error {
	return addEvents(ctx, t.q, events)
}

func (t *tx) Audit(ctx context.Context, e engine.AuditEntry) error {
	_, err := t.q.ExecContext(ctx, `INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)`,
		nanos(e.At), e.Actor, e.Action, e.Subject, e.Detail)
	return err
}

// AfterCommit runs fn once the transaction committed, before any later
// write of this DB commits: what fns do happens in commit order.
func (t *tx) AfterCommit(fn func()) { t.after = append(t.after, fn) }

// exec1 runs a statement that must change exactly one row.
func exec1(ctx context.Context, tx runner, what, id, query string, args ...any) error {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s %q: %w", what, id, engine.ErrNotFound)
	}
	return nil
}

func logPath(dir, attemptID string) string {
	return filepath.Join(dir, attemptID+".log")
}

func (t *tx) StartRelease(ctx context.Context, r *engine.Release) (*engine.Release, error) {
	if got, err := t.Release(ctx, r.PipelineID, r.Env); err == nil {
		return got, nil
	} else if !errors.Is(err, engine.ErrNotFound) {
		return nil, err
	}
	n, err := nextCounter(ctx, t.q, "release:"+r.App+"/"+r.Env)
	if err != nil {
		return nil, err
	}
	r.Number = n
	if _, err := t.q.ExecContext(ctx, `INSERT INTO releases (id, app, env, number, pipeline_id, commit_sha, version,
		started_by, approved_by, outcome, rollback, created_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.App, r.Env, r.Number, r.PipelineID, r.Commit, r.Version, r.StartedBy, r.ApprovedBy, r.Outcome, r.Rollback,
		nanos(r.Created), nanos(r.Finished)); err != nil {
		return nil, err
	}
	return r, nil
}

func (t *tx) Release(ctx context.Context, pipelineID, env string) (*engine.Release, error) {
	var r releaseRow
	if err := sqlx.GetContext(ctx, t.q, &r, `SELECT `+releaseCols+` FROM releases WHERE pipeline_id = ? AND env = ?`, pipelineID, env); err != nil {
		return nil, notFound("release", pipelineID+"/"+env, err)
	}
	rec := r.record()
	return &rec, nil
}

func (t *tx) SaveRelease(ctx context.Context, r *engine.Release) error {
	text, err := jsonTexts(r.Artifacts)
	if err != nil {
		return err
	}
	return exec1(ctx, t.q, "release", r.ID, `UPDATE releases SET outcome = ?, approved_by = ?, finished_at = ?, artifacts_json = ?
		WHERE id = ?`, r.Outcome, r.ApprovedBy, nanos(r.Finished), text[0], r.ID)
}
