package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/executors"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// stepScript starts a run step in the primary container without a round
// trip to the engine beforehand: it resolves the job's working_directory
// ($1, `~` being the user's home) and the step's ($2, relative to the
// job's), creating them as CircleCI does, writes the command from
// SLIPWAY_SCRIPT to the file $3 (a shell reads its command from a file,
// as in the local executor, so that `shell: python3` works too), and
// execs the shell that follows, or CircleCI's default when none does.
//
// Its stderr is made its stdout first, for the step and all it starts:
// one pipe, as in the local executor, so that the job log gets a line
// printed half on each whole and in the order it was written. Apart, the
// engine delivers them as separate streams, not always in order, and a
// secret printed across both reached the masking writer in two pieces
// it could not recognise.
const stepScript = `exec 2>&1
case $1 in "~") d=$HOME ;; "~/"*) d=$HOME/${1#"~/"} ;; /*) d=$1 ;; *) d=/$1 ;; esac
export CIRCLE_WORKING_DIRECTORY="${CIRCLE_WORKING_DIRECTORY:-$d}"
case $2 in "") ;; "~") d=$HOME ;; "~/"*) d=$HOME/${2#"~/"} ;; /*) d=$2 ;; *) d=$d/$2 ;; esac
mkdir -p "$d" && cd "$d" || exit 1
f=$3
mkdir -p "${f%/*}" && printf '%s\n' "$SLIPWAY_SCRIPT" > "$f" || exit 1
unset SLIPWAY_SCRIPT
shift 3
if [ $# -eq 0 ]; then
  if [ -x /bin/bash ]; then set -- /bin/bash -eo pipefail; else set -- /bin/sh -eo pipefail; fi
fi
exec "$@" "$f"`

// scriptVar carries a run step's command into stepScript.
const scriptVar = "SLIPWAY_SCRIPT"

// scriptPath is where run step i's command is written in the primary.
func scriptPath(i int) string { return "/tmp/.slipway/step-" + strconv.Itoa(i+1) }

// probe learns the user's home, the working directory (creating it), and
// the user's IDs, which steps that move files need. Run steps do without.
func (j *jobRun) probe(ctx context.Context) error {
	if j.workDir != "" {
		return nil
	}
	const script = `case $1 in "~") d=$HOME ;; "~/"*) d=$HOME/${1#"~/"} ;; /*) d=$1 ;; *) d=/$1 ;; esac
mkdir -p "$d" && printf '%s\n%s\n' "$HOME" "$d" && echo "$(id -u 2>/dev/null):$(id -g 2>/dev/null)"`
	out, err := j.output(ctx, j.user, "/bin/sh", "-c", script, "sh", j.jobDir())
	if err != nil {
		return fmt.Errorf("probe primary container: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		return fmt.Errorf("probe primary container: unexpected output %q", out)
	}
	uid, gid, _ := strings.Cut(lines[2], ":")
	j.uid, _ = strconv.Atoi(uid)
	j.gid, _ = strconv.Atoi(gid)
	j.home, j.workDir = lines[0], lines[1]
	return nil
}

// jobDir is the job's working_directory as the config says it.
func (j *jobRun) jobDir() string {
	if j.spec.WorkingDirectory == "" {
		return "~/project"
	}
	return j.spec.WorkingDirectory
}

// steps runs the job's steps in order, CircleCI's `when` deciding which
// run after a failure, and none after cancellation.
func (j *jobRun) steps(ctx context.Context) engine.JobResult {
	res := engine.JobResult{Status: workflows.StatusSuccess}
	failed, canceled := false, false
	for i, s := range j.spec.Steps {
		r := engine.StepResult{Name: executors.StepName(s), Status: workflows.StatusNotRun}
		if canceled || ctx.Err() != nil || !executors.ShouldRun(executors.StepWhen(s), failed) {
			// After a cancel nothing more runs, `when: always` included,
			// as in the local executor.
			canceled = canceled || ctx.Err() != nil
			res.Steps = append(res.Steps, r)
			continue
		}
		fmt.Fprintf(j.log, "==> %s\n", r.Name)
		r.Started = time.Now()
		err := j.step(ctx, i, s)
		r.Finished = time.Now()
		r.Status = workflows.StatusSuccess
		reason := ""
		var exit *exitError
		var fail *stepError
		switch {
		case err == nil:
		case errors.Is(err, errCanceled) || ctx.Err() != nil:
			r.Status, r.ExitCode, reason = workflows.StatusCanceled, -1, "canceled"
			canceled = true
		case errors.As(err, &exit):
			// The exit code says why; the command's output said the rest.
			r.Status, r.ExitCode = workflows.StatusFailed, exit.code
		case errors.As(err, &fail):
			r.Status, r.ExitCode, reason = workflows.StatusFailed, fail.code, fail.reason
		default:
			// The engine failed us mid-step; the job fails with the cause.
			r.Status, r.ExitCode, reason = workflows.StatusFailed, -1, fmt.Sprintf("docker: %v", err)
		}
		if reason != "" {
			fmt.Fprintf(j.log, "==> %s\n", reason)
		}
		if r.Status == workflows.StatusFailed && !failed {
			failed = true
			res.Status, res.ExitCode, res.Reason = workflows.StatusFailed, r.ExitCode, reason
		}
		res.Steps = append(res.Steps, r)
	}
	if canceled || ctx.Err() != nil {
		res.Status, res.Reason = workflows.StatusCanceled, "canceled"
	}
	return res
}

// step runs one step. A command's non-zero exit is an *exitError, any
// other failure of the step a *stepError.
func (j *jobRun) step(ctx context.Context, i int, s workflows.Step) error {
	if s.Run != nil {
		return j.runStep(ctx, i, s.Run)
	}
	if err := j.probe(ctx); err != nil {
		return err
	}
	switch {
	case s.Checkout != nil:
		return j.checkout(ctx, s.Checkout)
	case s.SaveCache != nil:
		return j.saveCache(ctx, s.SaveCache)
	case s.RestoreCache != nil:
		return j.restoreCache(ctx, s.RestoreCache)
	case s.PersistToWorkspace != nil:
		return j.persist(ctx, s.PersistToWorkspace)
	case s.AttachWorkspace != nil:
		return j.attach(ctx, s.AttachWorkspace)
	case s.StoreArtifacts != nil:
		return j.storeArtifacts(ctx, s.StoreArtifacts)
	case s.StoreTestResults != nil:
		return j.storeTestResults(ctx, s.StoreTestResults)
	case s.SetupRemoteDocker != nil:
		if !j.remote {
			return failf("setup_remote_docker: this server does not give jobs a Docker engine (the docker executor's RemoteDocker option is off)")
		}
		fmt.Fprintf(j.log, "The host's Docker engine is at /var/run/docker.sock\n")
		return nil
	case s.AddSSHKeys != nil:
		return failf("add_ssh_keys: this server has no SSH keys configured")
	case s.Native != nil:
		if err := executors.RunNative(ctx, j.job, s.Native, j.env(nil), containerFiles{j}, j.log); err != nil {
			return failf("%v", err)
		}
		return nil
	}
	return failf("empty step")
}

// runStep runs a `run` step in the primary container.
func (j *jobRun) runStep(ctx context.Context, i int, run *workflows.RunStep) error {
	// An empty shell lets stepScript pick CircleCI's default in the
	// image.
	shell := executors.StepShell(j.spec, run, "")
	cmd := []string{"/bin/sh", "-c", stepScript, "sh", j.jobDir(), run.WorkingDirectory, scriptPath(i)}
	env := j.env(run.Environment)
	env[scriptVar] = run.Command
	// Each step's output reaches the log a line at a time, as it comes;
	// stepScript sends stderr down stdout.
	lw := executors.NewLineWriter(j.log)
	x, err := j.startExec(ctx, execSpec{
		cmd:  append(cmd, strings.Fields(shell)...),
		env:  executors.EnvList(env),
		user: j.user,
		out:  lw,
	})
	if err != nil {
		lw.Close()
		return err
	}
	if run.Background {
		j.adopt(x, lw)
		return nil
	}
	silence := run.NoOutputTimeout
	if silence <= 0 {
		silence = executors.DefaultNoOutputTimeout
	}
	silent := make(chan struct{})
	lw.Watch(silence, func() { close(silent) })
	code, err := x.wait(ctx, silent)
	stopped := lw.Close()
	if x.leftovers {
		fmt.Fprintf(j.log, "Stopped the processes the step left holding its output\n")
	}
	switch {
	case stopped && err == nil:
		return &stepError{code: code, reason: fmt.Sprintf("no output for %v; the step was stopped", silence)}
	case err != nil:
		return err
	case code != 0:
		return &exitError{code: code}
	}
	return nil
}

// adopt lets x run on, its output going to the log through lw, until the
// job ends.
func (j *jobRun) adopt(x *execution, lw *executors.LineWriter) {
	j.background = append(j.background, x)
	j.bg.Add(1)
	go func() {
		// Ends with x's output: when its processes exit, or teardown
		// removes the container or closes the stream.
		defer j.bg.Done()
		<-x.done
		lw.Close()
	}()
}

// env is a step's environment (executors.StepEnv). HOME and PATH come
// from the container, and stepScript sets CIRCLE_WORKING_DIRECTORY.
func (j *jobRun) env(step map[string]string) map[string]string {
	return executors.StepEnv(nil, j.job, step)
}

// containerFiles are a job's files in its primary container.
type containerFiles struct{ j *jobRun }

// Tar streams the file or folder at p in the primary container as a tar
// archive, its entries named relative to p's parent folder, as the
// Engine API's archive endpoint does.
func (f containerFiles) Tar(ctx context.Context, p string) (io.ReadCloser, error) {
	rc, _, err := f.j.e.client.CopyFromContainer(ctx, f.j.primary, f.j.path(p))
	if err != nil {
		return nil, fmt.Errorf("copy %s out of the container: %w", p, err)
	}
	return rc, nil
}

// path resolves a path of the job's config in the primary: `~` is the
// user's home, a relative path is relative to the working directory.
func (j *jobRun) path(p string) string {
	switch {
	case p == "" || p == ".":
		return j.workDir
	case p == "~":
		return j.home
	case strings.HasPrefix(p, "~/"):
		return path.Join(j.home, p[2:])
	case path.IsAbs(p):
		return path.Clean(p)
	}
	return path.Join(j.workDir, p)
}

func (j *jobRun) mkdir(ctx context.Context, dir string) error {
	if _, err := j.output(ctx, j.user, "mkdir", "-p", dir); err != nil {
		return failf("create %s: %v", dir, err)
	}
	return nil
}
