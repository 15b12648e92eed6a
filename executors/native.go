package executors

import (
	"context"
	"fmt"
	"io"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// RunNative carries out a built-in orb's step through the runner the
// engine gave the attempt. Both executors call it where the step stands
// among the job's steps; its error fails the step with a message that
// names it.
func RunNative(ctx context.Context, run *engine.JobRun, s *workflows.NativeStep, log io.Writer) error {
	if run.Native == nil {
		return fmt.Errorf("%s %s: nothing carries out built-in orb steps for this job", s.Orb, s.Command)
	}
	if err := run.Native.RunNative(ctx, run, s, log); err != nil {
		return fmt.Errorf("%s %s: %w", s.Orb, s.Command, err)
	}
	return nil
}
