package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/slipway-ci/slipway/executors"
	"github.com/slipway-ci/slipway/workflows"
)

// scriptDir holds the run steps' commands in the primary container: a
// shell reads its command from a file, as the local executor's does.
const scriptDir = "/tmp/.slipway"

// prepare learns the primary user's home and whether bash exists, creates
// the working directory, and copies the run steps' scripts in.
func (j *jobRun) prepare(ctx context.Context) error {
	wd := j.spec.WorkingDirectory
	if wd == "" {
		wd = "~/project"
	}
	const probe = `case $1 in "~") d=$HOME ;; "~/"*) d=$HOME/${1#"~/"} ;; /*) d=$1 ;; *) d=/$1 ;; esac
mkdir -p "$d" && printf '%s\n%s\n' "$HOME" "$d" && if [ -x /bin/bash ]; then echo bash; else echo sh; fi
echo "$(id -u 2>/dev/null):$(id -g 2>/dev/null)"`
	out, err := j.output(ctx, j.user, "/bin/sh", "-c", probe, "sh", wd)
	if err != nil {
		return fmt.Errorf("prepare primary container: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		return fmt.Errorf("prepare primary container: unexpected output %q", out)
	}
	j.home, j.workDir, j.hasBash = lines[0], lines[1], lines[2] == "bash"
	uid, gid, _ := strings.Cut(lines[3], ":")
	j.uid, _ = strconv.Atoi(uid)
	j.gid, _ = strconv.Atoi(gid)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	hdr := &tar.Header{Typeflag: tar.TypeDir, Name: scriptDir[1:] + "/", Mode: 0o755, ModTime: now}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	for i, s := range j.spec.Steps {
		if s.Run == nil {
			continue
		}
		body := []byte(s.Run.Command + "\n")
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: scriptPath(i)[1:], Mode: 0o644, Size: int64(len(body)), ModTime: now}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := j.e.client.CopyToContainer(ctx, j.primary, "/", &buf, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("copy step scripts: %w", err)
	}
	return nil
}

func scriptPath(step int) string { return scriptDir + "/step-" + strconv.Itoa(step) + ".sh" }

// steps runs the job's steps in order, CircleCI's `when` deciding which
// run after a failure, and none after cancellation.
func (j *jobRun) steps(ctx context.Context) workflows.JobResult {
	res := workflows.JobResult{Status: workflows.StatusSuccess}
	failed, canceled := false, false
	for i, s := range j.spec.Steps {
		r := workflows.StepResult{Name: executors.StepName(s), Status: workflows.StatusNotRun}
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
	switch {
	case s.Run != nil:
		return j.runStep(ctx, i, s.Run)
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
		return failf("%s %s: native steps are carried out by the engine, not by the docker executor", s.Native.Orb, s.Native.Command)
	}
	return failf("empty step")
}

// runStep runs a `run` step in the primary container.
func (j *jobRun) runStep(ctx context.Context, i int, run *workflows.RunStep) error {
	dir, err := j.stepDir(ctx, run.WorkingDirectory)
	if err != nil {
		return err
	}
	shell := executors.StepShell(j.spec, run, executors.DefaultShell(j.hasBash))
	s := execSpec{
		cmd:  executors.ShellArgv(shell, scriptPath(i)),
		env:  executors.EnvList(j.env(run.Environment)),
		user: j.user,
		dir:  dir,
		out:  j.log,
	}
	if run.Background {
		x, err := j.startExec(ctx, s)
		if err != nil {
			return err
		}
		j.bg.Add(1)
		go func() {
			// Ends with the command, or when teardown removes the
			// container.
			defer j.bg.Done()
			<-x.done
		}()
		return nil
	}
	s.silence = run.NoOutputTimeout
	if s.silence <= 0 {
		s.silence = executors.DefaultNoOutputTimeout
	}
	code, err := j.run(ctx, s)
	if err != nil {
		return err
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// env is a step's environment in CircleCI's order of precedence: what
// the executor sets, the engine's variables, then the primary image's
// `environment`, the job's, and the step's. (executors.StepEnv has no
// place for the image's layer.) HOME and PATH come from the container.
func (j *jobRun) env(step map[string]string) map[string]string {
	base := map[string]string{"CIRCLE_WORKING_DIRECTORY": j.workDir}
	return executors.MergeEnv(base, j.job.Env, j.spec.Docker[0].Environment, j.spec.Environment, step)
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

// stepDir resolves a step's working_directory and creates it.
func (j *jobRun) stepDir(ctx context.Context, p string) (string, error) {
	dir := j.path(p)
	if dir == j.workDir {
		return dir, nil
	}
	return dir, j.mkdir(ctx, dir)
}

func (j *jobRun) mkdir(ctx context.Context, dir string) error {
	if _, err := j.output(ctx, j.user, "mkdir", "-p", dir); err != nil {
		return failf("create %s: %v", dir, err)
	}
	return nil
}

func envList(env map[string]string) []string { return executors.EnvList(env) }
