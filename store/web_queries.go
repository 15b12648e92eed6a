package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// Read queries for the dashboard and /metrics (package web). Each is one
// statement over an index, or over rows that stay few (pending events,
// pending approvals, active pipelines), so that a page or a scrape costs
// the same however old the store is.

// Ping checks that the database answers a query.
func (s *DB) Ping(ctx context.Context) error {
	var one int
	if err := sqlx.GetContext(ctx, s.run(), &one, `SELECT 1`); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Attempt reads one attempt, without its steps.
func (s *DB) Attempt(ctx context.Context, attemptID string) (*engine.AttemptRecord, error) {
	var r attemptRow
	if err := sqlx.GetContext(ctx, s.run(), &r, `SELECT `+attemptCols+` FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE a.id = ?`, attemptID); err != nil {
		return nil, fmt.Errorf("store: %w", notFound("attempt", attemptID, err))
	}
	a := r.record()
	return &a, nil
}

// PipelineApprovals lists the latest approval of each job of a pipeline
// that has one (approval jobs, and deploys held at a protected
// environment's gate).
func (s *DB) PipelineApprovals(ctx context.Context, pipelineID string) ([]engine.ApprovalRecord, error) {
	var rows []approvalRow
	if err := sqlx.SelectContext(ctx, s.run(), &rows, `SELECT id, job_id, pipeline_id, envs_json, approvers_json, allow_self, author,
		status, decided_by, reason, created_at, decided_at, expires_at
		FROM approvals WHERE id IN (SELECT max(id) FROM approvals WHERE pipeline_id = ? GROUP BY job_id) ORDER BY id`, pipelineID); err != nil {
		return nil, fmt.Errorf("store: approvals of %s: %w", pipelineID, err)
	}
	out := make([]engine.ApprovalRecord, len(rows))
	for i, r := range rows {
		out[i] = engine.ApprovalRecord{
			ID: r.ID, JobID: r.JobID, PipelineID: r.PipelineID, AllowSelf: r.AllowSelf, Author: r.Author,
			Status: r.Status, DecidedBy: r.DecidedBy, Reason: r.Reason,
			Created: fromNanos(r.CreatedAt), Decided: fromNanos(r.DecidedAt), Expires: fromNanos(r.ExpiresAt),
		}
		if err := json.Unmarshal([]byte(r.Envs), &out[i].Envs); err != nil {
			return nil, fmt.Errorf("store: approval %d envs: %w", r.ID, err)
		}
		if err := json.Unmarshal([]byte(r.Approvers), &out[i].Approvers); err != nil {
			return nil, fmt.Errorf("store: approval %d approvers: %w", r.ID, err)
		}
	}
	return out, nil
}

// JobCount is how many jobs of an app's unfinished pipelines are in a status.
type JobCount struct {
	App    string `db:"app"`
	Status string `db:"status"`
	N      int    `db:"n"`
}

// ActiveJobCounts counts the jobs of unfinished pipelines by app and
// status: the queue's depth (queued), what runs, what waits.
func (s *DB) ActiveJobCounts(ctx context.Context) ([]JobCount, error) {
	var out []JobCount
	if err := sqlx.SelectContext(ctx, s.run(), &out, `SELECT p.app AS app, j.status AS status, count(*) AS n
		FROM pipelines p JOIN jobs j ON j.pipeline_id = p.id
		WHERE p.finished_at = 0 GROUP BY p.app, j.status ORDER BY p.app, j.status`); err != nil {
		return nil, fmt.Errorf("store: active jobs: %w", err)
	}
	return out, nil
}

// PendingApprovalStat is how many approvals of an app wait, and since when.
type PendingApprovalStat struct {
	App    string
	N      int
	Oldest time.Time
}

// PendingApprovalStats counts the approvals waiting for a decision, by app.
func (s *DB) PendingApprovalStats(ctx context.Context) ([]PendingApprovalStat, error) {
	var rows []struct {
		App    string `db:"app"`
		N      int    `db:"n"`
		Oldest int64  `db:"oldest"`
	}
	if err := sqlx.SelectContext(ctx, s.run(), &rows, `SELECT p.app AS app, count(*) AS n, min(a.created_at) AS oldest
		FROM approvals a JOIN pipelines p ON p.id = a.pipeline_id
		WHERE a.status = 'pending' GROUP BY p.app ORDER BY p.app`); err != nil {
		return nil, fmt.Errorf("store: pending approvals: %w", err)
	}
	out := make([]PendingApprovalStat, len(rows))
	for i, r := range rows {
		out[i] = PendingApprovalStat{App: r.App, N: r.N, Oldest: fromNanos(r.Oldest)}
	}
	return out, nil
}

// OutboxStat is a consumer's backlog in the outbox.
type OutboxStat struct {
	Consumer string
	Pending  int       // not delivered yet, parked ones aside
	Retrying int       // of those, failed at least once
	Parked   int       // set aside for good (see ParkEvent)
	Oldest   time.Time // the oldest pending event's creation; zero when none
}

// OutboxStats reports each consumer's backlog.
func (s *DB) OutboxStats(ctx context.Context) ([]OutboxStat, error) {
	var rows []struct {
		Consumer string `db:"consumer"`
		Pending  int    `db:"pending"`
		Retrying int    `db:"retrying"`
		Parked   int    `db:"parked"`
		Oldest   int64  `db:"oldest"`
	}
	if err := sqlx.SelectContext(ctx, s.run(), &rows, `SELECT op.consumer AS consumer,
		coalesce(sum(op.parked = 0), 0) AS pending,
		coalesce(sum(op.parked = 0 AND op.attempts > 0), 0) AS retrying,
		coalesce(sum(op.parked <> 0), 0) AS parked,
		coalesce(min(CASE WHEN op.parked = 0 THEN o.created_at END), 0) AS oldest
		FROM outbox_pending op JOIN outbox o ON o.seq = op.seq GROUP BY op.consumer ORDER BY op.consumer`); err != nil {
		return nil, fmt.Errorf("store: outbox stats: %w", err)
	}
	out := make([]OutboxStat, len(rows))
	for i, r := range rows {
		out[i] = OutboxStat{Consumer: r.Consumer, Pending: r.Pending, Retrying: r.Retrying, Parked: r.Parked, Oldest: fromNanos(r.Oldest)}
	}
	return out, nil
}

// InboxRow is one request of the inbox as /metrics counts it.
type InboxRow struct {
	Seq      int64  `db:"seq"` // the row's place: increasing with arrival
	Source   string `db:"source"`
	Handled  bool   `db:"handled"`
	Attempts int    `db:"attempts"`
	Result   string `db:"result"` // the handler's words; "" until handled
}

// InboxSince lists the inbox's requests from seq on, in arrival order, at
// most limit. /metrics reads from the oldest request not handled at its
// previous scrape, so that what it reads stays small however long the
// inbox keeps requests.
func (s *DB) InboxSince(ctx context.Context, seq int64, limit int) ([]InboxRow, error) {
	var out []InboxRow
	if err := sqlx.SelectContext(ctx, s.run(), &out, `SELECT rowid AS seq, source, handled_at <> 0 AS handled, attempts, result
		FROM inbox WHERE rowid >= ? ORDER BY rowid LIMIT ?`, seq, limit); err != nil {
		return nil, fmt.Errorf("store: inbox: %w", err)
	}
	return out, nil
}

// JobReadyAt says when a job's latest attempt could have started: the
// latest of its workflow's start, the ends of the jobs it requires, and
// the decision of an approval held on it. first is false for a rerun,
// whose start was asked at a time the store does not keep.
func (s *DB) JobReadyAt(ctx context.Context, jobID string) (ready time.Time, first bool, err error) {
	var r struct {
		Ready   int64 `db:"ready"`
		Attempt int   `db:"attempt"`
	}
	err = sqlx.GetContext(ctx, s.run(), &r, `SELECT max(w.created_at,
			coalesce((SELECT max(u.finished_at) FROM json_each(j.requires_json) AS req
				JOIN jobs u ON u.workflow_id = j.workflow_id AND u.name = req.key), 0),
			coalesce((SELECT max(a.decided_at) FROM approvals a WHERE a.job_id = j.id), 0)) AS ready,
			j.attempt AS attempt
		FROM jobs j JOIN workflows w ON w.id = j.workflow_id WHERE j.id = ?`, jobID)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: %w", notFound("job", jobID, err))
	}
	return fromNanos(r.Ready), r.Attempt <= 1, nil
}
