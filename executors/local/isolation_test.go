package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slipway-ci/slipway/executors"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// helperEnv, set in the environment of this test binary run again, makes
// it run one job through an executor instead of the tests (see TestMain),
// as os/exec's tests do: a process that a test can SIGKILL mid-step, or
// whose own environment a job tries to read.
const helperEnv = "SLIPWAY_LOCAL_TEST_HELPER"

// helperJob is what the helper process runs, passed as JSON in helperEnv.
type helperJob struct {
	Dir       string
	User      string // Options.User; empty for AllowRoot
	Tracking  string // one of trackings; the executor's choice when empty
	NoProtect bool   // make the process dumpable again after New
	AttemptID string
	Command   string
	Env       map[string]string
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(helperMain(spec))
	}
	os.Exit(m.Run())
}

// helperMain runs the job of spec and prints its log and status.
func helperMain(spec string) int {
	var h helperJob
	if err := json.Unmarshal([]byte(spec), &h); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	e, err := New(Options{Dir: h.Dir, User: h.User, AllowRoot: h.User == ""})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	if h.NoProtect {
		if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 2
		}
	}
	if h.Tracking != "" {
		if why := track(e, h.Tracking); why != "" {
			fmt.Fprintln(os.Stderr, "helper:", why)
			return 2
		}
	}
	job := &engine.JobRun{
		ID: h.AttemptID, JobName: "helper",
		Spec: &workflows.JobSpec{Steps: []workflows.Step{run(h.Command)}, Environment: h.Env},
	}
	res, err := e.Run(context.Background(), job, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	fmt.Printf("status %s\n", res.Status)
	if err := e.Close(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	return 0
}

// startHelper runs h in a new process of this test binary, with env added
// to its environment, and returns it with the buffer its stdout goes to.
// The process is killed when the test ends.
func startHelper(t *testing.T, h helperJob, env ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := helperCommand(t, os.Args[0], h, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, &out
}

// trackings are the ways of tracking an attempt's processes that tests
// go through: cgroups as the executor finds them (v2 here), the v1
// freezer's way, and the fallback without cgroups.
var trackings = []string{"cgroup", "cgroup v1", "process groups"}

// track makes e track its attempts' processes the way named, or says why
// this host cannot.
func track(e *Executor, how string) (why string) {
	switch how {
	case "cgroup":
		if e.cg == nil {
			_, why = findCgroups()
			return "no cgroup for attempts: " + why
		}
	case "cgroup v1":
		cg, why := detectCgroups("/proc/self/cgroup", "/proc/self/mountinfo", true)
		if cg == nil {
			return "no cgroup v1 freezer for attempts: " + why
		}
		e.cg = cg
	case "process groups":
		e.cg = nil
	default:
		return "no tracking " + how
	}
	return ""
}

// forEachTracking runs test once per way of tracking processes, each
// with an executor of its own.
func forEachTracking(t *testing.T, test func(t *testing.T, e *Executor)) {
	for _, how := range trackings {
		t.Run(how, func(t *testing.T) {
			e := newExecutor(t)
			if why := track(e, how); why != "" {
				t.Skip("skipping:", why)
			}
			test(t, e)
		})
	}
}

// helperCommand is the command that runs h in bin, a copy of this test
// binary, with env added to its environment.
func helperCommand(t *testing.T, bin string, h helperJob, env ...string) *exec.Cmd {
	t.Helper()
	spec, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+string(spec)), env...)
	return cmd
}

// A step's process that drops the attempt's marker from its environment
// and leaves the step's session is still stopped at the job's end. Where
// there are no cgroups, it is not: the fallback's documented limit.
func TestJobEndStopsProcessesThatDroppedTheMarker(t *testing.T) {
	forEachTracking(t, func(t *testing.T, e *Executor) {
		if e.cg == nil {
			t.Skip("skipping: without cgroups such a process outlives its job (the documented limit)")
		}
		out := t.TempDir()
		job := newJob(t, newShared(t), run(`env -u SLIPWAY_ATTEMPT setsid sh -c 'echo $$ > "$OUT/escaped"; exec sleep 100' </dev/null >/dev/null 2>&1 &
i=0; while [ ! -s "$OUT/escaped" ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done`))
		job.Spec.Environment = map[string]string{"OUT": out}
		res, log := runJob(t, e, job)
		if res.Status != workflows.StatusSuccess {
			t.Fatalf("status %s; log:\n%s", res.Status, log)
		}
		pid := readPID(t, filepath.Join(out, "escaped"))
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
		waitGone(t, pid)
	})
}

// What a SIGKILLed slipway was running, a step whose process dropped the
// attempt's marker, is stopped by the next executor's start on the same
// folder, or by Cleanup of the attempt; its cgroups and record go too.
func TestLeftoversOfAKilledProcessAreStopped(t *testing.T) {
	for _, how := range trackings {
		for _, by := range []string{"start", "Cleanup"} {
			t.Run(how+"/"+by, func(t *testing.T) {
				dir, out := filepath.Join(t.TempDir(), "attempts"), t.TempDir()
				h := helperJob{
					Dir: dir, AttemptID: "killed-1", Tracking: how,
					Command: `echo $$ > "$OUT/step"; exec env -u SLIPWAY_ATTEMPT sleep 301`,
					Env:     map[string]string{"OUT": out},
				}
				helper, log := startHelper(t, h)
				pid := readPID(t, filepath.Join(out, "step"))
				t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
				if how == "process groups" {
					// The group is noted just after the step starts; a
					// crash before that leaves the step to the marker.
					waitRecorded(t, dir, pid)
				}
				cgroups := attemptCgroups(t, pid)
				helper.Process.Kill()
				helper.Wait()
				if strings.Contains(log.String(), "helper: no ") {
					t.Skip("skipping:", log)
				}
				if how != "process groups" && len(cgroups) == 0 {
					t.Fatalf("the step is in no cgroup of the attempt's; log:\n%s", log)
				}
				time.Sleep(50 * time.Millisecond)
				if !alive(pid) {
					t.Fatalf("the step died with the helper; its log:\n%s", log)
				}
				e := newExecutorWith(t, Options{Dir: dir, AllowRoot: true})
				if by == "Cleanup" {
					if err := e.Cleanup(context.Background(), h.AttemptID); err != nil {
						t.Fatal(err)
					}
				}
				waitGone(t, pid)
				if err := e.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
				for _, cg := range cgroups {
					if _, err := os.Stat(cg); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("cgroup %s still there: %v", cg, err)
					}
				}
				if n := liveRecords(t, dir); n != 0 {
					t.Errorf("%d records left", n)
				}
			})
		}
	}
}

// waitRecorded waits until a record in the attempts folder dir has the
// process group pid.
func waitRecorded(t *testing.T, dir string, pid int) {
	t.Helper()
	for i := 0; i < 500; i++ {
		entries, _ := os.ReadDir(filepath.Join(dir, ".running"))
		for _, e := range entries {
			r, err := readRecord(filepath.Join(dir, ".running", e.Name()))
			if err == nil && slices.ContainsFunc(r.groups, func(g procID) bool { return g.pid == pid }) {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no record has the process group %d", pid)
}

// attemptCgroups lists the cgroups of pid that this package made.
func attemptCgroups(t *testing.T, pid int) []string {
	t.Helper()
	own, err := readOwnCgroups(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := readCgroupMounts("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for key, p := range own {
		if m, ok := mounts[key]; ok && strings.HasPrefix(filepath.Base(p), "slipway-") {
			dirs = append(dirs, filepath.Join(m.dir, p))
		}
	}
	return dirs
}

// liveRecords counts the records in an attempts folder that are not blank.
func liveRecords(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, ".running"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if _, err := readRecord(filepath.Join(dir, ".running", e.Name())); !errors.Is(err, errFree) {
			n++
		}
	}
	return n
}

// A job cannot read the environment of the process running the executor,
// where the server keeps its tokens: as root, the executor runs it as
// another user.
func TestJobCannotReadTheExecutorsEnvironment(t *testing.T) {
	requireRoot(t)
	h := helperJob{
		Dir: filepath.Join(reachableTempDir(t), "attempts"), AttemptID: "reader-1", User: nobody,
		Command: `if tr '\0' '\n' < /proc/$PPID/environ | grep -q SLIPWAY_TEST_TOKEN; then echo LEAKED; else echo unreadable; fi`,
	}
	helper, log := startHelper(t, h, "SLIPWAY_TEST_TOKEN=xoxb-not-for-jobs")
	if err := helper.Wait(); err != nil {
		t.Fatalf("helper: %v\n%s", err, log)
	}
	if !strings.Contains(log.String(), "unreadable\n") {
		t.Errorf("the job read the executor's environment:\n%s", log)
	}
}

// nobody is Debian's unprivileged user, jobs' user in tests run as root.
const nobody = "65534"

// requireRoot skips tests of what the executor does as root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: the executor switches users only as root, and this test runs as uid", os.Geteuid())
	}
}

// reachableTempDir is a temporary folder that other users can go
// through, as a folder for attempts run as another user must be
// (t.TempDir's are the test's user's alone).
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A step that forks as fast as it can, in the background, leaves nothing
// behind: the kill races no fork. pids keeps the fork bomb small.
func TestJobEndStopsAForkingStep(t *testing.T) {
	forEachTracking(t, func(t *testing.T, e *Executor) {
		if e.cg == nil {
			t.Skip("skipping: without cgroups, processes forked while their group is killed can escape (the documented limit)")
		}
		e.opts.MaxProcesses = 200
		job := newJob(t, newShared(t), run(`sh -c 'while :; do (sleep 100 &) 2>/dev/null; done' </dev/null >/dev/null 2>&1 &
sleep 0.3`))
		res, log := runJob(t, e, job)
		if res.Status != workflows.StatusSuccess {
			t.Fatalf("status %s; log:\n%s", res.Status, log)
		}
		if err := e.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if left := attemptProcesses(job.ID); len(left) > 0 {
			t.Errorf("%d processes of the attempt left: %v", len(left), left)
		}
	})
}

// attemptProcesses lists the processes that carry attemptID's marker.
func attemptProcesses(attemptID string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	marker := []byte(attemptEnv + "=" + attemptID + "\x00")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		environ, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && bytes.Contains(environ, marker) && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// An attempt gets MaxProcesses processes and no more.
func TestProcessLimit(t *testing.T) {
	e := newExecutor(t)
	if e.cg == nil || e.cg.limits["pids"] == (hierarchy{}) {
		_, why := findCgroups()
		t.Skip("skipping: no pids controller for attempts:", why)
	}
	e.opts.MaxProcesses = 10
	job := newJob(t, newShared(t), run(`i=0; while [ $i -lt 30 ]; do sleep 10 & i=$((i+1)); done; echo "forked $i"`))
	job.Spec.Shell = "/bin/sh -e" // dash fails a fork at once; bash retries for seconds
	res, log := runJob(t, e, job)
	if res.Status != workflows.StatusFailed || strings.Contains(log, "forked 30") || !strings.Contains(log, "fork") {
		t.Errorf("result %s, log:\n%s", res.Status, log)
	}
}

// A job's resource_class limits its memory where the controller is there.
func TestMemoryLimit(t *testing.T) {
	e := newExecutor(t)
	if e.cg == nil || e.cg.limits["memory"] == (hierarchy{}) {
		_, why := findCgroups()
		t.Skip("skipping: no memory controller for attempts:", why)
	}
	e.opts.ResourceClasses = map[string]executors.Resources{"tiny": {CPUs: 0.5, Memory: 32 << 20}, "roomy": {CPUs: 1, Memory: 1 << 30}}
	// tail holds the whole "line" of zeros, 100 MB, forked at once.
	eat := `head -c 100000000 /dev/zero | tail -n 1 | wc -c`
	for _, tt := range []struct{ class, status string }{{"tiny", "failed"}, {"roomy", "success"}} {
		job := newJob(t, newShared(t), run(eat))
		job.Spec.ResourceClass = tt.class
		if res, log := runJob(t, e, job); res.Status != tt.status {
			t.Errorf("%s: status %s, want %s; log:\n%s", tt.class, res.Status, tt.status, log)
		}
	}
	job := newJob(t, newShared(t), run("true"))
	job.Spec.ResourceClass = "huge"
	if _, err := e.Run(context.Background(), job, io.Discard); err == nil || !strings.Contains(err.Error(), `resource_class "huge" is not offered`) {
		t.Errorf("an unknown class: %v", err)
	}
}

// The limits a cgroup is made with are written where their controller
// is, in the files of its cgroup version.
func TestCgroupLimitsWritten(t *testing.T) {
	for _, how := range []string{"cgroup", "cgroup v1"} {
		t.Run(how, func(t *testing.T) {
			e := newExecutor(t)
			if why := track(e, how); why != "" {
				t.Skip("skipping:", why)
			}
			lim := limits{pids: 77, memory: 64 << 20, cpus: 1.5}
			cg, err := e.cg.create(e.cg.dirs(e.cg.name(), lim), lim)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				cg.close()
				if err := cg.remove(); err != nil {
					t.Error(err)
				}
			}()
			name := filepath.Base(cg.track)
			want := map[string]map[bool][2]string{
				"pids":   {true: {"pids.max", "77"}, false: {"pids.max", "77"}},
				"memory": {true: {"memory.max", "67108864"}, false: {"memory.limit_in_bytes", "67108864"}},
				"cpu":    {true: {"cpu.max", "150000 100000"}, false: {"cpu.cfs_quota_us", "150000"}},
			}
			for ctl, h := range e.cg.limits {
				w := want[ctl][h.v2]
				got, err := os.ReadFile(filepath.Join(h.dir, name, w[0]))
				if err != nil || strings.TrimSpace(string(got)) != w[1] {
					t.Errorf("%s: %s = %q, %v; want %q", ctl, w[0], got, err, w[1])
				}
			}
		})
	}
}

// Neither Cleanup nor a new executor's start touches an attempt that a
// live process runs.
func TestLiveOwnersAttemptsAreLeftAlone(t *testing.T) {
	dir, out := filepath.Join(t.TempDir(), "attempts"), t.TempDir()
	h := helperJob{
		Dir: dir, AttemptID: "live-1",
		Command: `echo $$ > "$OUT/step"; exec sleep 302`,
		Env:     map[string]string{"OUT": out},
	}
	helper, log := startHelper(t, h)
	pid := readPID(t, filepath.Join(out, "step"))
	e := newExecutorWith(t, Options{Dir: dir, AllowRoot: true})
	t.Cleanup(func() {
		helper.Process.Kill()
		helper.Wait()
		if err := e.Cleanup(context.Background(), h.AttemptID); err != nil {
			t.Error(err)
		}
		waitGone(t, pid)
	})
	err := e.Cleanup(context.Background(), h.AttemptID)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("running in process %d", helper.Process.Pid)) {
		t.Errorf("Cleanup of a live process's attempt: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if !alive(pid) {
		t.Fatalf("the live process's step was stopped; its log:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(dir, h.AttemptID)); err != nil {
		t.Errorf("the live process's attempt folder: %v", err)
	}
	// Its own attempt, in its own process, is refused too.
	job := newJob(t, newShared(t), run("sleep 0.3"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		runJob(t, e, job)
	}()
	time.Sleep(100 * time.Millisecond)
	if err := e.Cleanup(context.Background(), job.ID); err == nil {
		t.Error("Cleanup of an attempt this process runs: no error")
	}
	<-done
}

// A record that names something other than an attempt's cgroup is not
// acted on: the cgroup stays.
func TestRecordNamingAnotherCgroupIsNotActedOn(t *testing.T) {
	e := newExecutor(t)
	if e.cg == nil {
		_, why := findCgroups()
		t.Skip("skipping: no cgroup for attempts:", why)
	}
	victim := filepath.Join(e.cg.track.dir, fmt.Sprintf("not-slipway-%d", os.Getpid()))
	if err := os.Mkdir(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(victim)
	dir := filepath.Join(t.TempDir(), "attempts")
	dead := owner{boot: self().boot, pid: 999999999, start: 1}
	r := &record{attempt: "forged-1", owner: dead, cgroup: []string{victim}}
	if err := os.MkdirAll(filepath.Join(dir, ".running"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".running", "999999999-1"), r.encode(), 0o600); err != nil {
		t.Fatal(err)
	}
	newExecutorWith(t, Options{Dir: dir, AllowRoot: true})
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("the cgroup a forged record named: %v", err)
	}
}

// An attempt that leaves nothing running hands its cgroup to the next;
// one whose processes had to be killed does not. Close removes what is
// kept.
func TestCgroupsKeptForTheNextAttempt(t *testing.T) {
	e := newExecutor(t)
	if e.cg == nil || !e.cg.pooled(limits{pids: 1}) {
		t.Skip("skipping: cgroups are kept only where v2 tracks")
	}
	cgroupOf := func(cmd string) string {
		t.Helper()
		res, log := runJob(t, e, newJob(t, newShared(t), run(`grep '^0::' /proc/self/cgroup; `+cmd)))
		if res.Status != workflows.StatusSuccess {
			t.Fatalf("status %s; log:\n%s", res.Status, log)
		}
		_, path, _ := strings.Cut(log, "\n0::")
		path, _, _ = strings.Cut(path, "\n")
		return path
	}
	first := cgroupOf("true")
	if second := cgroupOf("sleep 100 >/dev/null 2>&1 &"); second != first {
		t.Errorf("the second attempt got %s, not the first's %s", second, first)
	}
	if third := cgroupOf("true"); third == first {
		t.Errorf("the third attempt got %s, which the second's leftover was killed in", third)
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	mine, _ := filepath.Glob(filepath.Join(e.cg.track.dir, fmt.Sprintf("slipway-%d-*", os.Getpid())))
	if len(mine) > 0 {
		t.Errorf("cgroups left after Close: %v", mine)
	}
}

// The cgroups of a slipway process that is gone are found by their
// names, whether a record names them or not: their processes are killed
// and they are removed.
func TestDeadProcessesCgroupsAreSwept(t *testing.T) {
	cg, why := findCgroups()
	if cg == nil {
		t.Skip("skipping: no cgroup for attempts:", why)
	}
	// No process has a PID above the kernel's limit (2^22).
	dirs := cg.dirs("slipway-999999999-1", limits{pids: 100})
	made, err := cg.create(dirs, limits{pids: 100})
	if err != nil {
		t.Fatal(err)
	}
	left := exec.Command("sleep", "303")
	left.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := made.start(left); err != nil {
		t.Fatal(err)
	}
	go left.Wait()
	t.Cleanup(func() { left.Process.Kill() })
	made.close()
	cg.sweep()
	waitGone(t, left.Process.Pid)
	for _, d := range dirs {
		for i := 0; i < 500 && exists(d); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if exists(d) {
			t.Errorf("%s still there", d)
		}
	}
}
