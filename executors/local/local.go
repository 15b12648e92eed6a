// Package local runs a job's steps on the host, in a folder of its own,
// for `slipway run` and for `machine` jobs where the operator allows it.
//
// Each attempt gets a fresh folder under Options.Dir, its home:
//
//	<Dir>/<attempt ID>/          HOME, and what `~` means in working_directory and paths
//	<Dir>/<attempt ID>/project/  the default working_directory (~/project)
//	<Dir>/.steps/<pid>-<n>       the command of a running step, passed to its shell as a file
//	<Dir>/.trash/<pid>-<n>       a finished attempt's folder, being deleted (see trash)
//
// HOME points at the attempt's folder so that `cd ~/project` in a command
// and `working_directory: ~/project` agree, and so that jobs do not share
// or change the operator's own dotfiles. Step files are reused from step
// to step (see scripts), not made and removed with each attempt. An
// absolute working_directory or path is a host path, shared with
// everything else on the host: the local executor isolates jobs by
// folder, not by namespace.
//
// Jobs see only the variables CircleCI jobs see (the engine's CIRCLE_*
// and context variables, the job's and step's `environment`) plus PATH,
// HOME and the locale from the host, CIRCLE_WORKING_DIRECTORY, and
// SLIPWAY_ATTEMPT (how Cleanup recognises the attempt's processes) —
// never the rest of slipway's own environment, which holds its Slack,
// GitHub and AWS credentials.
//
// Background steps are not watched for silence: they are usually servers
// that print nothing once up, and the job's end stops them.
//
// The job log gets each step's output line by line as it is printed,
// stdout and stderr together, after a "==> <step name>" line; a step
// that fails without an exit code to say why gets a "==> <reason>" line.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/slipway-ci/slipway/executors"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

var _ engine.Executor = (*Executor)(nil)

// Options configures an Executor.
type Options struct {
	// Dir holds one folder per running attempt. Required.
	Dir    string
	Logger *slog.Logger // slog.Default() when nil
	// NoOutputTimeout applies to run steps that set none;
	// executors.DefaultNoOutputTimeout when zero.
	NoOutputTimeout time.Duration
	// Size limits; the executors package's defaults when zero.
	CacheMaxBytes     int64
	WorkspaceMaxBytes int64
	OutputMaxBytes    int64
	// Now is the clock for cache and workspace ordering; time.Now when nil.
	Now func() time.Time
	// RemoteDocker lets setup_remote_docker succeed: a job's commands run
	// on this host already and reach its Docker engine as the user
	// running slipway may. Off, the step fails: the config expects an
	// engine the operator did not offer.
	RemoteDocker bool
}

// Executor runs jobs on the host. It is safe for concurrent use: each
// attempt has its own folder and processes.
type Executor struct {
	opts    Options
	logger  *slog.Logger
	shell   string // CircleCI's default shell on this host
	scripts *scripts
	trash   *trash
}

// New returns an Executor keeping attempt folders under opts.Dir.
func New(opts Options) (*Executor, error) {
	if opts.Dir == "" {
		return nil, errors.New("local: no folder for attempts")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	opts.Dir = dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	if opts.NoOutputTimeout <= 0 {
		opts.NoOutputTimeout = executors.DefaultNoOutputTimeout
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	f, err := folderIn(dir)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	_, err = os.Stat("/bin/bash")
	return &Executor{
		opts:    opts,
		logger:  logger.With("executor", "local"),
		shell:   executors.DefaultShell(err == nil),
		scripts: f.scripts,
		trash:   f.trash,
	}, nil
}

// attemptEnv marks every process of an attempt, so that Cleanup after a
// restart can tell the attempt's process groups from unrelated ones that
// reused their numbers.
const attemptEnv = "SLIPWAY_ATTEMPT"

// Run runs the attempt's steps in order. See engine.Executor.
func (e *Executor) Run(ctx context.Context, job *engine.JobRun, log io.Writer) (engine.JobResult, error) {
	// Attempt IDs are folder names here.
	if err := executors.CheckAttemptID(job.ID); err != nil {
		return engine.JobResult{}, fmt.Errorf("local: %w", err)
	}
	if job.Spec == nil {
		return engine.JobResult{}, fmt.Errorf("local: job %q has no spec", job.JobName)
	}
	j, err := e.newJob(job, log)
	if err != nil {
		return engine.JobResult{}, err
	}
	defer func() {
		// Processes and folder go whatever happened, cancel included.
		j.stopProcesses()
		if err := e.trash.discard(j.home); err != nil {
			j.logger.Warn("removing the attempt folder", "err", err)
		}
	}()
	return j.runSteps(ctx), nil
}

// Cleanup kills what is left of an attempt's processes and removes its
// folder. It is safe to call repeatedly, concurrently with other
// attempts' Run, and for attempts it never saw.
//
// The processes are found by the attempt's marker in their environment
// (see killAttempt) rather than from a record the attempt kept: a file
// per attempt written at every step cost more on a busy disk than the
// scan costs the rare Cleanup.
func (e *Executor) Cleanup(ctx context.Context, attemptID string) error {
	if err := executors.CheckAttemptID(attemptID); err != nil {
		return fmt.Errorf("local: cleanup: %w", err)
	}
	dir := filepath.Join(e.opts.Dir, attemptID)
	killAttempt(attemptID, nil)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("local: cleanup %s: %w", attemptID, err)
	}
	return nil
}

// job is one attempt being run.
type job struct {
	e      *Executor
	run    *engine.JobRun
	log    io.Writer
	logger *slog.Logger

	home, workdir string            // home is the attempt's folder
	base          map[string]string // what the executor provides under the job's env
	sincePID      int               // lastPID before the job's first process

	mu         sync.Mutex
	background []*process // background steps, stopped at the job's end
}

func (e *Executor) newJob(run *engine.JobRun, log io.Writer) (*job, error) {
	dir := filepath.Join(e.opts.Dir, run.ID)
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrExist) {
		// A folder left by an earlier Run with this ID (the engine
		// promises none, but a crash can leave one) must not leak into
		// a fresh job.
		if err := e.Cleanup(context.Background(), run.ID); err != nil {
			return nil, err
		}
		err = os.Mkdir(dir, 0o755)
	}
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	j := &job{
		e:        e,
		run:      run,
		log:      executors.NewSyncWriter(log),
		logger:   e.logger.With("attempt", run.ID, "job", run.JobName),
		home:     dir,
		sincePID: lastPID(),
	}
	wd := run.Spec.WorkingDirectory
	if wd == "" {
		wd = "~/project"
	}
	j.workdir = j.resolve(j.home, wd)
	// The working directory exists from the start, as on CircleCI.
	if err := os.MkdirAll(j.workdir, 0o755); err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	j.base = map[string]string{
		"HOME":                     j.home,
		"PATH":                     "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"CIRCLE_WORKING_DIRECTORY": j.workdir,
	}
	for _, k := range []string{"PATH", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME"} {
		if v, ok := os.LookupEnv(k); ok {
			j.base[k] = v
		}
	}
	return j, nil
}

// resolve turns a path of the config into a host path: `~` is the job's
// home, a relative path is relative to dir.
func (j *job) resolve(dir, p string) string {
	switch {
	case p == "~":
		return j.home
	case strings.HasPrefix(p, "~/"):
		return filepath.Join(j.home, p[2:])
	case filepath.IsAbs(p):
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

// runSteps runs every step and says how the job ended.
func (j *job) runSteps(ctx context.Context) engine.JobResult {
	res := engine.JobResult{Status: workflows.StatusSuccess}
	failed, canceled := false, false
	for i, step := range j.run.Spec.Steps {
		sr := engine.StepResult{Name: executors.StepName(step), Status: workflows.StatusNotRun}
		if canceled || ctx.Err() != nil || !executors.ShouldRun(executors.StepWhen(step), failed) {
			// After a cancel nothing more runs, `when: always` included:
			// whoever canceled wants the job stopped now.
			canceled = canceled || ctx.Err() != nil
			res.Steps = append(res.Steps, sr)
			continue
		}
		fmt.Fprintf(j.log, "==> %s\n", sr.Name)
		sr.Started = time.Now()
		out := j.step(ctx, i, step)
		sr.Finished = time.Now()
		sr.Status, sr.ExitCode = out.status, out.exitCode
		if out.reason != "" {
			fmt.Fprintf(j.log, "==> %s\n", out.reason)
		}
		res.Steps = append(res.Steps, sr)
		switch out.status {
		case workflows.StatusCanceled:
			canceled = true
		case workflows.StatusFailed:
			if !failed {
				res.ExitCode, res.Reason = out.exitCode, out.reason
			}
			failed = true
		}
	}
	switch {
	case canceled:
		res.Status = workflows.StatusCanceled
	case failed:
		res.Status = workflows.StatusFailed
	}
	return res
}

// outcome is how one step ended.
type outcome struct {
	status   string
	exitCode int
	reason   string // why, when the exit code does not say
}

func fail(format string, args ...any) outcome {
	return outcome{status: workflows.StatusFailed, exitCode: -1, reason: fmt.Sprintf(format, args...)}
}

var success = outcome{status: workflows.StatusSuccess}

func (j *job) step(ctx context.Context, i int, s workflows.Step) outcome {
	switch {
	case s.Run != nil:
		return j.runStep(ctx, i, s.Run)
	case s.Checkout != nil:
		return j.checkout(ctx, s.Checkout)
	case s.SaveCache != nil:
		return j.saveCache(s.SaveCache)
	case s.RestoreCache != nil:
		return j.restoreCache(s.RestoreCache)
	case s.PersistToWorkspace != nil:
		return j.persist(s.PersistToWorkspace)
	case s.AttachWorkspace != nil:
		return j.attach(s.AttachWorkspace)
	case s.StoreArtifacts != nil:
		return j.storeArtifacts(s.StoreArtifacts)
	case s.StoreTestResults != nil:
		return j.storeTestResults(s.StoreTestResults)
	case s.SetupRemoteDocker != nil:
		if !j.e.opts.RemoteDocker {
			return fail("setup_remote_docker: this executor gives jobs no Docker engine (the local executor's RemoteDocker option is off)")
		}
		fmt.Fprintln(j.log, "Jobs of the local executor use this host's Docker engine")
		return success
	case s.AddSSHKeys != nil:
		return fail("add_ssh_keys: the local executor has no SSH keys configured to install")
	case s.Native != nil:
		files := executors.HostFiles{Resolve: func(p string) string { return j.resolve(j.workdir, p) }}
		if err := executors.RunNative(ctx, j.run, s.Native, executors.StepEnv(j.base, j.run, nil), files, j.log); err != nil {
			return fail("%v", err)
		}
		return success
	}
	return fail("step %d: empty step", i+1)
}
