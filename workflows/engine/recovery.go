package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/slipway-ci/slipway/workflows"
)

// recover deals with what a dead process left behind: attempts marked
// running lost their executor work (it died with the process), so each is
// cleaned up and failed "interrupted by restart", never run again.
// Pending approvals stay pending unless they expired meanwhile; every
// unfinished pipeline is advanced.
func (e *Engine) recover(ctx context.Context) error {
	runs, err := e.store.RunningAttempts(ctx)
	if err != nil {
		return fmt.Errorf("engine: recover: %w", err)
	}
	for _, a := range runs {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		if err := e.exec.Cleanup(cctx, a.ID); err != nil {
			e.log.Warn("cleanup of interrupted attempt failed", "attempt", a.ID, "err", err)
		}
		cancel()
		a.Status, a.Reason, a.Finished = workflows.StatusFailed, "interrupted by restart", e.clock.Now()
		if err := e.finish(ctx, &a); err != nil {
			return fmt.Errorf("engine: recover: %w", err)
		}
		e.log.Info("attempt interrupted by restart", "attempt", a.ID, "job", a.JobID)
	}
	// Approvals whose time ran out while no engine was running.
	if err := e.ExpireApprovals(ctx); err != nil {
		return fmt.Errorf("engine: recover: %w", err)
	}
	ids, err := e.store.ActivePipelines(ctx)
	if err != nil {
		return fmt.Errorf("engine: recover: %w", err)
	}
	for _, id := range ids {
		e.markDirty(id)
	}
	return nil
}
