package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/slipway-ci/slipway/executors"
	"github.com/slipway-ci/slipway/workflows"
)

// pipeGrace is how long a finished step waits for processes it left
// behind (`server &` without redirection) to let go of its output, before
// slipway stops reading it and moves on. They keep running until the job
// ends, as on CircleCI.
const pipeGrace = time.Second

// process is one started run step: its shell leads a process group of
// its own, so that killing the group stops everything the step started.
type process struct {
	pgid int
	lw   *executors.LineWriter
	done chan struct{} // closed once the shell has exited and been reaped
	err  error         // from Wait, read after done
}

// killGroup stops every process of the step. It is only called while the
// shell has not been reaped, or right after it has: a group number is
// not handed out again while any process of the group lives.
func killGroup(pgid int) {
	if pgid > 1 {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

func (j *job) runStep(ctx context.Context, i int, rs *workflows.RunStep) outcome {
	env := executors.StepEnv(j.base, j.run, rs.Environment)
	env[attemptEnv] = j.run.ID
	dir := j.workdir
	if rs.WorkingDirectory != "" {
		dir = j.resolve(j.workdir, rs.WorkingDirectory)
		// CircleCI creates the working directory if it is missing.
		if err := j.user.do(func() error { return os.MkdirAll(dir, 0o755) }); err != nil {
			return fail("working_directory: %v", err)
		}
	}
	script, err := j.e.scripts.take(rs.Command, j.user)
	if err != nil {
		return fail("writing the command: %v", err)
	}
	argv := executors.ShellArgv(executors.StepShell(j.run.Spec, rs, j.e.shell), script.path)

	lw := executors.NewLineWriter(j.log)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, executors.EnvList(env)
	cmd.Stdout, cmd.Stderr = lw, lw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = pipeGrace
	if err := j.start(cmd); err != nil {
		lw.Close()
		j.e.scripts.give(script)
		return fail("starting %s: %v", argv[0], err)
	}
	p := &process{pgid: cmd.Process.Pid, lw: lw, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		// The shell is gone, and with it the only reader of its file.
		j.e.scripts.give(script)
		close(p.done)
	}()

	if rs.Background {
		// Not waited for; its output keeps flowing into the log and the
		// job's end stops it.
		j.mu.Lock()
		j.background = append(j.background, p)
		j.mu.Unlock()
		return success
	}

	timeout := rs.NoOutputTimeout
	if timeout <= 0 {
		timeout = j.e.opts.NoOutputTimeout
	}
	lw.Watch(timeout, func() { killGroup(p.pgid) })
	select {
	case <-p.done:
	case <-ctx.Done():
		killGroup(p.pgid)
		<-p.done
		lw.Close()
		return outcome{status: workflows.StatusCanceled, exitCode: -1, reason: "canceled"}
	}
	if lw.Close() {
		return fail("no output for %s; the step was stopped", timeout)
	}
	return exitOutcome(p.err)
}

// scripts hands out the files that run steps' commands are passed to
// their shells in, and takes them back once the shell has exited. Files
// are reused rather than made for each step and removed with its attempt:
// on a busy disk, making and removing files per job cost more than the
// rest of the executor's work (see BenchmarkOneStepJobPaired), and an
// overwritten file costs no new inode. A file is overwritten in place and
// never truncated to nothing: ext4 writes a file that was emptied back to
// disk when it is closed (its auto_da_alloc), which made writing a step's
// command 0.18 ms on the development VM against 0.02 ms in place. File
// names start with the process's ID so that two processes sharing an
// attempts folder never write each other's files.
type scripts struct {
	dir  string
	mu   sync.Mutex
	free []script
	n    int
}

// script is a step file and the length of the command it held.
type script struct {
	path string
	size int
	uid  int // its owner, once given to a job's user
}

// take writes command to a file of its own until it is given back,
// readable by u alone (or this process's user, for a nil u).
func (s *scripts) take(command string, u *jobUser) (script, error) {
	s.mu.Lock()
	var sc script
	if n := len(s.free); n > 0 {
		sc, s.free = s.free[n-1], s.free[:n-1]
	} else {
		s.n++
		sc.path = filepath.Join(s.dir, fmt.Sprintf("%d-%d", os.Getpid(), s.n))
	}
	s.mu.Unlock()
	err := overwrite(sc.path, []byte(command))
	if errors.Is(err, fs.ErrNotExist) {
		// Someone removed the folder; it is only a pool.
		if err = os.MkdirAll(s.dir, 0o700); err == nil {
			err = overwrite(sc.path, []byte(command))
		}
	}
	if err == nil && u != nil && sc.uid != u.uid {
		if err = u.chown(sc.path); err == nil {
			sc.uid = u.uid
		}
	}
	if err != nil {
		s.give(sc)
		return script{}, err
	}
	sc.size = len(command)
	return sc, nil
}

// give blanks a file whose shell has exited, so that no command outlives
// its step on disk, and makes it free for another step.
func (s *scripts) give(sc script) {
	_ = overwrite(sc.path, make([]byte, sc.size))
	s.mu.Lock()
	s.free = append(s.free, sc)
	s.mu.Unlock()
}

// adopt makes a step file that a dead process left, at path, one of this
// process's, blanked: renamed, not made again (see trash). False when it
// is not a file of this process's user's.
func (s *scripts) adopt(path string) bool {
	size, ok := ownFile(path)
	if !ok {
		return false
	}
	s.mu.Lock()
	dst := adoptedName(s.dir, path, &s.n)
	s.mu.Unlock()
	if os.Rename(path, dst) != nil {
		return false
	}
	s.give(script{path: dst, size: int(size)})
	return true
}

// overwrite makes data the content of the file at path, writing over what
// it held and cutting off the rest.
func overwrite(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o700)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = f.Truncate(int64(len(data)))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func exitOutcome(err error) outcome {
	var exit *exec.ExitError
	switch {
	case err == nil, errors.Is(err, exec.ErrWaitDelay):
		// ErrWaitDelay: the shell exited 0 but something it started
		// still held its output; that is the step's success.
		return success
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fail("killed by signal %v", ws.Signal())
		}
		return outcome{status: workflows.StatusFailed, exitCode: exit.ExitCode()}
	}
	return fail("%v", err)
}

// start starts cmd, whose SysProcAttr is set, as a process of the job:
// as its user, in its cgroups, or else with its process group noted in
// the attempt's record.
func (j *job) start(cmd *exec.Cmd) error {
	cmd.SysProcAttr.Credential = j.user.credential()
	if j.cgroup != nil {
		return j.cgroup.start(cmd)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	if cmd.SysProcAttr.Setpgid {
		if st, ok := readStat(cmd.Process.Pid); ok {
			_ = j.record.add(groupLine(procID{cmd.Process.Pid, st.start}))
		}
	}
	return nil
}

// stopProcesses ends everything the job started: background steps still
// running, and then every process in the attempt's cgroup, whatever
// became of it, as the end of a CircleCI job's container would. Without
// cgroups, it ends every process that carries the attempt's marker, in
// whatever group: what a step left running in its own group after its
// shell exited, or in a session of its own (setsid, a daemon).
func (j *job) stopProcesses() {
	j.mu.Lock()
	bg := j.background
	j.background = nil
	j.mu.Unlock()
	for _, p := range bg {
		select {
		case <-p.done:
			// The shell is gone and its group number may be reused:
			// what is left of it is found below.
		default:
			killGroup(p.pgid)
		}
		<-p.done
		p.lw.Close()
	}
	switch {
	case j.cgroup != nil:
		if err := j.cgroup.kill(); err != nil {
			j.logger.Warn("killing the attempt's cgroup", "err", err)
		}
	case j.e.cg == nil:
		killAttempt(j.run.ID, pidsSince(j.sincePID))
	}
}

// killAttempt kills the process group of every process that carries the
// attempt's marker among pids (every process when nil): what a dead
// slipway left running of the attempt, or what a step started in a
// session of its own (setsid, a daemon), out of its step's group. Linux
// only: without /proc nothing is killed.
func killAttempt(attemptID string, pids []int) {
	own := syscall.Getpgrp()
	for _, pgid := range attemptGroups(attemptID, pids) {
		if pgid != own {
			killGroup(pgid)
		}
	}
}

// lastPID is the process ID the kernel handed out last, or -1.
func lastPID() int {
	data, err := os.ReadFile("/proc/sys/kernel/ns_last_pid")
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(data)))
	if err != nil {
		return -1
	}
	return n
}

// pidsSince lists the process IDs handed out after since, a lastPID
// reading: the processes an attempt may have started, without reading
// every process's environment. It is nil (every process) when it cannot
// tell: no reading, the numbers wrapped, or too many to try one by one.
func pidsSince(since int) []int {
	now := lastPID()
	if since < 0 || now < since || now-since > 4096 {
		return nil
	}
	pids := make([]int, 0, now-since)
	for p := since + 1; p <= now; p++ {
		pids = append(pids, p)
	}
	return pids
}

// attemptGroups lists the process groups of the processes among pids
// (every process when nil) whose environment holds the attempt's marker.
func attemptGroups(attemptID string, pids []int) []int {
	if pids == nil {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return nil
		}
		for _, e := range entries {
			if pid, err := strconv.Atoi(e.Name()); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	// NAME=value entries, each ended by a NUL; the first has none before.
	marker := []byte("\x00" + attemptEnv + "=" + attemptID + "\x00")
	var groups []int
	for _, pid := range pids {
		environ, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
		if err != nil || !bytes.HasPrefix(environ, marker[1:]) && !bytes.Contains(environ, marker) {
			continue
		}
		if st, ok := readStat(pid); ok && st.pgrp > 1 && !slices.Contains(groups, st.pgrp) {
			groups = append(groups, st.pgrp)
		}
	}
	return groups
}
