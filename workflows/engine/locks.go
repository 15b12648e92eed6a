package engine

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// takeLock gives j its environment's lock when the lock is free and j is
// first in the environment's queue; otherwise it says why j waits.
func (a *advancer) takeLock(ctx context.Context, j *JobRecord) (bool, string, error) {
	app := a.st.Pipeline.App
	l, err := a.tx.EnvLock(ctx, app, j.Env)
	if err != nil {
		return false, "", err
	}
	if l != nil {
		if l.Manual {
			return false, fmt.Sprintf("%s/%s is locked by %s since %s: %s", app, j.Env, l.Holder,
				l.Since.Format(time.RFC3339), l.Reason), nil
		}
		if l.JobID != j.ID {
			return false, fmt.Sprintf("waiting for the deploy to %s/%s in progress", app, j.Env), nil
		}
	}
	q, err := a.tx.DeployQueue(ctx, app, j.Env)
	if err != nil {
		return false, "", err
	}
	if pos := slices.IndexFunc(q, func(d QueuedDeploy) bool { return d.JobID == j.ID }); pos > 0 {
		return false, fmt.Sprintf("queued behind %d earlier deploys to %s/%s", pos, app, j.Env), nil
	}
	if err := a.tx.SetEnvLock(ctx, &EnvLock{App: app, Env: j.Env, Holder: j.ID, Reason: "deploy", JobID: j.ID, Since: a.now}); err != nil {
		return false, "", err
	}
	return true, "", a.tx.DequeueDeploy(ctx, j.ID)
}

// Lock takes an environment's lock by hand: deploys to it wait, saying
// who holds it and why, until Unlock. Who may: MayLock.
func (e *Engine) Lock(ctx context.Context, app, env string, by Actor, reason string) (Decision, error) {
	en, err := e.environment(app, env)
	if err != nil {
		return Decision{}, err
	}
	var d Decision
	err = e.update(ctx, func(tx StoreTx) error {
		d = Decision{}
		now := e.clock.Now()
		l, err := tx.EnvLock(ctx, app, env)
		if err != nil {
			return err
		}
		refusal := MayLock(by, en)
		switch {
		case by.ID != systemActor && refusal != nil:
			d = *refusal
		case l != nil && l.Manual:
			d = Decision{Code: RefusedLocked, Actor: l.Holder, At: l.Since, Reason: l.Reason}
		case l != nil:
			d.Code = RefusedDeploying
		default:
			if err := tx.SetEnvLock(ctx, &EnvLock{App: app, Env: env, Holder: by.ID, Reason: reason, Manual: true, Since: now}); err != nil {
				return err
			}
			d = Decision{Applied: true, Actor: by.ID, At: now, Reason: reason}
		}
		return tx.Audit(ctx, AuditEntry{At: now, Actor: by.ID, Action: "lock", Subject: app + "/" + env, Detail: d.String()})
	})
	if err != nil {
		return Decision{}, fmt.Errorf("engine: lock: %w", err)
	}
	return d, nil
}

// Unlock releases a manual lock; queued deploys then go in arrival order.
// The Decision says whose lock it was (Actor, At, Reason).
func (e *Engine) Unlock(ctx context.Context, app, env string, by Actor) (Decision, error) {
	en, err := e.environment(app, env)
	if err != nil {
		return Decision{}, err
	}
	var d Decision
	err = e.update(ctx, func(tx StoreTx) error {
		d = Decision{}
		now := e.clock.Now()
		l, err := tx.EnvLock(ctx, app, env)
		if err != nil {
			return err
		}
		refusal := MayLock(by, en)
		switch {
		case refusal != nil:
			d = *refusal
		case l == nil:
			d.Code = RefusedNotLocked
		case !l.Manual:
			d.Code = RefusedDeploying
		default:
			if err := tx.DeleteEnvLock(ctx, app, env); err != nil {
				return err
			}
			d = Decision{Applied: true, Actor: l.Holder, At: l.Since, Reason: l.Reason}
		}
		return tx.Audit(ctx, AuditEntry{At: now, Actor: by.ID, Action: "unlock", Subject: app + "/" + env, Detail: d.String()})
	})
	if err != nil {
		return Decision{}, fmt.Errorf("engine: unlock: %w", err)
	}
	if d.Applied {
		e.mu.Lock()
		for id := range e.waiting {
			e.dirty[id] = true
		}
		e.mu.Unlock()
		e.kick()
	}
	return d, nil
}

func (e *Engine) environment(app, env string) (*Environment, error) {
	a := e.apps[app]
	if a == nil || a.Environments[env] == nil {
		return nil, fmt.Errorf("engine: environment %s/%s: %w", app, env, ErrNotFound)
	}
	return a.Environments[env], nil
}
