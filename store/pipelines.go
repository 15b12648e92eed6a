package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/jmoiron/sqlx"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// CreatePipeline stores a planned pipeline with the next number of its
// app, its workflows and jobs (blocked). The state it wrote becomes the
// transaction's, built from the rows it wrote the way a read builds it,
// and so goes to the state cache once committed: the scheduler's first
// step on the pipeline does not read it back.
func (t *tx) CreatePipeline(ctx context.Context, p *engine.NewPipeline) (*engine.PipelineRecord, error) {
	authors := p.Authors
	if len(authors) == 0 {
		authors = []string{p.Author}
	}
	text, err := jsonTexts(p.Trigger, p.Source, authors, p.Commit)
	if err != nil {
		return nil, err
	}
	var taken int
	if err := sqlx.GetContext(ctx, t.q, &taken, `SELECT count(*) FROM pipelines WHERE id = ?`, p.ID); err != nil {
		return nil, err
	}
	if taken > 0 {
		return nil, fmt.Errorf("pipeline %q: %w", p.ID, engine.ErrExists)
	}
	n, err := t.ReserveNumber(ctx, p.App, p.ID)
	if err != nil {
		return nil, err
	}
	pr := pipelineRow{ID: p.ID, App: p.App, Number: n, Repo: p.Repo, Author: p.Author, Authors: text[2], Commit: text[3], Trigger: text[0],
		Source: text[1], Status: engine.StatusRunning, Error: p.Error, RerunOf: p.RerunOf, CreatedAt: nanos(p.Created)}
	if p.Error != "" {
		pr.Status, pr.FinishedAt = engine.StatusError, pr.CreatedAt
	}
	if _, err := t.q.ExecContext(ctx, `INSERT INTO pipelines
		(id, app, number, repo, author, authors_json, commit_json, trigger_json, source_json, status, error, rerun_of, created_at,
		finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		pr.ID, pr.App, pr.Number, pr.Repo, pr.Author, pr.Authors, pr.Commit, pr.Trigger, pr.Source, pr.Status, pr.Error, pr.RerunOf,
		pr.CreatedAt, pr.FinishedAt); err != nil {
		return nil, err
	}
	rec, err := pr.record()
	if err != nil {
		return nil, err
	}
	st := &engine.PipelineState{Pipeline: *rec, Jobs: []engine.JobRecord{}}
	for wi, w := range p.Plan.Workflows {
		wr := workflowRow{ID: p.WorkflowIDs[wi], PipelineID: p.ID, Name: w.Name, Status: engine.StatusRunning, CreatedAt: nanos(p.Created)}
		if _, err := t.q.ExecContext(ctx, `INSERT INTO workflows (id, pipeline_id, seq, name, status, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, wr.ID, wr.PipelineID, wi, wr.Name, wr.Status, wr.CreatedAt); err != nil {
			return nil, err
		}
		st.Workflows = append(st.Workflows, wr.record())
		for ji, j := range w.Jobs {
			text, err := jsonTexts(j.Requires, j.Context, j.Spec)
			if err != nil {
				return nil, err
			}
			jr := jobRow{ID: p.JobIDs[wi][ji], PipelineID: p.ID, WorkflowID: wr.ID, Name: j.Name, Job: j.Job, Type: j.Type,
				Requires: text[0], Context: text[1], Env: p.Envs[w.Name+"/"+j.Name], Status: engine.StatusBlocked}
			if _, err := t.q.ExecContext(ctx, `INSERT INTO jobs
				(id, pipeline_id, workflow_id, seq, name, job, type, requires_json, context_json, spec_json, env, status)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				jr.ID, jr.PipelineID, jr.WorkflowID, ji, jr.Name, jr.Job, jr.Type, jr.Requires, jr.Context, text[2],
				jr.Env, jr.Status); err != nil {
				return nil, err
			}
			rec, err := jr.record()
			if err != nil {
				return nil, err
			}
			st.Jobs = append(st.Jobs, rec)
		}
	}
	t.hold(st)
	out := st.Pipeline
	return &out, nil
}

// jsonTexts encodes values as JSON text for their columns, in order.
func jsonTexts(vs ...any) ([]string, error) {
	out := make([]string, len(vs))
	for i, v := range vs {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		out[i] = string(b)
	}
	return out, nil
}

// ReserveNumber gives pipeline id the next number of its app, or the one
// reserved for it before.
func (t *tx) ReserveNumber(ctx context.Context, app, id string) (int, error) {
	var n int
	err := sqlx.GetContext(ctx, t.q, &n, `SELECT number FROM pipeline_numbers WHERE id = ?`, id)
	if err == nil {
		return n, nil
	}
	if err != sql.ErrNoRows {
		return 0, err
	}
	if n, err = nextCounter(ctx, t.q, "pipeline:"+app); err != nil {
		return 0, err
	}
	_, err = t.q.ExecContext(ctx, `INSERT INTO pipeline_numbers (id, app, number) VALUES (?, ?, ?)`, id, app, n)
	return n, err
}

func nextCounter(ctx context.Context, tx runner, name string) (int, error) {
	var n int
	err := sqlx.GetContext(ctx, tx, &n, `INSERT INTO counters (name, value) VALUES (?, 1)
		ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value`, name)
	return n, err
}

// ActivePipelines lists unfinished pipelines, oldest first.
func (s *DB) ActivePipelines(ctx context.Context) ([]string, error) {
	var ids []string
	if err := sqlx.SelectContext(ctx, s.run(), &ids, `SELECT id FROM pipelines WHERE finished_at = 0 ORDER BY created_at, rowid`); err != nil {
		return nil, fmt.Errorf("store: active pipelines: %w", err)
	}
	return ids, nil
}

// PipelineState reads a pipeline with its workflows and jobs.
func (s *DB) PipelineState(ctx context.Context, id string) (*engine.PipelineState, error) {
	st, err := pipelineState(ctx, s.run(), id)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return st, nil
}

// Pipeline reads a pipeline's record alone.
func (s *DB) Pipeline(ctx context.Context, id string) (*engine.PipelineRecord, error) {
	p, err := pipelineRecord(ctx, s.run(), id)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return p, nil
}

type pipelineRow struct {
	ID         string `db:"id"`
	App        string `db:"app"`
	Number     int    `db:"number"`
	Repo       string `db:"repo"`
	Author     string `db:"author"`
	Authors    string `db:"authors_json"`
	Commit     string `db:"commit_json"`
	Trigger    string `db:"trigger_json"`
	Source     string `db:"source_json"`
	Status     string `db:"status"`
	Error      string `db:"error"`
	RerunOf    int    `db:"rerun_of"`
	CreatedAt  int64  `db:"created_at"`
	FinishedAt int64  `db:"finished_at"`
}

type workflowRow struct {
	ID         string `db:"id"`
	PipelineID string `db:"pipeline_id"`
	Name       string `db:"name"`
	Status     string `db:"status"`
	Canceled   bool   `db:"canceled"`
	CreatedAt  int64  `db:"created_at"`
	FinishedAt int64  `db:"finished_at"`
}

type jobRow struct {
	ID         string `db:"id"`
	PipelineID string `db:"pipeline_id"`
	WorkflowID string `db:"workflow_id"`
	Name       string `db:"name"`
	Job        string `db:"job"`
	Type       string `db:"type"`
	Requires   string `db:"requires_json"`
	Context    string `db:"context_json"`
	Env        string `db:"env"`
	Status     string `db:"status"`
	Reason     string `db:"reason"`
	Attempt    int    `db:"attempt"`
	AttemptID  string `db:"attempt_id"`
	ExitCode   int    `db:"exit_code"`
	StartedAt  int64  `db:"started_at"`
	FinishedAt int64  `db:"finished_at"`
}

func pipelineRecord(ctx context.Context, q sqlx.QueryerContext, id string) (*engine.PipelineRecord, error) {
	var p pipelineRow
	if err := sqlx.GetContext(ctx, q, &p, `SELECT id, app, number, repo, author, authors_json, commit_json, trigger_json, source_json, status, error, rerun_of,
		created_at, finished_at FROM pipelines WHERE id = ?`, id); err != nil {
		return nil, notFound("pipeline", id, err)
	}
	return p.record()
}

func (p pipelineRow) record() (*engine.PipelineRecord, error) {
	id := p.ID
	rec := &engine.PipelineRecord{
		ID: p.ID, App: p.App, Number: p.Number, Repo: p.Repo, Author: p.Author, Status: p.Status, Error: p.Error, RerunOf: p.RerunOf,
		Created: fromNanos(p.CreatedAt), Finished: fromNanos(p.FinishedAt),
	}
	if err := json.Unmarshal([]byte(p.Trigger), &rec.Trigger); err != nil {
		return nil, fmt.Errorf("pipeline %s trigger: %w", id, err)
	}
	// pipeline.id and pipeline.number are known only once stored.
	rec.Trigger.ID, rec.Trigger.Number = p.ID, p.Number
	if err := json.Unmarshal([]byte(p.Source), &rec.Source); err != nil {
		return nil, fmt.Errorf("pipeline %s source: %w", id, err)
	}
	if err := json.Unmarshal([]byte(p.Authors), &rec.Authors); err != nil {
		return nil, fmt.Errorf("pipeline %s authors: %w", id, err)
	}
	if err := json.Unmarshal([]byte(p.Commit), &rec.Commit); err != nil {
		return nil, fmt.Errorf("pipeline %s commit: %w", id, err)
	}
	return rec, nil
}

const workflowCols = `id, pipeline_id, name, status, canceled, created_at, finished_at`

func (w workflowRow) record() engine.WorkflowRecord {
	return engine.WorkflowRecord{
		ID: w.ID, PipelineID: w.PipelineID, Name: w.Name, Status: w.Status, Canceled: w.Canceled,
		Created: fromNanos(w.CreatedAt), Finished: fromNanos(w.FinishedAt),
	}
}

const jobCols = `j.id, j.pipeline_id, j.workflow_id, j.name, j.job, j.type, j.requires_json, j.context_json, j.env,
	j.status, j.reason, j.attempt, j.attempt_id, j.exit_code, j.started_at, j.finished_at`

func (j jobRow) record() (engine.JobRecord, error) {
	rec := engine.JobRecord{
		ID: j.ID, PipelineID: j.PipelineID, WorkflowID: j.WorkflowID, Name: j.Name, Job: j.Job, Type: j.Type,
		Env: j.Env, Status: j.Status, Reason: j.Reason, Attempt: j.Attempt, AttemptID: j.AttemptID,
		ExitCode: j.ExitCode, Started: fromNanos(j.StartedAt), Finished: fromNanos(j.FinishedAt),
	}
	if err := decodeJSON(requiresCache, j.Requires, &rec.Requires); err != nil {
		return rec, fmt.Errorf("job %s requires: %w", j.ID, err)
	}
	if err := decodeJSON(contextCache, j.Context, &rec.Context); err != nil {
		return rec, fmt.Errorf("job %s context: %w", j.ID, err)
	}
	return rec, nil
}

// decodeJSON skips the empty values most jobs have, and decodes each
// other text once (see jsonCache): the scheduler reads every job of a
// pipeline at each step, and these columns never change.
func decodeJSON[T any](c *jsonCache[T], s string, v *T) error {
	switch s {
	case "null", "{}", "[]", "":
		return nil
	}
	if hit, ok := c.get(s); ok {
		*v = hit
		return nil
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return err
	}
	c.put(s, *v)
	return nil
}

// jsonCache keeps decoded JSON by its text, and hands out deep copies so
// that no two records share a map or slice. It forgets everything when
// full: what it holds is a few distinct requires and context lists.
type jsonCache[T any] struct {
	mu    sync.Mutex
	m     map[string]T
	clone func(T) T
}

const jsonCacheMax = 4096

func (c *jsonCache[T]) get(s string) (T, bool) {
	c.mu.Lock()
	v, ok := c.m[s]
	c.mu.Unlock()
	if !ok {
		return v, false
	}
	return c.clone(v), true
}

func (c *jsonCache[T]) put(s string, v T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= jsonCacheMax {
		c.m = map[string]T{}
	}
	c.m[s] = c.clone(v)
}

var (
	requiresCache = &jsonCache[map[string][]string]{clone: cloneRequires}
	contextCache  = &jsonCache[[]string]{clone: slices.Clone[[]string]}
)

func pipelineState(ctx context.Context, q runner, id string) (*engine.PipelineState, error) {
	p, err := pipelineRecord(ctx, q, id)
	if err != nil {
		return nil, err
	}
	st := &engine.PipelineState{Pipeline: *p}
	var ws []workflowRow
	if err := sqlx.SelectContext(ctx, q, &ws, `SELECT `+workflowCols+` FROM workflows WHERE pipeline_id = ? ORDER BY seq`, id); err != nil {
		return nil, err
	}
	for _, w := range ws {
		st.Workflows = append(st.Workflows, w.record())
	}
	// Scanned by hand: the scheduler reads every job of the pipeline at
	// each step, and sqlx's reflection per row cost more than SQLite.
	rows, err := q.QueryContext(ctx, `SELECT `+jobCols+`
		FROM jobs j JOIN workflows w ON w.id = j.workflow_id WHERE j.pipeline_id = ? ORDER BY w.seq, j.seq`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	st.Jobs = []engine.JobRecord{}
	var j jobRow
	for rows.Next() {
		if err := rows.Scan(&j.ID, &j.PipelineID, &j.WorkflowID, &j.Name, &j.Job, &j.Type, &j.Requires, &j.Context, &j.Env,
			&j.Status, &j.Reason, &j.Attempt, &j.AttemptID, &j.ExitCode, &j.StartedAt, &j.FinishedAt); err != nil {
			return nil, err
		}
		rec, err := j.record()
		if err != nil {
			return nil, err
		}
		st.Jobs = append(st.Jobs, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return st, nil
}

// JobSpec reads what a job runs.
func (s *DB) JobSpec(ctx context.Context, jobID string) (*workflows.JobSpec, error) {
	spec, err := jobSpec(ctx, s.run(), jobID)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return spec, nil
}

func jobSpec(ctx context.Context, q sqlx.QueryerContext, jobID string) (*workflows.JobSpec, error) {
	var raw string
	if err := sqlx.GetContext(ctx, q, &raw, `SELECT spec_json FROM jobs WHERE id = ?`, jobID); err != nil {
		return nil, notFound("job", jobID, err)
	}
	var spec *workflows.JobSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return nil, fmt.Errorf("job %s spec: %w", jobID, err)
	}
	return spec, nil
}

type attemptRow struct {
	ID         string `db:"id"`
	JobID      string `db:"job_id"`
	PipelineID string `db:"pipeline_id"`
	Number     int    `db:"number"`
	BuildNum   int    `db:"build_num"`
	Executor   string `db:"executor"`
	Status     string `db:"status"`
	ExitCode   int    `db:"exit_code"`
	Reason     string `db:"reason"`
	StartedAt  int64  `db:"started_at"`
	FinishedAt int64  `db:"finished_at"`
	Outputs    string `db:"outputs_json"`
}

func (r attemptRow) record() engine.AttemptRecord {
	var out engine.Outputs
	json.Unmarshal([]byte(r.Outputs), &out) // written by the engine only; unreadable reads as none
	return engine.AttemptRecord{
		ID: r.ID, JobID: r.JobID, PipelineID: r.PipelineID, Number: r.Number, BuildNum: r.BuildNum, Executor: r.Executor,
		Status: r.Status, ExitCode: r.ExitCode, Reason: r.Reason, Outputs: out,
		Started: fromNanos(r.StartedAt), Finished: fromNanos(r.FinishedAt),
	}
}

const attemptCols = `a.id, a.job_id, j.pipeline_id, a.number, a.build_num, a.executor, a.status, a.exit_code, a.reason,
	a.started_at, a.finished_at, a.outputs_json`

// RunningAttempts lists the attempts marked running, oldest first.
func (s *DB) RunningAttempts(ctx context.Context) ([]engine.AttemptRecord, error) {
	var rows []attemptRow
	if err := sqlx.SelectContext(ctx, s.run(), &rows, `SELECT `+attemptCols+` FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE a.status = 'running' ORDER BY a.started_at`); err != nil {
		return nil, fmt.Errorf("store: running attempts: %w", err)
	}
	out := make([]engine.AttemptRecord, len(rows))
	for i, r := range rows {
		out[i] = r.record()
	}
	return out, nil
}

// Attempts lists a job's attempts with their steps, oldest first.
func (s *DB) Attempts(ctx context.Context, jobID string) ([]engine.AttemptRecord, error) {
	var rows []attemptRow
	if err := sqlx.SelectContext(ctx, s.run(), &rows, `SELECT `+attemptCols+` FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE a.job_id = ? ORDER BY a.number`, jobID); err != nil {
		return nil, fmt.Errorf("store: attempts: %w", err)
	}
	out := make([]engine.AttemptRecord, len(rows))
	for i, r := range rows {
		out[i] = r.record()
		var steps []struct {
			Name       string `db:"name"`
			Status     string `db:"status"`
			ExitCode   int    `db:"exit_code"`
			StartedAt  int64  `db:"started_at"`
			FinishedAt int64  `db:"finished_at"`
		}
		if err := sqlx.SelectContext(ctx, s.run(), &steps, `SELECT name, status, exit_code, started_at, finished_at
			FROM steps WHERE attempt_id = ? ORDER BY idx`, r.ID); err != nil {
			return nil, fmt.Errorf("store: steps: %w", err)
		}
		for _, st := range steps {
			out[i].Steps = append(out[i].Steps, engine.StepResult{
				Name: st.Name, Status: st.Status, ExitCode: st.ExitCode,
				Started: fromNanos(st.StartedAt), Finished: fromNanos(st.FinishedAt),
			})
		}
	}
	return out, nil
}

// Approval returns the latest approval of a job.
func (s *DB) Approval(ctx context.Context, jobID string) (*engine.ApprovalRecord, error) {
	a, err := approval(ctx, s.run(), jobID)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return a, nil
}

type approvalRow struct {
	ID         int64  `db:"id"`
	JobID      string `db:"job_id"`
	PipelineID string `db:"pipeline_id"`
	Envs       string `db:"envs_json"`
	Approvers  string `db:"approvers_json"`
	AllowSelf  bool   `db:"allow_self"`
	Author     string `db:"author"`
	Status     string `db:"status"`
	DecidedBy  string `db:"decided_by"`
	Reason     string `db:"reason"`
	CreatedAt  int64  `db:"created_at"`
	DecidedAt  int64  `db:"decided_at"`
	ExpiresAt  int64  `db:"expires_at"`
}

func approval(ctx context.Context, q sqlx.QueryerContext, jobID string) (*engine.ApprovalRecord, error) {
	var r approvalRow
	if err := sqlx.GetContext(ctx, q, &r, `SELECT id, job_id, pipeline_id, envs_json, approvers_json, allow_self, author,
		status, decided_by, reason, created_at, decided_at, expires_at
		FROM approvals WHERE job_id = ? ORDER BY id DESC LIMIT 1`, jobID); err != nil {
		return nil, notFound("approval of job", jobID, err)
	}
	a := &engine.ApprovalRecord{
		ID: r.ID, JobID: r.JobID, PipelineID: r.PipelineID, AllowSelf: r.AllowSelf, Author: r.Author,
		Status: r.Status, DecidedBy: r.DecidedBy, Reason: r.Reason,
		Created: fromNanos(r.CreatedAt), Decided: fromNanos(r.DecidedAt), Expires: fromNanos(r.ExpiresAt),
	}
	if err := json.Unmarshal([]byte(r.Envs), &a.Envs); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(r.Approvers), &a.Approvers); err != nil {
		return nil, fmt.Errorf("approval %d approvers: %w", r.ID, err)
	}
	return a, nil
}

// PendingApprovals lists the approvals still waiting for a decision.
func (s *DB) PendingApprovals(ctx context.Context) ([]string, error) {
	var ids []string
	if err := sqlx.SelectContext(ctx, s.run(), &ids, `SELECT job_id FROM approvals WHERE status = 'pending' ORDER BY expires_at`); err != nil {
		return nil, fmt.Errorf("store: pending approvals: %w", err)
	}
	return ids, nil
}

// Deployments lists an environment's deployments, newest first.
func (s *DB) Deployments(ctx context.Context, app, env string) ([]engine.Deployment, error) {
	var rows []struct {
		ID         string `db:"id"`
		App        string `db:"app"`
		Env        string `db:"env"`
		Commit     string `db:"commit_sha"`
		Version    string `db:"version"`
		PipelineID string `db:"pipeline_id"`
		JobID      string `db:"job_id"`
		AttemptID  string `db:"attempt_id"`
		StartedBy  string `db:"started_by"`
		ApprovedBy string `db:"approved_by"`
		Outcome    string `db:"outcome"`
		CreatedAt  int64  `db:"created_at"`
	}
	if err := sqlx.SelectContext(ctx, s.run(), &rows, `SELECT id, app, env, commit_sha, version, pipeline_id, job_id, attempt_id,
		started_by, approved_by, outcome, created_at FROM deployments WHERE app = ? AND env = ?
		ORDER BY created_at DESC, rowid DESC`, app, env); err != nil {
		return nil, fmt.Errorf("store: deployments: %w", err)
	}
	out := make([]engine.Deployment, len(rows))
	for i, r := range rows {
		out[i] = engine.Deployment{
			ID: r.ID, App: r.App, Env: r.Env, Commit: r.Commit, Version: r.Version, PipelineID: r.PipelineID,
			JobID: r.JobID, AttemptID: r.AttemptID, StartedBy: r.StartedBy, ApprovedBy: r.ApprovedBy,
			Outcome: r.Outcome, Created: fromNanos(r.CreatedAt),
		}
	}
	return out, nil
}
