package executors

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// RunNative carries out a built-in orb's step through the runner the
// engine gave the attempt, with the step's environment and the job's
// files. Both executors call it where the step stands among the job's
// steps; its error fails the step with a message that names it.
func RunNative(ctx context.Context, run *engine.JobRun, s *workflows.NativeStep, env map[string]string, files engine.Files, log io.Writer) error {
	if run.Native == nil {
		return fmt.Errorf("%s %s: nothing carries out built-in orb steps for this job", s.Orb, s.Command)
	}
	if _, err := run.Native.RunNative(ctx, &engine.NativeRun{Job: run, Step: s, Env: env, Files: files, Log: log}); err != nil {
		return fmt.Errorf("%s %s: %w", s.Orb, s.Command, err)
	}
	return nil
}

// HostFiles are a job's files on this host, under its working directory.
type HostFiles struct {
	// Resolve turns a path of the job's config into one on this host.
	Resolve func(p string) string
}

// Tar streams the file or folder at p as a tar archive, its entries
// named relative to p's parent folder.
func (f HostFiles) Tar(ctx context.Context, p string) (io.ReadCloser, error) {
	host := f.Resolve(p)
	pr, pw := io.Pipe()
	go func() {
		parent := filepath.Dir(host)
		pw.CloseWithError(WriteTar(pw, []string{host}, func(h string) (string, error) { return filepath.Rel(parent, h) }))
	}()
	return pr, nil
}
