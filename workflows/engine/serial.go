package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/slipway-ci/slipway/workflows"
)

// Serial groups (a workflow job's `serial-group`): the jobs of one group
// run one at a time, across the pipelines of an app, as CircleCI runs
// them across an organization. A group is an environment lock and queue
// of its own, named serialKey(group) in the app's namespace, so that the
// store keeps it as it keeps deploys':
//
//  1. A job of a group that is ready joins the group's queue, in arrival
//     order, and waits until the group is free and the job is first.
//  2. A job of an older pipeline that would run while a job of a newer
//     one waits for the group, or holds it, is skipped (not_run):
//     CircleCI's rule, so that older code never follows newer.
//  3. The job takes the group's lock as it starts, and gives it up when
//     it ends, whatever its outcome (the lock of a job that ended is free
//     to the next, however it ended: a cancel or a restart too).
//  4. A job that waits more than five hours is canceled.
//
// A job of a group that also deploys to an environment takes the group
// first, then queues for the environment.

// serialWait is how long a job may wait for its group (CircleCI's five
// hours, which it does not let anyone change).
const serialWait = 5 * time.Hour

// serialKey is the name of a group's lock among an app's environments;
// no environment's name has its colon.
func serialKey(group string) string { return "serial-group:" + group }

// serialLock is a group's lock held by an attempt of this process, to
// give up as soon as the attempt ends.
type serialLock struct{ app, key string }

// takeSerial gives j its group's lock when the group is free and j is
// first in its queue. Otherwise it says why j waits, or, in end, the
// status j ends with: not_run behind a newer pipeline, canceled after
// five hours.
func (a *advancer) takeSerial(ctx context.Context, j *JobRecord, group string) (ok bool, end, reason string, err error) {
	app, key := a.st.Pipeline.App, serialKey(group)
	l, err := a.tx.EnvLock(ctx, app, key)
	if err != nil {
		return false, "", "", err
	}
	if l != nil && l.JobID == j.ID {
		return true, "", "", nil // taken in an earlier step; j waits for its environment
	}
	var holder *JobRecord
	if l != nil {
		holder, err = a.tx.Job(ctx, l.JobID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return false, "", "", err
		}
		if holder == nil || holder.Status != StatusRunning {
			// Its job ended (or never started, after a crash): the group
			// is free.
			if err := a.tx.DeleteEnvLock(ctx, app, key); err != nil {
				return false, "", "", err
			}
			holder = nil
		}
	}
	q, err := a.tx.DeployQueue(ctx, app, key)
	if err != nil {
		return false, "", "", err
	}
	if !slices.ContainsFunc(q, func(d QueuedDeploy) bool { return d.JobID == j.ID }) {
		// A job is in one queue at a time: an environment's waits until
		// the group is taken.
		if err := a.tx.DequeueDeploy(ctx, j.ID); err != nil {
			return false, "", "", err
		}
		if err := a.tx.EnqueueDeploy(ctx, app, key, j.ID, j.PipelineID, a.now); err != nil {
			return false, "", "", err
		}
		q = append(q, QueuedDeploy{JobID: j.ID, PipelineID: j.PipelineID, QueuedAt: a.now})
	}
	// The jobs that still wait: those canceled or ended meanwhile leave.
	var waiting []QueuedDeploy
	var since time.Time
	for _, d := range q {
		if d.JobID == j.ID {
			waiting, since = append(waiting, d), d.QueuedAt
			continue
		}
		o, err := a.tx.Job(ctx, d.JobID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return false, "", "", err
		}
		if o == nil || o.Status != StatusQueued {
			if err := a.tx.DequeueDeploy(ctx, d.JobID); err != nil {
				return false, "", "", err
			}
			continue
		}
		waiting = append(waiting, d)
	}
	if a.now.Sub(since) > serialWait {
		return false, workflows.StatusCanceled, fmt.Sprintf("waited more than %v for serial group %s", serialWait, group), a.tx.DequeueDeploy(ctx, j.ID)
	}
	others := slices.DeleteFunc(slices.Clone(waiting), func(d QueuedDeploy) bool { return d.PipelineID == j.PipelineID })
	if holder != nil && holder.PipelineID != j.PipelineID {
		others = append(others, QueuedDeploy{JobID: holder.ID, PipelineID: holder.PipelineID})
	}
	for _, d := range others {
		p, err := a.tx.Pipeline(ctx, d.PipelineID)
		if err != nil {
			return false, "", "", err
		}
		if p.Number > a.st.Pipeline.Number {
			return false, workflows.StatusNotRun, fmt.Sprintf("skipped: pipeline %d, newer, is in serial group %s", p.Number, group), a.tx.DequeueDeploy(ctx, j.ID)
		}
	}
	if holder != nil {
		return false, "", fmt.Sprintf("waiting for serial group %s, which %s holds", group, holder.Name), nil
	}
	if pos := slices.IndexFunc(waiting, func(d QueuedDeploy) bool { return d.JobID == j.ID }); pos > 0 {
		return false, "", fmt.Sprintf("queued behind %d earlier jobs of serial group %s", pos, group), nil
	}
	if err := a.tx.SetEnvLock(ctx, &EnvLock{App: app, Env: key, Holder: j.ID, Reason: "serial group " + group, JobID: j.ID, Since: a.now}); err != nil {
		return false, "", "", err
	}
	if err := a.tx.DequeueDeploy(ctx, j.ID); err != nil {
		return false, "", "", err
	}
	if j.Env != "" {
		// Now the environment's queue, behind those already in it.
		if err := a.tx.EnqueueDeploy(ctx, app, j.Env, j.ID, j.PipelineID, a.now); err != nil {
			return false, "", "", err
		}
	}
	return true, "", "", nil
}

// holdSerial remembers that an attempt starting now holds its group.
func (e *Engine) holdSerial(attemptID, app, group string) {
	if e.serialHeld == nil {
		e.serialHeld = map[string]serialLock{}
	}
	e.serialHeld[attemptID] = serialLock{app, serialKey(group)}
}

// releaseSerial gives up the group an ended attempt held, in the
// transaction that records its end. Attempts of an earlier process are
// not remembered: their groups are free to the next job anyway (see
// takeSerial).
func (e *Engine) releaseSerial(ctx context.Context, tx StoreTx, a *AttemptRecord) error {
	s, ok := e.serialHeld[a.ID]
	if !ok {
		return nil
	}
	delete(e.serialHeld, a.ID)
	l, err := tx.EnvLock(ctx, s.app, s.key)
	if err != nil || l == nil || l.JobID != a.JobID {
		return err
	}
	return tx.DeleteEnvLock(ctx, s.app, s.key)
}
