package local

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

func newExecutor(t *testing.T) *Executor {
	t.Helper()
	return newExecutorWith(t, Options{Dir: filepath.Join(t.TempDir(), "attempts"), AllowRoot: true})
}

// newExecutorWith returns an executor of opts, closed when the test ends.
func newExecutorWith(t *testing.T, opts Options) *Executor {
	t.Helper()
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return e
}

// shared are the folders a project's jobs share across attempts.
type shared struct{ cache, workspace string }

func newShared(t *testing.T) shared {
	t.Helper()
	return shared{cache: t.TempDir(), workspace: t.TempDir()}
}

var attemptSeq struct {
	sync.Mutex
	n int
}

// newJob makes an attempt with a fresh ID and output folder.
func newJob(t *testing.T, sh shared, steps ...workflows.Step) *engine.JobRun {
	t.Helper()
	attemptSeq.Lock()
	attemptSeq.n++
	id := "attempt-" + strconv.Itoa(attemptSeq.n)
	attemptSeq.Unlock()
	return &engine.JobRun{
		ID:      id,
		JobName: "build",
		Spec:    &workflows.JobSpec{Steps: steps},
		Env: map[string]string{
			"CI": "true", "CIRCLECI": "true", "CIRCLE_BRANCH": "main",
			"CIRCLE_SHA1": "abc123", "CIRCLE_BUILD_NUM": "7", "CIRCLE_JOB": "build",
		},
		CacheDir:  sh.cache,
		Workspace: sh.workspace,
		OutputDir: t.TempDir(),
	}
}

func run(cmd string) workflows.Step { return workflows.Step{Run: &workflows.RunStep{Command: cmd}} }

func runWhen(cmd, when string) workflows.Step {
	return workflows.Step{Run: &workflows.RunStep{Command: cmd, When: when}}
}

// runJob runs a job to its end and returns its result and log.
func runJob(t *testing.T, e *Executor, job *engine.JobRun) (engine.JobResult, string) {
	t.Helper()
	var log bytes.Buffer
	res, err := e.Run(context.Background(), job, &log)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res, log.String()
}

func statuses(res engine.JobResult) []string {
	var out []string
	for _, s := range res.Steps {
		out = append(out, s.Status)
	}
	return out
}

func TestRun(t *testing.T) {
	t.Setenv("SLIPWAY_TEST_SECRET", "hunter2")
	tests := []struct {
		name     string
		steps    []workflows.Step
		edit     func(*engine.JobRun)
		status   string
		exitCode int
		reason   string // contained in JobResult.Reason
		steps_   []string
		logHas   []string
		logLacks []string
	}{
		{
			name:   "state kept in files between steps",
			steps:  []workflows.Step{run("echo kept > state"), run(`test "$(cat state)" = kept`)},
			status: "success", steps_: []string{"success", "success"},
		},
		{
			name: "environment precedence: engine < primary image < job < step",
			steps: []workflows.Step{{Run: &workflows.RunStep{
				Command:     `echo "A=$A B=$B C=$C D=$D"`,
				Environment: map[string]string{"C": "step"},
			}}},
			edit: func(j *engine.JobRun) {
				j.Env["A"], j.Env["B"], j.Env["C"], j.Env["D"] = "engine", "engine", "engine", "engine"
				j.Spec.Docker = []workflows.DockerImage{{Image: "cimg/base:current", Environment: map[string]string{"B": "image", "D": "image"}}}
				j.Spec.Environment = map[string]string{"B": "job", "C": "job"}
			},
			status: "success", steps_: []string{"success"},
			logHas: []string{"A=engine B=job C=step D=image\n"},
		},
		{
			name:   "CIRCLE_ variables from the engine",
			steps:  []workflows.Step{run(`echo "$CIRCLE_BRANCH $CIRCLE_SHA1 $CI"`)},
			status: "success", steps_: []string{"success"},
			logHas: []string{"main abc123 true\n"},
		},
		{
			name:   "slipway's own environment does not leak into jobs",
			steps:  []workflows.Step{run(`test -z "$SLIPWAY_TEST_SECRET"`)},
			status: "success", steps_: []string{"success"},
		},
		{
			name: "after a failure only always and on_fail steps run",
			steps: []workflows.Step{
				run("echo before; exit 3"),
				run("echo SKIPPED"),
				runWhen("echo ALWAYS", workflows.WhenAlways),
				runWhen("echo ONFAIL", workflows.WhenOnFail),
			},
			status: "failed", exitCode: 3,
			steps_:   []string{"failed", "not_run", "success", "success"},
			logHas:   []string{"before\n", "ALWAYS\n", "ONFAIL\n"},
			logLacks: []string{"SKIPPED"},
		},
		{
			name:   "on_fail does not run after success",
			steps:  []workflows.Step{run("true"), runWhen("echo ONFAIL", workflows.WhenOnFail)},
			status: "success", steps_: []string{"success", "not_run"},
			logLacks: []string{"ONFAIL"},
		},
		{
			name:   "default shell is bash -eo pipefail",
			steps:  []workflows.Step{run("false | true\necho NOT_REACHED")},
			status: "failed", exitCode: 1, steps_: []string{"failed"},
			logLacks: []string{"NOT_REACHED"},
		},
		{
			name:   "the job's shell replaces the default",
			steps:  []workflows.Step{run("false | true\necho REACHED")},
			edit:   func(j *engine.JobRun) { j.Spec.Shell = "/bin/sh -e" },
			status: "success", steps_: []string{"success"},
			logHas: []string{"REACHED\n"},
		},
		{
			name:   "default working directory is ~/project in the job's home",
			steps:  []workflows.Step{run(`test "$PWD" = "$HOME/project" && test "$CIRCLE_WORKING_DIRECTORY" = "$PWD"`)},
			status: "success", steps_: []string{"success"},
		},
		{
			name: "a step's relative working_directory is under the job's",
			steps: []workflows.Step{{Run: &workflows.RunStep{
				Command: `test "$PWD" = "$HOME/app/sub"`, WorkingDirectory: "sub",
			}}},
			edit:   func(j *engine.JobRun) { j.Spec.WorkingDirectory = "~/app" },
			status: "success", steps_: []string{"success"},
		},
		{
			name: "no_output_timeout stops a silent step",
			steps: []workflows.Step{
				{Run: &workflows.RunStep{Command: "echo started; sleep 60", NoOutputTimeout: 200 * time.Millisecond}},
				runWhen("echo ALWAYS", workflows.WhenAlways),
			},
			status: "failed", exitCode: -1, reason: "no output for 200ms",
			steps_: []string{"failed", "success"},
			logHas: []string{"started\n", "ALWAYS\n"},
		},
		{
			name:   "an unfinished last line still reaches the log",
			steps:  []workflows.Step{run("printf 'no newline'"), run("echo next")},
			status: "success", steps_: []string{"success", "success"},
			logHas: []string{"no newline\n", "next\n"},
		},
		{
			name:   "setup_remote_docker fails clearly",
			steps:  []workflows.Step{{SetupRemoteDocker: &workflows.SetupRemoteDockerStep{}}},
			status: "failed", exitCode: -1, reason: "setup_remote_docker",
			steps_: []string{"failed"},
		},
		{
			name:   "native steps fail clearly",
			steps:  []workflows.Step{{Native: &workflows.NativeStep{Orb: "slipway/aws", Command: "ecr-push"}}},
			status: "failed", exitCode: -1, reason: "slipway/aws ecr-push",
			steps_: []string{"failed"},
		},
	}
	e := newExecutor(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := newJob(t, newShared(t), tt.steps...)
			if tt.edit != nil {
				tt.edit(job)
			}
			res, log := runJob(t, e, job)
			if res.Status != tt.status || res.ExitCode != tt.exitCode || !strings.Contains(res.Reason, tt.reason) {
				t.Errorf("result = %s exit %d reason %q; want %s exit %d reason containing %q\nlog:\n%s",
					res.Status, res.ExitCode, res.Reason, tt.status, tt.exitCode, tt.reason, log)
			}
			if d := cmp.Diff(tt.steps_, statuses(res)); d != "" {
				t.Errorf("step statuses (-want +got):\n%s\nlog:\n%s", d, log)
			}
			for _, s := range tt.logHas {
				if !strings.Contains(log, s) {
					t.Errorf("log lacks %q:\n%s", s, log)
				}
			}
			for _, s := range tt.logLacks {
				if strings.Contains(log, s) {
					t.Errorf("log has %q:\n%s", s, log)
				}
			}
			if _, err := os.Stat(filepath.Join(e.opts.Dir, job.ID)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("attempt folder left behind: %v", err)
			}
		})
	}
	// The folders went to the trash, which deletes them or keeps them
	// emptied.
	waitEmptied(t, e.trash.dir)
}

func TestSetupRemoteDockerWhereTheOperatorAllowsIt(t *testing.T) {
	e, err := New(Options{Dir: t.TempDir(), RemoteDocker: true, AllowRoot: true})
	if err != nil {
		t.Fatal(err)
	}
	res, log := runJob(t, e, newJob(t, newShared(t), workflows.Step{SetupRemoteDocker: &workflows.SetupRemoteDockerStep{}}))
	if res.Status != workflows.StatusSuccess || !strings.Contains(log, "this host's Docker engine") {
		t.Errorf("result %s (%s), log:\n%s", res.Status, res.Reason, log)
	}
}

// alive reports whether pid is a running process; a zombie waiting for a
// parent that does not reap (PID 1 of a container) counts as gone.
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	return i >= 0 && !bytes.HasPrefix(bytes.TrimSpace(data[i+1:]), []byte("Z"))
}

// waitGone waits (a bounded while) for a killed process to disappear;
// SIGKILL is delivered asynchronously.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 500 && alive(pid); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) {
		// What the job's end would have looked at: the process's
		// group, its marker, and where the PIDs are now.
		st, _ := readStat(pid)
		environ, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		var marker string
		for _, kv := range strings.Split(string(environ), "\x00") {
			if strings.HasPrefix(kv, attemptEnv+"=") {
				marker = kv
			}
		}
		t.Errorf("process %d still running: group %d, marker %q, last PID now %d", pid, st.pgrp, marker, lastPID())
	}
}

// readPID waits for a step to write a PID into file.
func readPID(t *testing.T, file string) int {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if data, err := os.ReadFile(file); err == nil && bytes.HasSuffix(data, []byte("\n")) {
			pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", file)
	return 0
}

func TestBackgroundStep(t *testing.T) {
	forEachTracking(t, func(t *testing.T, e *Executor) {
		out := t.TempDir()
		job := newJob(t, newShared(t),
			workflows.Step{Run: &workflows.RunStep{Command: `echo $$ > "$OUT/bg"; echo from-background; exec sleep 300`, Background: true}},
			// The foreground step sees the background one running.
			run(`for i in $(seq 500); do [ -s "$OUT/bg" ] && break; sleep 0.01; done; kill -0 "$(cat "$OUT/bg")" && echo seen`),
		)
		job.Spec.Environment = map[string]string{"OUT": out}
		res, log := runJob(t, e, job)
		if res.Status != workflows.StatusSuccess || !strings.Contains(log, "seen\n") {
			t.Fatalf("result %+v\nlog:\n%s", res, log)
		}
		waitGone(t, readPID(t, filepath.Join(out, "bg")))
	})
}

func TestDaemonLeftByAStepStopsAtJobEnd(t *testing.T) {
	forEachTracking(t, func(t *testing.T, e *Executor) {
		out := t.TempDir()
		job := newJob(t, newShared(t),
			run(`sleep 300 >/dev/null 2>&1 & echo $! > "$OUT/daemon"`),
			run(`kill -0 "$(cat "$OUT/daemon")"`), // still running for the next step
		)
		job.Spec.Environment = map[string]string{"OUT": out}
		if res, log := runJob(t, e, job); res.Status != workflows.StatusSuccess {
			t.Fatalf("result %+v\nlog:\n%s", res, log)
		}
		waitGone(t, readPID(t, filepath.Join(out, "daemon")))
	})
}

func TestCancelKillsTheProcessGroup(t *testing.T) {
	forEachTracking(t, func(t *testing.T, e *Executor) {
		out := t.TempDir()
		job := newJob(t, newShared(t),
			run(`sleep 300 & echo $! > "$OUT/child"; echo $$ > "$OUT/shell"; wait`),
			runWhen("echo ALWAYS", workflows.WhenAlways),
		)
		job.Spec.Environment = map[string]string{"OUT": out}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		type ran struct {
			res engine.JobResult
			err error
		}
		done := make(chan ran, 1)
		var log bytes.Buffer
		go func() {
			res, err := e.Run(ctx, job, &log)
			done <- ran{res, err}
		}()
		child, shell := readPID(t, filepath.Join(out, "child")), readPID(t, filepath.Join(out, "shell"))
		cancel()
		r := <-done
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.res.Status != workflows.StatusCanceled {
			t.Errorf("status = %s, want canceled", r.res.Status)
		}
		if d := cmp.Diff([]string{"canceled", "not_run"}, statuses(r.res)); d != "" {
			t.Errorf("step statuses (-want +got):\n%s", d)
		}
		if strings.Contains(log.String(), "ALWAYS") {
			t.Error("a when: always step ran after cancel")
		}
		waitGone(t, shell)
		waitGone(t, child)
	})
}

// A process a step started in a session of its own (setsid, as daemons
// do) leaves its step's process group; the job's end still stops it, as
// the end of a CircleCI job's container would.
func TestJobEndStopsProcessesThatLeftTheirGroup(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid")
	}
	forEachTracking(t, func(t *testing.T, e *Executor) {
		out := t.TempDir()
		job := newJob(t, newShared(t), run(`setsid sh -c 'echo $$ > "$OUT/daemon"; exec sleep 321' < /dev/null > /dev/null 2>&1 &
i=0; while [ ! -s "$OUT/daemon" ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done`))
		job.Spec.Environment = map[string]string{"OUT": out}
		res, log := runJob(t, e, job)
		if res.Status != workflows.StatusSuccess {
			t.Fatalf("status %s; log:\n%s", res.Status, log)
		}
		waitGone(t, readPID(t, filepath.Join(out, "daemon")))
	})
}

// gitRepo makes a repository with two commits of file "version" and
// returns its folder and the first commit.
func gitRepo(t *testing.T) (dir, first string) {
	t.Helper()
	dir = t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	for _, v := range []string{"v1", "v2"} {
		if err := os.WriteFile(filepath.Join(dir, "version"), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		git("add", "version")
		git("commit", "-q", "-m", v)
		if first == "" {
			first = git("rev-parse", "HEAD")
		}
	}
	return dir, first
}

func TestCheckout(t *testing.T) {
	repo, first := gitRepo(t)
	tarball := filepath.Join(t.TempDir(), "src.tar.gz")
	writeTarball(t, tarball, "owner-repo-abc123/", map[string]string{"version": "tarball\n", "sub/f": "x"})

	tests := []struct {
		name   string
		source engine.Source
		path   string
		check  string
	}{
		{
			name:   "git revision that is not the branch head",
			source: engine.Source{GitDir: repo, Revision: first},
			check: `test "$(cat version)" = v1 && test "$(git rev-parse HEAD)" = ` + first +
				` && test "$(git rev-parse --abbrev-ref HEAD)" = "$CIRCLE_BRANCH"`,
		},
		{
			name:   "git into a path",
			source: engine.Source{GitDir: repo, Revision: "main"},
			path:   "~/src",
			check:  `test "$(cat ~/src/version)" = v2`,
		},
		{
			name:   "tarball without its top folder",
			source: engine.Source{Tarball: tarball},
			check:  `test "$(cat version)" = tarball && test -f sub/f`,
		},
	}
	e := newExecutor(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := newJob(t, newShared(t), workflows.Step{Checkout: &workflows.CheckoutStep{Path: tt.path}}, run(tt.check))
			job.Source = tt.source
			res, log := runJob(t, e, job)
			if res.Status != workflows.StatusSuccess {
				t.Fatalf("result %+v\nlog:\n%s", res, log)
			}
		})
	}
	t.Run("unknown revision fails the step", func(t *testing.T) {
		job := newJob(t, newShared(t), workflows.Step{Checkout: &workflows.CheckoutStep{}})
		job.Source = engine.Source{GitDir: repo, Revision: "no-such-ref"}
		res, _ := runJob(t, e, job)
		if res.Status != workflows.StatusFailed || !strings.Contains(res.Reason, "no-such-ref") {
			t.Fatalf("result %+v, want a failure naming the revision", res)
		}
	})
}

func writeTarball(t *testing.T, name, top string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: top, Typeflag: tar.TypeDir, Mode: 0o755})
	for n, c := range files {
		tw.WriteHeader(&tar.Header{Name: top + n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(c))})
		tw.Write([]byte(c))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCacheAcrossAttempts(t *testing.T) {
	e, sh := newExecutor(t), newShared(t)
	save := workflows.Step{SaveCache: &workflows.SaveCacheStep{
		Key:   `deps-{{ .Branch }}-{{ checksum "lock" }}`,
		Paths: []string{"deps", "~/.cache/tool"},
	}}
	restore := func(keys ...string) workflows.Step {
		return workflows.Step{RestoreCache: &workflows.RestoreCacheStep{Keys: keys}}
	}
	steps := []struct {
		name   string
		steps  []workflows.Step
		logHas string
	}{
		{"save", []workflows.Step{
			run("echo lock1 > lock && mkdir -p deps ~/.cache/tool && echo v1 > deps/lib && echo t1 > ~/.cache/tool/db"),
			save,
		}, "Stored cache deps-main-"},
		{"restore by prefix into a new attempt's home", []workflows.Step{
			restore("deps-feature-", "deps-main-"),
			run(`test "$(cat deps/lib)" = v1 && test "$(cat ~/.cache/tool/db)" = t1`),
		}, "Restored cache deps-main-"},
		{"saving an existing key keeps the first archive", []workflows.Step{
			run("echo lock1 > lock && mkdir -p deps && echo v2 > deps/lib"),
			save,
		}, "cache already exists for key: deps-main-"},
		{"exact key still restores the first archive", []workflows.Step{
			run("echo lock1 > lock"),
			restore(`deps-{{ .Branch }}-{{ checksum "lock" }}`),
			run(`test "$(cat deps/lib)" = v1`),
		}, "Restored cache deps-main-"},
		{"a miss is not a failure", []workflows.Step{restore("nothing-")}, "No cache is found for keys: nothing-"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			res, log := runJob(t, e, newJob(t, sh, st.steps...))
			if res.Status != workflows.StatusSuccess || !strings.Contains(log, st.logHas) {
				t.Fatalf("result %+v, want success with %q in the log:\n%s", res, st.logHas, log)
			}
		})
	}
}

func TestWorkspaceAcrossJobs(t *testing.T) {
	e, sh := newExecutor(t), newShared(t)
	producer := newJob(t, sh,
		run("mkdir -p out/bin && echo built > out/bin/app && echo notes > out/notes.txt"),
		workflows.Step{PersistToWorkspace: &workflows.PersistStep{Root: ".", Paths: []string{"out/bin", "out/*.txt"}}},
	)
	if res, log := runJob(t, e, producer); res.Status != workflows.StatusSuccess {
		t.Fatalf("producer: %+v\n%s", res, log)
	}
	consumer := newJob(t, sh,
		workflows.Step{AttachWorkspace: &workflows.AttachStep{At: "~/ws"}},
		run(`test "$(cat ~/ws/out/bin/app)" = built && test "$(cat ~/ws/out/notes.txt)" = notes`),
	)
	if res, log := runJob(t, e, consumer); res.Status != workflows.StatusSuccess {
		t.Fatalf("consumer: %+v\n%s", res, log)
	}
	missing := newJob(t, sh, workflows.Step{PersistToWorkspace: &workflows.PersistStep{Root: ".", Paths: []string{"nope"}}})
	if res, _ := runJob(t, e, missing); res.Status != workflows.StatusFailed || !strings.Contains(res.Reason, "nope") {
		t.Fatalf("persisting a missing path: %+v, want a failure naming it", res)
	}
}

func TestOutputsKeptAfterFailure(t *testing.T) {
	job := newJob(t, newShared(t),
		run(`mkdir -p reports/unit && echo '<testsuite/>' > reports/unit/junit.xml && echo hello > app.log && exit 1`),
		workflows.Step{StoreArtifacts: &workflows.StoreArtifactsStep{Path: "app.log", Destination: "logs/app.log"}},
		workflows.Step{StoreArtifacts: &workflows.StoreArtifactsStep{Path: "reports"}},
		workflows.Step{StoreTestResults: &workflows.StoreTestResultsStep{Path: "reports"}},
	)
	res, log := runJob(t, newExecutor(t), job)
	if d := cmp.Diff([]string{"failed", "success", "success", "success"}, statuses(res)); d != "" {
		t.Fatalf("step statuses (-want +got):\n%s\nlog:\n%s", d, log)
	}
	for name, want := range map[string]string{
		"artifacts/logs/app.log":           "hello\n",
		"artifacts/reports/unit/junit.xml": "<testsuite/>\n",
		"test-results/unit/junit.xml":      "<testsuite/>\n",
	} {
		got, err := os.ReadFile(filepath.Join(job.OutputDir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
}

// TestOutputStreams checks that a step's lines reach the log while it
// runs: the step waits for a file that the log writer creates when it
// sees the step's first line, so buffering would make the step fail.
func TestOutputStreams(t *testing.T) {
	out := t.TempDir()
	job := newJob(t, newShared(t),
		run(`echo first; for i in $(seq 1000); do [ -f "$OUT/go" ] && echo second && exit 0; sleep 0.01; done; exit 1`))
	job.Spec.Environment = map[string]string{"OUT": out}
	w := &triggerWriter{on: "first\n", do: func() { os.WriteFile(filepath.Join(out, "go"), nil, 0o644) }}
	res, err := newExecutor(t).Run(context.Background(), job, w)
	if err != nil || res.Status != workflows.StatusSuccess {
		t.Fatalf("Run = %+v, %v; log:\n%s", res, err, w.buf.String())
	}
}

type triggerWriter struct {
	buf bytes.Buffer
	on  string
	do  func()
}

func (w *triggerWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if bytes.Contains(p, []byte(w.on)) {
		w.do()
	}
	return len(p), nil
}

func TestCleanup(t *testing.T) {
	e := newExecutor(t)
	if err := e.Cleanup(context.Background(), "never-seen"); err != nil {
		t.Fatalf("Cleanup of an unknown attempt: %v", err)
	}
	if err := e.Cleanup(context.Background(), "../escape"); err == nil {
		t.Fatal("Cleanup accepted an ID with a path in it")
	}

	// What a crash leaves: an attempt folder and a process group still
	// running, plus a recorded group number now used by someone else.
	id := "crashed-1"
	dir := filepath.Join(e.opts.Dir, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ours := startGroup(t, attemptEnv+"="+id)
	other := startGroup(t, attemptEnv+"=someone-else")
	pgids := strconv.Itoa(ours) + "\n" + strconv.Itoa(other) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "pgids"), []byte(pgids), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := e.Cleanup(context.Background(), id); err != nil {
			t.Fatalf("Cleanup #%d: %v", i+1, err)
		}
	}
	waitGone(t, ours)
	if !alive(other) {
		t.Error("Cleanup killed a process group that was not the attempt's")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("attempt folder still there: %v", err)
	}
}

// startGroup starts `sleep` leading its own process group with env, and
// stops it when the test ends.
func startGroup(t *testing.T, env string) int {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	cmd.Env = []string{env}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait() // reaps it, whoever kills it
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	return cmd.Process.Pid
}

// TestStepFilesAreReusedOnlyOnceTheirShellExits checks the files that
// carry run steps' commands: a background step's shell still reads its
// file while later steps run, so those must get other files; files are
// blanked once their shells have exited, and a shorter command
// written over a longer one leaves nothing of it; HOME is the attempt's folder.
func TestStepFilesAreReusedOnlyOnceTheirShellExits(t *testing.T) {
	e := newExecutor(t)
	later := `i=0; while [ ! -s ~/bg ] && [ $i -lt 300 ]; do sleep 0.01; i=$((i+1)); done
test "$(cat ~/bg)" != "$0" || echo got-the-background-"step-file"`
	job := newJob(t, newShared(t),
		workflows.Step{Run: &workflows.RunStep{Command: "echo \"$0\" > ~/bg; sleep 0.3\necho bg-read-its-last-line", Background: true}},
		run(later), run(later), run(later+"; sleep 0.5"),
		run(`test "$HOME/project" = "$CIRCLE_WORKING_DIRECTORY" && test -d ~/project && echo home-"ok"`),
	)
	res, log := runJob(t, e, job)
	if res.Status != workflows.StatusSuccess {
		t.Fatalf("status %s; log:\n%s", res.Status, log)
	}
	// Each step's header shows its command's first line, where the
	// markers below are quoted.
	for _, want := range []string{"bg-read-its-last-line", "home-ok"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "got-the-background-step-file") {
		t.Errorf("a step got the file of a background step still running:\n%s", log)
	}
	files, err := os.ReadDir(e.scripts.dir)
	if err != nil || len(files) < 2 {
		t.Fatalf("step files: %v, %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(e.scripts.dir, f.Name()))
		if err != nil || strings.Trim(string(b), "\x00") != "" {
			t.Errorf("step file %s not blanked after its job: %q, %v", f.Name(), b, err)
		}
	}
}

// What dead processes left in .steps and .trash is removed when an
// Executor first uses the folder; what live ones have there is not.
func TestWhatEndedProcessesLeftIsRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "attempts")
	// No process has an ID above the kernel's limit (2^22); one with this
	// process's ID that made files here was an earlier one.
	steps, trash := filepath.Join(dir, ".steps"), filepath.Join(dir, ".trash")
	me := strconv.Itoa(os.Getpid())
	gone := []string{filepath.Join(steps, "999999999-1"), filepath.Join(trash, "999999999-7", "project", "out.txt"),
		filepath.Join(steps, me+"-1"), filepath.Join(trash, me+"-1", "project", "out.txt")}
	// A live process's, 1 (init) here, stay.
	ours := filepath.Join(steps, "1-999")
	for _, f := range append(gone, ours) {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("true"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := New(Options{Dir: dir, AllowRoot: true}); err != nil {
		t.Fatal(err)
	}
	waitEmptied(t, trash)
	// Step files are this process's now, blanked.
	for _, f := range []string{gone[2], filepath.Join(steps, me+"-2")} {
		if b, err := os.ReadFile(f); err != nil || strings.Trim(string(b), "\x00") != "" {
			t.Errorf("%s: %q, %v; want a blanked step file", f, b, err)
		}
	}
	for _, f := range []string{gone[0], gone[1], gone[3]} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s of an ended process still there: %v", f, err)
		}
	}
	if _, err := os.Stat(ours); err != nil {
		t.Errorf("file of a live process removed: %v", err)
	}
}

// waitEmptied waits until the trash folder dir holds only emptied homes:
// folders holding an empty project folder.
func waitEmptied(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		full := ""
		for _, e := range entries {
			home := filepath.Join(dir, e.Name())
			in, _ := os.ReadDir(home)
			project, _ := os.ReadDir(filepath.Join(home, "project"))
			if len(in) != 1 || in[0].Name() != "project" || len(project) != 0 {
				full = home
			}
		}
		if full == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not emptied", full)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A run step that sets no no_output_timeout gets CircleCI's 10 minutes.
func TestNoOutputTimeoutDefaultsToTenMinutes(t *testing.T) {
	e, err := New(Options{Dir: t.TempDir(), AllowRoot: true})
	if err != nil {
		t.Fatal(err)
	}
	if e.opts.NoOutputTimeout != 10*time.Minute {
		t.Errorf("default no_output_timeout = %s, want 10m", e.opts.NoOutputTimeout)
	}
}

type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

// TestSecretSplitAcrossStreamsIsMasked is the docker executor's test of
// the same name: a secret printed half on stdout, half on stderr, on one
// line, reaches the masking writer whole.
func TestSecretSplitAcrossStreamsIsMasked(t *testing.T) {
	const secret = "s3cr3t-t0ken-value"
	job := newJob(t, newShared(t), run(`printf 'token=%s' "${SECRET%-*}"; printf -- '-%s\n' "${SECRET##*-}" >&2; echo after`))
	job.Env["SECRET"] = secret
	var log bytes.Buffer
	masked := engine.NewMaskingWriter(nopCloser{&log}, []string{secret})
	res, err := newExecutor(t).Run(context.Background(), job, masked)
	if err != nil || res.Status != workflows.StatusSuccess {
		t.Fatalf("Run = %+v, %v; log:\n%s", res, err, log.String())
	}
	if err := masked.Close(); err != nil {
		t.Fatal(err)
	}
	if got := log.String(); strings.Contains(got, "s3cr3t") || strings.Contains(got, "value") || !strings.Contains(got, "token=********\nafter\n") {
		t.Errorf("the secret is not masked whole on its line:\n%s", got)
	}
}

// A finished attempt's home is emptied and given to the next attempt of
// this process's user, not deleted and made again (see trash): the next
// attempt finds it as a new home, empty but for an empty project folder,
// with a new home's modes.
func TestHomesAreEmptiedAndReused(t *testing.T) {
	e := newExecutor(t)
	sh := newShared(t)
	res, log1 := runJob(t, e, newJob(t, sh, run(`stat -c 'ino%i' ~
echo secret > ~/.dot; mkdir -p ~/project/a/b ~/.cache; echo y > ~/project/a/b/f; ln -s / ~/project/root
chmod 0700 ~ ~/project`)))
	if res.Status != workflows.StatusSuccess {
		t.Fatalf("first job: %v\n%s", res, log1)
	}
	e.trash.wait()
	res, log2 := runJob(t, e, newJob(t, sh, run(`stat -c 'ino%i' ~; stat -c '%a %a' ~ ~/project | tr '\n' ' '; echo; ls -A ~; ls -A ~/project; echo end`)))
	if res.Status != workflows.StatusSuccess {
		t.Fatalf("second job: %v\n%s", res, log2)
	}
	ino := regexp.MustCompile(`ino([0-9]+)`)
	inode := func(log string) string { return ino.FindString(log) }
	if inode(log1) != inode(log2) {
		t.Errorf("the second attempt got a new home (inode %s, the first's %s)", inode(log2), inode(log1))
	}
	if !strings.Contains(log2, "755 755 \nproject\nend") {
		t.Errorf("the reused home is not as a new one:\n%s", log2)
	}
}

// A working directory other than ~/project in a reused home has no
// project folder beside it, as in a new one.
func TestReusedHomeWithAnotherWorkingDirectory(t *testing.T) {
	e := newExecutor(t)
	sh := newShared(t)
	runJob(t, e, newJob(t, sh, run("true")))
	e.trash.wait()
	job := newJob(t, sh, run("pwd; ls -A ~; echo end"))
	job.Spec.WorkingDirectory = "~/src"
	res, log := runJob(t, e, job)
	if res.Status != workflows.StatusSuccess || !strings.Contains(log, "/src\nsrc\nend") {
		t.Fatalf("%v\n%s", res, log)
	}
}

// A job of this process's user sees its SHELL, as it sees its PATH and
// USER (bash then need not look the user up as it starts).
func TestJobsSeeTheOperatorsShell(t *testing.T) {
	t.Setenv("SHELL", "/bin/sh-of-the-operator")
	e := newExecutor(t)
	res, log := runJob(t, e, newJob(t, newShared(t), run(`echo "shell=$SHELL"`)))
	if res.Status != workflows.StatusSuccess || !strings.Contains(log, "shell=/bin/sh-of-the-operator\n") {
		t.Fatalf("%v\n%s", res, log)
	}
}
