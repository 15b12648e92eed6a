package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// markerVar is set in every exec's environment to a value unique to the
// exec, so that killScript finds all of its processes, children and
// daemonised grandchildren included (only one that empties its own
// environment escapes): the engine has no call that kills an exec.
const markerVar = "SLIPWAY_EXEC_ID"

// killScript stops then kills every process whose environment holds the
// marker given as $1 (environ is NUL-separated, which busybox's grep does
// not read past, hence tr), over a few passes so that a process forked
// between the scan and the signals is caught by the next pass. It runs as
// the step's user: reading another user's /proc/PID/environ takes a
// capability containers lack.
const killScript = `m=$1
for pass in 1 2 3 4 5; do
  pids=
  for d in /proc/[0-9]*; do
    [ "${d#/proc/}" = "$$" ] && continue
    tr '\0' '\n' < "$d/environ" 2>/dev/null | grep -qxF "$m" && pids="$pids ${d#/proc/}"
  done
  [ -z "$pids" ] && exit 0
  kill -STOP $pids 2>/dev/null
  kill -KILL $pids 2>/dev/null
done`

// execSpec is one command to run in the primary container.
type execSpec struct {
	cmd  []string
	env  []string
	user string
	out  io.Writer // stdout and stderr
}

// execution is a started exec.
type execution struct {
	j      *jobRun
	id     string
	marker string
	user   string
	conn   interface{ Close() error }
	done   chan struct{} // closed when the output copy ended
	err    error         // of the output copy, once done
	// leftovers is set when the command exited and processes it left
	// holding its output were stopped.
	leftovers bool
}

// startExec creates an exec in the primary and starts copying its output.
func (j *jobRun) startExec(ctx context.Context, s execSpec) (*execution, error) {
	j.execs++
	x := &execution{j: j, marker: fmt.Sprintf("%s=%s/%d/", markerVar, j.job.ID, j.execs), user: s.user, done: make(chan struct{})}
	created, err := j.e.client.ContainerExecCreate(ctx, j.primary, container.ExecOptions{
		User:         s.user,
		Env:          append(s.env, x.marker),
		Cmd:          s.cmd,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return nil, fmt.Errorf("exec create: %w", err)
	}
	x.id = created.ID
	resp, err := j.e.client.ContainerExecAttach(ctx, x.id, container.ExecAttachOptions{})
	if err != nil {
		return nil, fmt.Errorf("exec start: %w", err)
	}
	x.conn = resp.Conn
	go func() {
		// Exits when the exec's output ends: the command and every
		// process holding its stdout exited, or the connection closed.
		// Each frame is written as it arrives.
		_, x.err = stdcopy.StdCopy(s.out, s.out, resp.Reader)
		resp.Close()
		close(x.done)
	}()
	return x, nil
}

// exitPoll is how often wait asks whether a command exited while its
// output is still open: processes it started in the background may hold
// that open long after it ended.
const exitPoll = 500 * time.Millisecond

// wait waits for x to end and its output to be copied, and returns its
// exit code. Cancelling ctx, or closing silent (nil: never), kills its
// processes: the first returns errCanceled; the second, the exit code of
// the killed command (the line writer that closed silent says why).
func (x *execution) wait(ctx context.Context, silent <-chan struct{}) (int, error) {
	poll := time.NewTicker(exitPoll)
	defer poll.Stop()
	for {
		select {
		case <-x.done:
			return x.exitCode(ctx, x.err)
		case <-ctx.Done():
			x.kill(ctx)
			return -1, errCanceled
		case <-poll.C:
			ins, err := x.j.e.client.ContainerExecInspect(ctx, x.id)
			if err != nil || ins.Running {
				continue
			}
			// The command exited, leaving processes that hold its output
			// open. They are killed: the engine would otherwise hold back
			// the exit of the container's later execs for seconds each.
			// (A process that redirects its output, or a `background`
			// step, lives on.)
			select {
			case <-x.done:
			case <-time.After(100 * time.Millisecond):
				x.leftovers = true
				x.kill(ctx)
			}
			return ins.ExitCode, nil
		case <-silent:
			x.kill(ctx)
			return x.exitCode(ctx, nil)
		}
	}
}

// exitCode reads the exit code once the output ended. The engine may
// report the exec as running for a moment after its stream closed.
func (x *execution) exitCode(ctx context.Context, copyErr error) (int, error) {
	ctx = context.WithoutCancel(ctx)
	for i := 0; ; i++ {
		ins, err := x.j.e.client.ContainerExecInspect(ctx, x.id)
		if err != nil {
			return -1, fmt.Errorf("exec inspect: %w", err)
		}
		if !ins.Running {
			if copyErr != nil && ins.ExitCode == 0 {
				return -1, fmt.Errorf("exec output: %w", copyErr)
			}
			return ins.ExitCode, nil
		}
		if i == 200 {
			return -1, fmt.Errorf("exec %s: still running after its output ended", x.id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kill kills x's processes and waits for its output to end. It works
// after ctx is canceled.
func (x *execution) kill(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	k, err := x.j.startExec(ctx, execSpec{
		cmd:  []string{"/bin/sh", "-c", killScript, "sh", x.marker},
		user: x.user,
		out:  &out,
	})
	if err == nil {
		_, err = k.wait(ctx, nil)
	}
	if err != nil {
		x.j.e.log.Warn("kill step", "attempt", x.j.job.ID, "err", err, "output", out.String())
	}
	select {
	case <-x.done:
	case <-ctx.Done():
		// Whatever still holds the stream, the step is over for us.
		x.conn.Close()
		<-x.done
	}
}

// run runs one command to its end.
func (j *jobRun) run(ctx context.Context, s execSpec) (int, error) {
	x, err := j.startExec(ctx, s)
	if err != nil {
		return -1, err
	}
	return x.wait(ctx, nil)
}

// output runs a short command of the executor's own and returns its
// output; a non-zero exit is an error.
func (j *jobRun) output(ctx context.Context, user string, cmd ...string) (string, error) {
	var out bytes.Buffer
	code, err := j.run(ctx, execSpec{cmd: cmd, user: user, out: &out})
	if err != nil {
		return "", err
	}
	if code != 0 {
		return "", fmt.Errorf("%s: exit code %d: %s", cmd[0], code, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}
