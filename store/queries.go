package store

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// PipelineByNumber reads an app's pipeline by its number.
func (s *DB) PipelineByNumber(ctx context.Context, app string, number int) (*engine.PipelineRecord, error) {
	var id string
	if err := sqlx.GetContext(ctx, s.run(), &id, `SELECT id FROM pipelines WHERE app = ? AND number = ?`, app, number); err != nil {
		return nil, fmt.Errorf("store: %w", notFound("pipeline", fmt.Sprintf("%s #%d", app, number), err))
	}
	return s.Pipeline(ctx, id)
}

// PipelineFilter selects pipelines; zero fields select all.
type PipelineFilter struct {
	App    string
	Branch string
	Status string
	// Commit selects a commit's pipelines.
	Commit string
	// Active selects the unfinished ones.
	Active bool
	// Before selects those created before the pipeline with this ID
	// (paging, newest first).
	Before string
	Limit  int // default 50
}

// Pipelines lists pipelines, newest first.
func (s *DB) Pipelines(ctx context.Context, f PipelineFilter) ([]engine.PipelineRecord, error) {
	q := `SELECT id FROM pipelines WHERE 1 = 1`
	var args []any
	if f.App != "" {
		q += ` AND app = ?`
		args = append(args, f.App)
	}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, f.Status)
	}
	if f.Active {
		q += ` AND finished_at = 0`
	}
	if f.Branch != "" {
		q += ` AND json_extract(trigger_json, '$.Branch') = ?`
		args = append(args, f.Branch)
	}
	if f.Commit != "" {
		q += ` AND json_extract(trigger_json, '$.Revision') = ?`
		args = append(args, f.Commit)
	}
	if f.Before != "" {
		q += ` AND rowid < (SELECT rowid FROM pipelines WHERE id = ?)`
		args = append(args, f.Before)
	}
	if f.Limit <= 0 {
		f.Limit = 50
	}
	q += ` ORDER BY rowid DESC LIMIT ?`
	args = append(args, f.Limit)
	var ids []string
	if err := sqlx.SelectContext(ctx, s.run(), &ids, q, args...); err != nil {
		return nil, fmt.Errorf("store: pipelines: %w", err)
	}
	out := make([]engine.PipelineRecord, 0, len(ids))
	for _, id := range ids {
		p, err := s.Pipeline(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, *p)
	}
	return out, nil
}

// EnvLocks lists an app's environment locks (all apps' for "").
func (s *DB) EnvLocks(ctx context.Context, app string) ([]engine.EnvLock, error) {
	var rows []struct {
		App    string `db:"app"`
		Env    string `db:"env"`
		Holder string `db:"holder"`
		Reason string `db:"reason"`
		Manual bool   `db:"manual"`
		JobID  string `db:"job_id"`
		Since  int64  `db:"since"`
	}
	if err := sqlx.SelectContext(ctx, s.run(), &rows, `SELECT app, env, holder, reason, manual, job_id, since FROM env_locks
		WHERE ? = '' OR app = ? ORDER BY app, env`, app, app); err != nil {
		return nil, fmt.Errorf("store: locks: %w", err)
	}
	out := make([]engine.EnvLock, len(rows))
	for i, r := range rows {
		out[i] = engine.EnvLock{App: r.App, Env: r.Env, Holder: r.Holder, Reason: r.Reason, Manual: r.Manual, JobID: r.JobID, Since: fromNanos(r.Since)}
	}
	return out, nil
}
