package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jmoiron/sqlx"
	"github.com/slipway-ci/slipway/workflows/engine"
)

const releaseCols = `id, app, env, number, pipeline_id, commit_sha, version, started_by, approved_by, outcome, rollback,
	artifacts_json, created_at, finished_at`

type releaseRow struct {
	ID         string `db:"id"`
	App        string `db:"app"`
	Env        string `db:"env"`
	Number     int    `db:"number"`
	PipelineID string `db:"pipeline_id"`
	Commit     string `db:"commit_sha"`
	Version    string `db:"version"`
	StartedBy  string `db:"started_by"`
	ApprovedBy string `db:"approved_by"`
	Outcome    string `db:"outcome"`
	Rollback   bool   `db:"rollback"`
	Artifacts  string `db:"artifacts_json"`
	CreatedAt  int64  `db:"created_at"`
	FinishedAt int64  `db:"finished_at"`
}

func (r releaseRow) record() engine.Release {
	rec := engine.Release{ID: r.ID, App: r.App, Env: r.Env, Number: r.Number, PipelineID: r.PipelineID, Commit: r.Commit,
		Version: r.Version, StartedBy: r.StartedBy, ApprovedBy: r.ApprovedBy, Outcome: r.Outcome, Rollback: r.Rollback,
		Created: fromNanos(r.CreatedAt), Finished: fromNanos(r.FinishedAt)}
	// A release's artifacts are written by the engine only: unreadable
	// ones read as none rather than hiding the release.
	json.Unmarshal([]byte(r.Artifacts), &rec.Artifacts)
	return rec
}

// Releases lists an environment's releases, newest first.
func (s *DB) Releases(ctx context.Context, app, env string) ([]engine.Release, error) {
	var rows []releaseRow
	if err := sqlx.SelectContext(ctx, s.run(), &rows, `SELECT `+releaseCols+` FROM releases WHERE app = ? AND env = ?
		ORDER BY number DESC`, app, env); err != nil {
		return nil, fmt.Errorf("store: releases: %w", err)
	}
	out := make([]engine.Release, len(rows))
	for i, r := range rows {
		out[i] = r.record()
	}
	return out, nil
}
