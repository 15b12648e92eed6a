package docker_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/google/go-cmp/cmp"

	"github.com/slipway-ci/slipway/executors/docker"
	"github.com/slipway-ci/slipway/executors/docker/dockertest"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// setup returns an executor on the test engine, closed when the test
// ends, and checks then that nothing labelled is left: no attempt's
// containers, networks or volumes, and none of the pool's networks.
func setup(t *testing.T, opts docker.Options) (*docker.Executor, client.APIClient) {
	t.Helper()
	cli := dockertest.RequireImage(t)
	// Only this test binary's objects count: other packages' tests may
	// be running on the same engine.
	mine := docker.LabelOwner + "=" + docker.Owner()
	before := countLabelled(t, cli, mine)
	t.Cleanup(func() {
		if after := countLabelled(t, cli, mine); after != before {
			t.Errorf("left behind: %d containers, networks and volumes labelled %s (before: %d)", after, mine, before)
		}
	})
	return newExecutor(t, cli, opts), cli
}

// holderImage makes the executor's holder image from the machine's
// busybox-static, as `slipway run` does.
func holderImage(tb testing.TB, cli client.APIClient) string {
	tb.Helper()
	name, err := docker.EnsureHolderImage(context.Background(), cli, docker.DebianBusybox)
	if err != nil {
		tb.Fatal(err)
	}
	return name
}

// Both checks come before the engine is asked anything: no engine needed.
func TestHolderImageNeedsAStaticBusybox(t *testing.T) {
	var cli client.APIClient
	if _, err := docker.EnsureHolderImage(context.Background(), cli, "/bin/ls"); err == nil || !strings.Contains(err.Error(), "not statically linked") {
		t.Errorf("a dynamically linked binary: %v", err)
	}
	if _, err := docker.EnsureHolderImage(context.Background(), cli, "/nonexistent/busybox"); err == nil {
		t.Error("a missing binary: no error")
	}
}

// newExecutor returns an executor that is closed when the test ends.
func newExecutor(t *testing.T, cli client.APIClient, opts docker.Options) *docker.Executor {
	t.Helper()
	e := docker.New(cli, opts)
	t.Cleanup(func() {
		if err := e.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// countLabelled counts the containers, networks and volumes with label
// (a key, or key=value).
func countLabelled(t *testing.T, cli client.APIClient, label string) int {
	t.Helper()
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", label))
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	return len(cs) + len(ns) + len(vs.Volumes)
}

// newJob returns an attempt of spec with fresh folders; workspace and
// cache folders are shared when given.
func newJob(t *testing.T, spec *workflows.JobSpec, workspace, cache string) *engine.JobRun {
	t.Helper()
	if workspace == "" {
		workspace = t.TempDir()
	}
	if cache == "" {
		cache = t.TempDir()
	}
	b := make([]byte, 6)
	rand.Read(b)
	id := "t-" + hex.EncodeToString(b)
	return &engine.JobRun{
		ID:         id,
		PipelineID: "p-" + id,
		WorkflowID: "w-" + id,
		JobName:    t.Name(),
		Spec:       spec,
		Env:        map[string]string{"CIRCLE_BRANCH": "main", "CIRCLE_SHA1": "abc123", "CI": "true"},
		Workspace:  workspace,
		CacheDir:   cache,
		OutputDir:  t.TempDir(),
	}
}

func image(steps ...workflows.Step) *workflows.JobSpec {
	return &workflows.JobSpec{
		Executor: workflows.ExecutorDocker,
		Docker:   []workflows.DockerImage{{Image: dockertest.Image}},
		Steps:    steps,
	}
}

func run(cmd string) workflows.Step {
	return workflows.Step{Run: &workflows.RunStep{Command: cmd}}
}

// logBuffer is a job log that tests can read while the job writes it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// seen is closed when the log first contains want.
	want string
	seen chan struct{}
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.buf.Write(p)
	if l.seen != nil && l.want != "" && strings.Contains(l.buf.String(), l.want) {
		close(l.seen)
		l.seen = nil
	}
	return n, err
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// runJob runs job to its end and checks that its containers are gone
// once the executor has removed them.
func runJob(t *testing.T, ctx context.Context, e *docker.Executor, cli client.APIClient, job *engine.JobRun, log *logBuffer) engine.JobResult {
	t.Helper()
	res, err := e.Run(ctx, job, log)
	if err != nil {
		t.Fatalf("Run: %v\nlog:\n%s", err, log)
	}
	e.Settle()
	if n := countLabelled(t, cli, docker.LabelAttempt+"="+job.ID); n != 0 {
		t.Errorf("%d containers, networks or volumes of attempt %s left after Run", n, job.ID)
	}
	return res
}

func statuses(res engine.JobResult) []string {
	var out []string
	for _, s := range res.Steps {
		out = append(out, s.Status)
	}
	return out
}

func TestStateKeptBetweenSteps(t *testing.T) {
	e, cli := setup(t, docker.Options{})
	tests := []struct {
		name string
		user string
		want []string
	}{
		{"root", "", []string{"state=kept", "pwd=/root/project", "uid=0", "sub=/root/project/sub", "cwd=/root/project", "printed by cat", "after-leftover"}},
		{"non-root user", dockertest.User, []string{"state=kept", "pwd=/home/circleci/project", "uid=1000", "sub=/home/circleci/project/sub", "cwd=/home/circleci/project", "printed by cat", "after-leftover"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := image(
				run("echo kept > state.txt\nmkdir -p sub && touch /tmp/marker"),
				run(`echo "state=$(cat state.txt)" && test -f /tmp/marker`),
				run(`echo "pwd=$(pwd)" && echo "uid=$(id -u)"`),
				workflows.Step{Run: &workflows.RunStep{Command: `echo "sub=$(pwd)"; echo "cwd=$CIRCLE_WORKING_DIRECTORY"`, WorkingDirectory: "sub"}},
				// A shell reads the command from a file, so any program can
				// be one.
				workflows.Step{Run: &workflows.RunStep{Command: "printed by cat", Shell: "cat"}},
				// A step is over when its command exits, even with a
				// process it started still holding its output; that
				// process is stopped.
				run("sleep 300 &"),
				run(`if ps | grep -v grep | grep -q "sleep 300"; then echo leftover-alive; else echo after-leftover; fi`),
			)
			spec.Docker[0].User = tt.user
			log := &logBuffer{}
			res := runJob(t, context.Background(), e, cli, newJob(t, spec, "", ""), log)
			if res.Status != workflows.StatusSuccess {
				t.Fatalf("status %s (%s), log:\n%s", res.Status, res.Reason, log)
			}
			for _, w := range tt.want {
				if !strings.Contains(log.String(), w+"\n") {
					t.Errorf("log lacks %q:\n%s", w, log)
				}
			}
		})
	}
}

func TestEnvironmentPrecedence(t *testing.T) {
	e, cli := setup(t, docker.Options{})
	spec := image(workflows.Step{Run: &workflows.RunStep{
		Command:     `echo "A=$A B=$B C=$C D=$D"`,
		Environment: map[string]string{"D": "step"},
	}})
	spec.Docker[0].Environment = map[string]string{"B": "image", "C": "image", "D": "image"}
	spec.Environment = map[string]string{"C": "job", "D": "job"}
	job := newJob(t, spec, "", "")
	job.Env = map[string]string{"A": "engine", "B": "engine", "C": "engine", "D": "engine"}
	log := &logBuffer{}
	res := runJob(t, context.Background(), e, cli, job, log)
	if res.Status != workflows.StatusSuccess || !strings.Contains(log.String(), "A=engine B=image C=job D=step\n") {
		t.Fatalf("status %s, log:\n%s", res.Status, log)
	}
}

func TestServiceReachedOnLocalhost(t *testing.T) {
	e, cli := setup(t, docker.Options{})
	spec := image(
		run(`for i in $(seq 100); do
  wget -qO- http://localhost:8080/index.html && wget -qO- http://web:8080/index.html && exit 0
  sleep 0.1
done
exit 1`),
		workflows.Step{Run: &workflows.RunStep{Command: "mkdir -p /tmp/bg && echo from-background > /tmp/bg/index.html && httpd -f -p 8081 -h /tmp/bg", Background: true}},
		run(`for i in $(seq 100); do wget -qO- http://localhost:8081/index.html && exit 0; sleep 0.1; done; exit 1`),
	)
	spec.Docker = append(spec.Docker, workflows.DockerImage{
		Image:       dockertest.Image,
		Name:        "web",
		User:        dockertest.User,
		Environment: map[string]string{"GREETING": "hello from the service"},
		Entrypoint:  []string{"/bin/sh", "-c"},
		Command:     []string{`mkdir -p /tmp/www && echo "$GREETING as $(id -un)" > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www`},
	})
	log := &logBuffer{}
	res := runJob(t, context.Background(), e, cli, newJob(t, spec, "", ""), log)
	if res.Status != workflows.StatusSuccess {
		t.Fatalf("status %s, log:\n%s", res.Status, log)
	}
	if !strings.Contains(log.String(), "from-background\n") {
		t.Errorf("background step's server not reached; log:\n%s", log)
	}
	if got := strings.Count(log.String(), "hello from the service as circleci\n"); got != 2 {
		t.Errorf("service answered %d times on localhost and web, want 2; log:\n%s", got, log)
	}
}

// closedLog is a job log that fails the test when written to after
// it was closed, as the engine closes a job's log once Run returned.
type closedLog struct {
	t *testing.T
	logBuffer
	closed bool // under logBuffer.mu
}

func (l *closedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		l.t.Errorf("written to after Run returned: %q", p)
	}
	return l.logBuffer.Write(p)
}

func (l *closedLog) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

// TestBackgroundOutputEndsWithRun has a background step print until its
// container goes: Run, which leaves the removal of a job's containers
// to the background, returns only once that output has ended.
func TestBackgroundOutputEndsWithRun(t *testing.T) {
	e, cli := setup(t, docker.Options{})
	spec := image(
		workflows.Step{Run: &workflows.RunStep{Command: "while :; do echo tick; sleep 0.01; done", Background: true}},
		run("sleep 0.3"),
	)
	log := &closedLog{t: t}
	job := newJob(t, spec, "", "")
	res, err := e.Run(context.Background(), job, log)
	log.close()
	if err != nil || res.Status != workflows.StatusSuccess {
		t.Fatalf("Run = %s, %v; log:\n%s", res.Status, err, log.String())
	}
	if !strings.Contains(log.String(), "tick\n") {
		t.Errorf("the background step's output is missing:\n%s", log.String())
	}
	e.Settle()
	time.Sleep(100 * time.Millisecond) // for a late write to show
	if n := countLabelled(t, cli, docker.LabelAttempt+"="+job.ID); n != 0 {
		t.Errorf("%d objects left", n)
	}
}

func TestWorkspaceHandedToNextJob(t *testing.T) {
	e, cli := setup(t, docker.Options{})
	ws := t.TempDir()
	first := image(
		run("mkdir -p out/deep && echo built > out/deep/app.txt && echo v1 > version && echo x > a.log && echo y > b.log"),
		workflows.Step{PersistToWorkspace: &workflows.PersistStep{Root: ".", Paths: []string{"out", "version", "*.log"}}},
	)
	log := &logBuffer{}
	if res := runJob(t, context.Background(), e, cli, newJob(t, first, ws, ""), log); res.Status != workflows.StatusSuccess {
		t.Fatalf("persisting job: %s, log:\n%s", res.Status, log)
	}
	second := image(
		workflows.Step{AttachWorkspace: &workflows.AttachStep{At: "/tmp/ws"}},
		run(`echo "got $(cat /tmp/ws/out/deep/app.txt) $(cat /tmp/ws/version) $(cat /tmp/ws/a.log /tmp/ws/b.log) owner=$(stat -c %U /tmp/ws/version)"`),
	)
	second.Docker[0].User = dockertest.User
	log = &logBuffer{}
	res := runJob(t, context.Background(), e, cli, newJob(t, second, ws, ""), log)
	if res.Status != workflows.StatusSuccess || !strings.Contains(log.String(), "got built v1 x\ny owner=circleci\n") {
		t.Fatalf("attaching job: %s, log:\n%s", res.Status, log)
	}
}

func TestCacheSaveRestore(t *testing.T) {
	e, cli := setup(t, docker.Options{})
	cache := t.TempDir()
	save := func(content string) *workflows.JobSpec {
		return image(
			run("echo lock-v1 > deps.lock && mkdir -p ~/deps && echo "+content+" > ~/deps/lib.txt"),
			workflows.Step{SaveCache: &workflows.SaveCacheStep{Key: `deps-{{ .Branch }}-{{ checksum "deps.lock" }}`, Paths: []string{"~/deps"}}},
		)
	}
	log := &logBuffer{}
	if res := runJob(t, context.Background(), e, cli, newJob(t, save("first"), "", cache), log); res.Status != workflows.StatusSuccess {
		t.Fatalf("first save: %s, log:\n%s", res.Status, log)
	}
	// Keys are immutable: a second save under the same key keeps the first.
	log = &logBuffer{}
	if res := runJob(t, context.Background(), e, cli, newJob(t, save("second"), "", cache), log); res.Status != workflows.StatusSuccess {
		t.Fatalf("second save: %s, log:\n%s", res.Status, log)
	}
	if !strings.Contains(log.String(), "cache already exists") {
		t.Errorf("second save did not say the key exists; log:\n%s", log)
	}
	restore := image(
		workflows.Step{RestoreCache: &workflows.RestoreCacheStep{Keys: []string{"deps-{{ .Branch }}-nomatch", "deps-{{ .Branch }}-"}}},
		run(`echo "restored $(cat ~/deps/lib.txt)"`),
	)
	log = &logBuffer{}
	res := runJob(t, context.Background(), e, cli, newJob(t, restore, "", cache), log)
	if res.Status != workflows.StatusSuccess || !strings.Contains(log.String(), "restored first\n") || !strings.Contains(log.String(), "Restored cache deps-main-") {
		t.Fatalf("restore: %s, log:\n%s", res.Status, log)
	}
}

func TestFailingStepThenAlways(t *testing.T) {
	e, cli := setup(t, docker.Options{})
	spec := image(
		run("mkdir -p reports && echo '<testsuite/>' > reports/junit.xml && echo partial > log.txt && exit 3"),
		run("echo must-not-run"),
		workflows.Step{Run: &workflows.RunStep{Command: "echo cleanup-ran", When: workflows.WhenAlways}},
		workflows.Step{Run: &workflows.RunStep{Command: "echo on-fail-ran", When: workflows.WhenOnFail}},
		workflows.Step{StoreArtifacts: &workflows.StoreArtifactsStep{Path: "log.txt", Destination: "logs/build.txt"}},
		workflows.Step{StoreTestResults: &workflows.StoreTestResultsStep{Path: "reports"}},
	)
	job := newJob(t, spec, "", "")
	log := &logBuffer{}
	res := runJob(t, context.Background(), e, cli, job, log)
	if res.Status != workflows.StatusFailed || res.ExitCode != 3 {
		t.Errorf("got %s exit %d, want failed exit 3", res.Status, res.ExitCode)
	}
	want := []string{"failed", "not_run", "success", "success", "success", "success"}
	if diff := cmp.Diff(want, statuses(res)); diff != "" {
		t.Errorf("step statuses (-want +got):\n%s\nlog:\n%s", diff, log)
	}
	if strings.Contains(log.String(), "must-not-run") || !strings.Contains(log.String(), "cleanup-ran") || !strings.Contains(log.String(), "on-fail-ran") {
		t.Errorf("log:\n%s", log)
	}
	for file, content := range map[string]string{
		"artifacts/logs/build.txt": "partial\n",
		"test-results/junit.xml":   "<testsuite/>\n",
	} {
		got, err := os.ReadFile(filepath.Join(job.OutputDir, file))
		if err != nil || string(got) != content {
			t.Errorf("%s: %q, %v; want %q", file, got, err, content)
		}
	}
}

func TestNoOutputTimeout(t *testing.T) {
	e, cli := setup(t, docker.Options{})
	spec := image(
		workflows.Step{Run: &workflows.RunStep{Command: "echo started; sleep 31 & sleep 32", NoOutputTimeout: 500 * time.Millisecond}},
		workflows.Step{Run: &workflows.RunStep{Command: `if ps | grep -v grep | grep -q "sleep 3[12]"; then echo still-running; exit 1; fi; echo killed`, When: workflows.WhenAlways}},
	)
	log := &logBuffer{}
	res := runJob(t, context.Background(), e, cli, newJob(t, spec, "", ""), log)
	if res.Status != workflows.StatusFailed || !strings.Contains(res.Reason, "no output") {
		t.Errorf("got %s %q, want failed for no output", res.Status, res.Reason)
	}
	if diff := cmp.Diff([]string{"failed", "success"}, statuses(res)); diff != "" {
		t.Errorf("step statuses (-want +got):\n%s\nlog:\n%s", diff, log)
	}
	if !strings.Contains(log.String(), "killed\n") {
		t.Errorf("the timed out step's processes survived; log:\n%s", log)
	}
}

func TestCancelMidStep(t *testing.T) {
	e, cli := setup(t, docker.Options{})
	spec := image(
		run("echo started; sleep 60"),
		workflows.Step{Run: &workflows.RunStep{Command: "echo always-ran", When: workflows.WhenAlways}},
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := &logBuffer{want: "started", seen: make(chan struct{})}
	seen := log.seen
	go func() {
		// Ends when the step has started, or the test is over.
		select {
		case <-seen:
			cancel()
		case <-ctx.Done():
		}
	}()
	res := runJob(t, ctx, e, cli, newJob(t, spec, "", ""), log)
	if res.Status != workflows.StatusCanceled {
		t.Errorf("got %s, want canceled; log:\n%s", res.Status, log)
	}
	if diff := cmp.Diff([]string{"canceled", "not_run"}, statuses(res)); diff != "" {
		t.Errorf("step statuses (-want +got):\n%s", diff)
	}
}

func TestMissingImageFailsFast(t *testing.T) {
	e, cli := setup(t, docker.Options{PullTimeout: 30 * time.Second})
	spec := image(run("true"))
	spec.Docker[0].Image = "slipway-test-missing:nope"
	log := &logBuffer{}
	job := newJob(t, spec, "", "")
	res, err := e.Run(context.Background(), job, log)
	if err == nil || res.Status != workflows.StatusFailed {
		t.Fatalf("got %s, %v; want a failed job and an error", res.Status, err)
	}
	if !strings.Contains(log.String(), "Pulling image slipway-test-missing:nope") || !strings.Contains(log.String(), `pull "slipway-test-missing:nope"`) {
		t.Errorf("log does not say the pull failed:\n%s", log)
	}
	e.Settle()
	if n := countLabelled(t, cli, docker.LabelAttempt+"="+job.ID); n != 0 {
		t.Errorf("%d objects left", n)
	}
}

func TestCheckout(t *testing.T) {
	e, cli := setup(t, docker.Options{})
	repo := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	os.MkdirAll(filepath.Join(repo, "src"), 0o755)
	os.WriteFile(filepath.Join(repo, "src", "main.go"), []byte("package main\n"), 0o644)
	git("add", ".")
	git("commit", "-qm", "first")
	rev := git("rev-parse", "HEAD")
	os.WriteFile(filepath.Join(repo, "src", "main.go"), []byte("uncommitted\n"), 0o644)

	tarball := filepath.Join(t.TempDir(), "src.tar.gz")
	writeTarball(t, tarball, map[string]string{"owner-repo-abc123/src/main.go": "package main\n"})

	notGzip := filepath.Join(t.TempDir(), "src.tar.gz")
	if err := os.WriteFile(notGzip, []byte("not a tarball"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A source that cannot be read fails the step with the reason; it
	// is not an error of the executor.
	tests := []struct {
		name   string
		source engine.Source
		reason string // of the failure; "" for success
	}{
		{"git", engine.Source{GitDir: repo, Revision: rev}, ""},
		{"tarball", engine.Source{Tarball: tarball}, ""},
		{"unknown revision", engine.Source{GitDir: repo, Revision: "0000000000000000000000000000000000000000"}, "checkout: git archive"},
		{"not a tarball", engine.Source{Tarball: notGzip}, "checkout: " + notGzip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := image(
				workflows.Step{Checkout: &workflows.CheckoutStep{}},
				run(`echo "$(cat src/main.go) owner=$(stat -c %U src/main.go)"; echo >> src/main.go`),
			)
			spec.Docker[0].User = dockertest.User
			job := newJob(t, spec, "", "")
			job.Source = tt.source
			log := &logBuffer{}
			res := runJob(t, context.Background(), e, cli, job, log)
			if tt.reason != "" {
				if res.Status != workflows.StatusFailed || !strings.Contains(res.Reason, tt.reason) {
					t.Fatalf("status %s, reason %q; want failed, %q", res.Status, res.Reason, tt.reason)
				}
				return
			}
			if res.Status != workflows.StatusSuccess || !strings.Contains(log.String(), "package main owner=circleci\n") {
				t.Fatalf("status %s, log:\n%s", res.Status, log)
			}
		})
	}
}

func writeTarball(t *testing.T, name string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "abc123"}})
	for n, c := range files {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(c))})
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

func TestSetupRemoteDocker(t *testing.T) {
	e, cli := setup(t, docker.Options{})
	spec := image(workflows.Step{SetupRemoteDocker: &workflows.SetupRemoteDockerStep{}}, run("echo never"))
	log := &logBuffer{}
	res := runJob(t, context.Background(), e, cli, newJob(t, spec, "", ""), log)
	if res.Status != workflows.StatusFailed || !strings.Contains(res.Reason, "setup_remote_docker") {
		t.Errorf("disabled: got %s %q", res.Status, res.Reason)
	}

	e = newExecutor(t, cli, docker.Options{RemoteDocker: true})
	spec = image(workflows.Step{SetupRemoteDocker: &workflows.SetupRemoteDockerStep{}}, run("test -S /var/run/docker.sock && echo socket-there"))
	log = &logBuffer{}
	res = runJob(t, context.Background(), e, cli, newJob(t, spec, "", ""), log)
	if res.Status != workflows.StatusSuccess || !strings.Contains(log.String(), "socket-there\n") {
		t.Errorf("enabled: got %s, log:\n%s", res.Status, log)
	}
}

func TestResourceClass(t *testing.T) {
	e, cli := setup(t, docker.Options{ResourceClasses: map[string]docker.Resources{
		"tiny": {CPUs: 0.5, Memory: 64 << 20},
		"vast": {CPUs: 4096, Memory: 64 << 20},
	}})
	spec := image(run("cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"))
	spec.ResourceClass = "tiny"
	log := &logBuffer{}
	res := runJob(t, context.Background(), e, cli, newJob(t, spec, "", ""), log)
	if res.Status != workflows.StatusSuccess || !strings.Contains(log.String(), "67108864\n") {
		t.Errorf("got %s, log:\n%s", res.Status, log)
	}
	// More CPUs than the engine has: the job gets them all.
	for range 2 {
		spec.ResourceClass = "vast"
		log = &logBuffer{}
		if res := runJob(t, context.Background(), e, cli, newJob(t, spec, "", ""), log); res.Status != workflows.StatusSuccess {
			t.Errorf("class above the engine's CPUs: got %s (%s), log:\n%s", res.Status, res.Reason, log)
		}
	}
	spec.ResourceClass = "huge"
	_, err := e.Run(context.Background(), newJob(t, spec, "", ""), &logBuffer{})
	if err == nil || !strings.Contains(err.Error(), `resource_class "huge"`) {
		t.Errorf("unknown class: %v", err)
	}
}

func TestCleanupRemovesLeftovers(t *testing.T) {
	e, cli := setup(t, docker.Options{})
	ctx := context.Background()
	id := "t-leftover-" + strings.ToLower(strings.ReplaceAll(time.Now().Format("150405.000000"), ".", ""))
	labels := map[string]string{docker.LabelAttempt: id}
	// What a crash leaves: a running container, a network and a volume.
	if _, err := cli.NetworkCreate(ctx, "slipway-"+id, network.CreateOptions{Labels: labels}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.VolumeCreate(ctx, volume.CreateOptions{Labels: labels}); err != nil {
		t.Fatal(err)
	}
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: dockertest.Image, Cmd: []string{"sleep", "60"}, Labels: labels}, nil, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := countLabelled(t, cli, docker.LabelAttempt+"="+id); n != 3 {
		t.Fatalf("set up %d leftovers, want 3", n)
	}
	left, err := e.Leftovers(ctx)
	if err != nil || !slices.Contains(left, id) {
		t.Errorf("Leftovers: %q, %v; want %s among them", left, err, id)
	}
	for range 2 {
		if err := e.Cleanup(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := countLabelled(t, cli, docker.LabelAttempt+"="+id); n != 0 {
		t.Errorf("%d leftovers after Cleanup", n)
	}
	if err := e.Cleanup(ctx, "never-seen"); err != nil {
		t.Errorf("Cleanup of an unknown attempt: %v", err)
	}
	if left, _ := e.Leftovers(ctx); slices.Contains(left, id) {
		t.Errorf("Leftovers after Cleanup: %q", left)
	}
}

// TestJobsIsolated runs a job whose primary serves HTTP while a job of
// another pipeline tries to reach it at its address; the same server is
// reached from within its own job. The pool keeps one network, which a
// first job leaves with a holder for the server's job; the second job
// runs on one created for it.
func TestJobsIsolated(t *testing.T) {
	e, cli := setup(t, docker.Options{NetworkPool: 1, HolderImage: holderImage(t, dockertest.RequireImage(t))})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if res := runJob(t, ctx, e, cli, newJob(t, image(run("true")), "", ""), &logBuffer{}); res.Status != workflows.StatusSuccess {
		t.Fatalf("first job: %s", res.Status)
	}
	e.WaitHolders()
	server := image(
		workflows.Step{Run: &workflows.RunStep{Command: "mkdir -p /tmp/www && echo secret-page > /tmp/www/index.html && httpd -f -p 8080 -h /tmp/www", Background: true}},
		run(`for i in $(seq 100); do wget -q -O- http://$(hostname -i):8080/index.html && break; sleep 0.1; done; echo serving; sleep 60`),
	)
	serverJob := newJob(t, server, "", "")
	// "serving\n", not "serving": the step's header line holds that.
	log := &logBuffer{want: "serving\n", seen: make(chan struct{})}
	serving := log.seen
	done := make(chan engine.JobResult, 1)
	go func() {
		// Ends when the test cancels the job.
		res, _ := e.Run(ctx, serverJob, log)
		done <- res
	}()
	select {
	case <-serving:
	case res := <-done:
		t.Fatalf("server job ended: %s, log:\n%s", res.Status, log)
	}
	if !strings.Contains(log.String(), "secret-page") {
		t.Fatalf("the server job could not reach its own server; log:\n%s", log)
	}
	addr, netID := jobAddress(t, cli, serverJob.ID, true)
	n, err := cli.NetworkInspect(ctx, netID, network.InspectOptions{})
	if err != nil || len(n.IPAM.Config) == 0 {
		t.Fatalf("server network: %+v, %v", n, err)
	}
	subnet := netip.MustParsePrefix(n.IPAM.Config[0].Subnet)
	client := image(run(fmt.Sprintf(`echo "ip=$(hostname -i)"; if timeout 2 wget -q -O- http://%s:8080/index.html; then echo reached; else echo unreachable; fi`, addr)))
	clog := &logBuffer{}
	res := runJob(t, context.Background(), e, cli, newJob(t, client, "", ""), clog)
	if res.Status != workflows.StatusSuccess || !strings.Contains(clog.String(), "unreachable\n") || strings.Contains(clog.String(), "secret-page") {
		t.Errorf("a job reached another pipeline's service at %s: %s, log:\n%s", addr, res.Status, clog)
	}
	_, ip, _ := strings.Cut(clog.String(), "\nip=")
	ip, _, _ = strings.Cut(ip, "\n")
	if a, err := netip.ParseAddr(ip); err != nil || subnet.Contains(a) {
		t.Errorf("the second job's address %q is on the first job's network %s", ip, subnet)
	}
	cancel()
	if res := <-done; res.Status != workflows.StatusCanceled {
		t.Errorf("server job: %s", res.Status)
	}
}

// jobAddress returns the address and network of the attempt's primary
// container, which has them itself or through the holder whose network
// namespace it joined (held says which is wanted).
func jobAddress(t *testing.T, cli client.APIClient, attemptID string, held bool) (addr, netID string) {
	t.Helper()
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", docker.LabelAttempt+"="+attemptID))
	cs, err := cli.ContainerList(ctx, container.ListOptions{Filters: f})
	if err != nil || len(cs) != 1 {
		t.Fatalf("attempt's containers: %v, %v", cs, err)
	}
	c, err := cli.ContainerInspect(ctx, cs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if mode := c.HostConfig.NetworkMode; mode.IsContainer() != held {
		t.Fatalf("primary's network mode %q; want a holder's: %v", mode, held)
	} else if held {
		if c, err = cli.ContainerInspect(ctx, mode.ConnectedContainer()); err != nil {
			t.Fatal(err)
		}
		if c.Config.Labels[docker.LabelPool] == "" {
			t.Fatalf("the primary joined %s, not a holder of the pool", c.ID)
		}
	}
	for _, n := range c.NetworkSettings.Networks {
		addr, netID = n.IPAddress, n.NetworkID
	}
	if addr == "" {
		t.Fatal("the primary has no address")
	}
	return addr, netID
}

// TestHolderSingleUse runs jobs one after the other on a pool of one
// network: each after the first joins a holder started for it, which
// goes with it, so that none finds what the one before wrote in its
// /etc/hosts.
func TestHolderSingleUse(t *testing.T) {
	e, cli := setup(t, docker.Options{NetworkPool: 1, HolderImage: holderImage(t, dockertest.RequireImage(t))})
	for i := range 3 {
		e.WaitHolders()
		// "marked\n", not "marked": the step's header line holds that.
		log := &logBuffer{want: "marked\n", seen: make(chan struct{})}
		marked := log.seen
		job := newJob(t, image(run(`echo "found=$(grep -c slipway-mark /etc/hosts)"; echo "127.0.0.2 slipway-mark" >> /etc/hosts && echo marked; sleep 30`)), "", "")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan engine.JobResult, 1)
		go func() {
			// Ends when the job is canceled.
			res, _ := e.Run(ctx, job, log)
			done <- res
		}()
		select {
		case <-marked:
		case res := <-done:
			t.Fatalf("job %d ended: %s, log:\n%s", i, res.Status, log)
		}
		jobAddress(t, cli, job.ID, i > 0)
		cancel()
		if res := <-done; res.Status != workflows.StatusCanceled {
			t.Errorf("job %d: %s", i, res.Status)
		}
		if !strings.Contains(log.String(), "found=0\n") {
			t.Errorf("job %d found an earlier job's hosts entry; log:\n%s", i, log)
		}
		e.Settle()
		if n := countLabelled(t, cli, docker.LabelAttempt+"="+job.ID); n != 0 {
			t.Errorf("job %d left %d things", i, n)
		}
		e.WaitHolders()
		if n := countLabelled(t, cli, docker.LabelOwner+"="+docker.Owner()); n != 2 {
			t.Errorf("after job %d: %d things of the pool, want its network and a new holder", i, n)
		}
	}
}

// TestCleanupRemovesHolder leaves what a crash leaves of an attempt that
// had a holder: its primary, in the holder's network namespace, and the
// holder, labelled with the pool only. Cleanup removes both.
func TestCleanupRemovesHolder(t *testing.T) {
	e, cli := setup(t, docker.Options{})
	ctx := context.Background()
	id := newJob(t, image(), "", "").ID
	start := func(labels map[string]string, netMode string) string {
		t.Helper()
		c, err := cli.ContainerCreate(ctx, &container.Config{Image: dockertest.Image, Cmd: []string{"sleep", "60"}, Labels: labels},
			&container.HostConfig{NetworkMode: container.NetworkMode(netMode)}, nil, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}) })
		if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	// Owned by this process, so that another's start-up sweep (another
	// test binary on the same engine) leaves it alone.
	holder := start(map[string]string{docker.LabelPool: "t-crashed", docker.LabelOwner: docker.Owner()}, "")
	start(map[string]string{docker.LabelAttempt: id}, "container:"+holder)
	if err := e.Cleanup(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerInspect(ctx, holder); !client.IsErrNotFound(err) {
		t.Errorf("the attempt's holder is still there (%v)", err)
	}
}

// poolNetworks lists the networks of this process's executors' pools.
func poolNetworks(t *testing.T, cli client.APIClient) []string {
	t.Helper()
	// This process's only: other processes on the engine (other test
	// binaries, a `slipway run`) start and close pools of their own.
	f := filters.NewArgs(filters.Arg("label", docker.LabelPool), filters.Arg("label", docker.LabelOwner+"="+docker.Owner()))
	ns, err := cli.NetworkList(context.Background(), network.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range ns {
		ids = append(ids, n.ID)
	}
	slices.Sort(ids)
	return ids
}

// TestNetworkReused runs jobs one after the other, each once the pool has
// started its holder for the next: they take turns on one network, which
// Close removes; one removed behind the pool's back is replaced. (Jobs
// that follow each other without a pause take turns on two: one warms
// while the other is used.)
func TestNetworkReused(t *testing.T) {
	cli := dockertest.RequireImage(t)
	before := poolNetworks(t, cli)
	e := docker.New(cli, docker.Options{HolderImage: holderImage(t, cli)})
	var first []string
	for i := range 3 {
		e.WaitHolders()
		log := &logBuffer{}
		if res := runJob(t, context.Background(), e, cli, newJob(t, image(run("true")), "", ""), log); res.Status != workflows.StatusSuccess {
			t.Fatalf("job %d: %s, log:\n%s", i, res.Status, log)
		}
		now := poolNetworks(t, cli)
		if len(now) != len(before)+1 {
			t.Fatalf("after job %d: %d pool networks, want %d", i, len(now), len(before)+1)
		}
		if first == nil {
			first = now
		} else if !slices.Equal(now, first) {
			t.Errorf("after job %d: pool networks %q, want %q", i, now, first)
		}
	}
	// An idle network removed behind the pool's back (by hand, or by
	// another executor's sweep), its holder first, is replaced.
	e.WaitHolders()
	mine := filters.NewArgs(filters.Arg("label", docker.LabelPool), filters.Arg("label", docker.LabelOwner+"="+docker.Owner()))
	holders, err := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: mine})
	if err != nil || len(holders) != 1 {
		t.Fatalf("holders: %v, %v; want one", holders, err)
	}
	if err := cli.ContainerRemove(context.Background(), holders[0].ID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	for _, id := range first {
		if !slices.Contains(before, id) {
			if err := cli.NetworkRemove(context.Background(), id); err != nil {
				t.Fatal(err)
			}
		}
	}
	log := &logBuffer{}
	if res := runJob(t, context.Background(), e, cli, newJob(t, image(run("true")), "", ""), log); res.Status != workflows.StatusSuccess {
		t.Fatalf("job after its network was removed: %s, log:\n%s", res.Status, log)
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := poolNetworks(t, cli); !slices.Equal(after, before) {
		t.Errorf("after Close: pool networks %q, want %q", after, before)
	}
	if _, err := e.Run(context.Background(), newJob(t, image(run("true")), "", ""), &logBuffer{}); err == nil {
		t.Error("Run after Close succeeded")
	}
}

// TestPoolLeftoversSwept leaves what a crashed process leaves, an idle
// network of its pool, beside a network of another pool that a container
// uses: an executor's first job removes the first and keeps the second.
func TestPoolLeftoversSwept(t *testing.T) {
	e, cli := setup(t, docker.Options{})
	ctx := context.Background()
	dead, err := cli.NetworkCreate(ctx, "slipway-pool-t-dead", network.CreateOptions{Labels: map[string]string{docker.LabelPool: "t-dead"}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.NetworkRemove(ctx, dead.ID)
	busy, err := cli.NetworkCreate(ctx, "slipway-pool-t-busy", network.CreateOptions{Labels: map[string]string{docker.LabelPool: "t-busy"}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.NetworkRemove(ctx, busy.ID)
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: dockertest.Image, Cmd: []string{"sleep", "60"}}, &container.HostConfig{NetworkMode: container.NetworkMode(busy.ID)}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	// Networks of other processes' pools: idle, they are swept only when
	// their owner is gone.
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	owned := map[string]string{
		"live":       host + ":1",
		"exited":     host + ":" + fmt.Sprint(exited.Process.Pid),
		"other-host": "elsewhere.example:" + fmt.Sprint(exited.Process.Pid),
	}
	ids := map[string]string{}
	for name, owner := range owned {
		n, err := cli.NetworkCreate(ctx, "slipway-pool-t-"+name, network.CreateOptions{Labels: map[string]string{docker.LabelPool: "t-" + name, docker.LabelOwner: owner}})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.NetworkRemove(ctx, n.ID)
		ids[name] = n.ID
	}
	// And an attempt's container: a dead process's goes, a live one's stays.
	attempts := map[string]string{}
	for _, name := range []string{"live", "exited"} {
		c, err := cli.ContainerCreate(ctx, &container.Config{Image: dockertest.Image, Cmd: []string{"true"},
			Labels: map[string]string{docker.LabelAttempt: "t-" + name, docker.LabelOwner: owned[name]}}, nil, nil, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		defer cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		attempts[name] = c.ID
	}
	log := &logBuffer{}
	if res := runJob(t, ctx, e, cli, newJob(t, image(run("true")), "", ""), log); res.Status != workflows.StatusSuccess {
		t.Fatalf("job: %s, log:\n%s", res.Status, log)
	}
	if _, err := cli.ContainerInspect(ctx, attempts["exited"]); !client.IsErrNotFound(err) {
		t.Errorf("a dead process's attempt container is still there (%v)", err)
	}
	if _, err := cli.ContainerInspect(ctx, attempts["live"]); err != nil {
		t.Errorf("a live process's attempt container was removed: %v", err)
	}
	for _, gone := range []string{dead.ID, ids["exited"]} {
		if _, err := cli.NetworkInspect(ctx, gone, network.InspectOptions{}); !client.IsErrNotFound(err) {
			t.Errorf("a dead pool's network %s is still there (%v)", gone, err)
		}
	}
	for _, name := range []string{"live", "other-host"} {
		if _, err := cli.NetworkInspect(ctx, ids[name], network.InspectOptions{}); err != nil {
			t.Errorf("the network of a pool owned by %s was removed: %v", owned[name], err)
		}
	}
	if _, err := cli.NetworkInspect(ctx, busy.ID, network.InspectOptions{}); err != nil {
		t.Errorf("the busy network was removed: %v", err)
	}
}

// TestDeadAttemptsSweptWithoutPool gives an executor that keeps no pool
// (its jobs go on the engine's default bridge, as in `slipway run`) the
// container of an attempt whose process died, beside one of a live
// process: its first job has the first removed, by Close at the latest,
// and keeps the second.
func TestDeadAttemptsSweptWithoutPool(t *testing.T) {
	cli := dockertest.RequireImage(t)
	e := docker.New(cli, docker.Options{Network: docker.DefaultNetwork})
	ctx := context.Background()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	owners := map[string]string{"live": host + ":1", "exited": host + ":" + fmt.Sprint(exited.Process.Pid)}
	ids := map[string]string{}
	for name, o := range owners {
		c, err := cli.ContainerCreate(ctx, &container.Config{Image: dockertest.Image, Cmd: []string{"true"},
			Labels: map[string]string{docker.LabelAttempt: "t-" + name, docker.LabelOwner: o}}, nil, nil, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		defer cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		ids[name] = c.ID
	}
	job := newJob(t, image(run("true")), "", "")
	if res, err := e.Run(ctx, job, &logBuffer{}); err != nil || res.Status != workflows.StatusSuccess {
		t.Fatalf("job: %s, %v", res.Status, err)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerInspect(ctx, ids["exited"]); !client.IsErrNotFound(err) {
		t.Errorf("a dead process's attempt container is still there (%v)", err)
	}
	if _, err := cli.ContainerInspect(ctx, ids["live"]); err != nil {
		t.Errorf("a live process's attempt container was removed: %v", err)
	}
	e.Settle()
	if n := countLabelled(t, cli, docker.LabelAttempt+"="+job.ID); n != 0 {
		t.Errorf("%d things of the job left after Close", n)
	}
}

// fakeRegistry speaks enough of the registry protocol for a pull to ask
// for credentials and then fail: it wants Basic auth, records what it
// got, and knows no manifest.
func fakeRegistry(t *testing.T) (host string, got func() []string) {
	t.Helper()
	var mu sync.Mutex
	var auths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			mu.Lock()
			auths = append(auths, a)
			mu.Unlock()
		} else {
			w.Header().Set("WWW-Authenticate", `Basic realm="slipway-test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v2/" {
			w.Write([]byte("{}"))
			return
		}
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(auths)
	}
}

func TestPullWithCredentials(t *testing.T) {
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	tests := []struct {
		name      string
		imageAuth *workflows.RegistryAuth
		server    *workflows.RegistryAuth
		want      string
	}{
		{"image auth", &workflows.RegistryAuth{Username: "img", Password: "img-secret"}, nil, basic("img", "img-secret")},
		{"server config", nil, &workflows.RegistryAuth{Username: "srv", Password: "srv-secret"}, basic("srv", "srv-secret")},
		{"image auth wins", &workflows.RegistryAuth{Username: "img", Password: "s"}, &workflows.RegistryAuth{Username: "srv", Password: "s"}, basic("img", "s")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, got := fakeRegistry(t)
			opts := docker.Options{PullTimeout: 30 * time.Second}
			if tt.server != nil {
				opts.Registries = map[string]workflows.RegistryAuth{host: *tt.server}
			}
			e, _ := setup(t, opts)
			spec := image(run("true"))
			spec.Docker[0].Image = host + "/slipway/app:1"
			spec.Docker[0].Auth = tt.imageAuth
			log := &logBuffer{}
			res, err := e.Run(context.Background(), newJob(t, spec, "", ""), log)
			if err == nil || res.Status != workflows.StatusFailed {
				t.Fatalf("got %s, %v; want a failed pull", res.Status, err)
			}
			if !strings.Contains(log.String(), "Pulling image "+spec.Docker[0].Image) || !strings.Contains(log.String(), "pull ") {
				t.Errorf("log does not tell the pull failed:\n%s", log)
			}
			auths := got()
			if len(auths) == 0 || !slices.Contains(auths, tt.want) {
				t.Errorf("registry got credentials %q, want %q", auths, tt.want)
			}
			if strings.Contains(log.String(), "secret") {
				t.Errorf("log shows a password:\n%s", log)
			}
		})
	}
}

// timedLog records when each complete line reached it.
type timedLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	times map[string]time.Time // first arrival of each line
}

func (l *timedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.times == nil {
		l.times = map[string]time.Time{}
	}
	l.buf.Write(p)
	for _, line := range strings.SplitAfter(string(p), "\n") {
		if _, ok := l.times[line]; !ok {
			l.times[line] = time.Now()
		}
	}
	return len(p), nil
}

// TestOutputStreams checks that a run step's output reaches the log a
// line at a time while the step runs, and that a last line without a
// newline is ended when the step ends rather than joined to the next
// step's header.
func TestOutputStreams(t *testing.T) {
	e, cli := setup(t, docker.Options{})
	spec := image(
		run(`echo first; sleep 2; echo err-line >&2; printf 'no newline'`),
		run(`echo next`),
	)
	log := &timedLog{}
	job := newJob(t, spec, "", "")
	res, err := e.Run(context.Background(), job, log)
	if err != nil || res.Status != workflows.StatusSuccess {
		t.Fatalf("Run = %+v, %v; log:\n%s", res, err, log.buf.String())
	}
	e.Settle()
	if n := countLabelled(t, cli, docker.LabelAttempt+"="+job.ID); n != 0 {
		t.Errorf("%d objects left", n)
	}
	got, ok := log.times["first\n"]
	if !ok {
		t.Fatalf("log lacks the line \"first\" whole, as one write:\n%q", log.buf.String())
	}
	if lag := res.Steps[0].Finished.Sub(got); lag < time.Second {
		t.Errorf("\"first\" reached the log %v before the step ended, want about 2s: it was held back", lag)
	}
	if !strings.Contains(log.buf.String(), "err-line\nno newline\n==> echo next\nnext\n") {
		t.Errorf("log:\n%q", log.buf.String())
	}
}

// nopCloser lets a test's buffer stand as the log the engine closes.
type nopCloser struct{ *logBuffer }

func (nopCloser) Close() error { return nil }

// TestSecretSplitAcrossStreamsIsMasked prints a secret in two halves on
// one line, the first on stdout and the rest on stderr, through the
// engine's masking writer: the log must show the line masked, as the
// local executor's log does, where both streams share one pipe.
func TestSecretSplitAcrossStreamsIsMasked(t *testing.T) {
	e, cli := setup(t, docker.Options{})
	const secret = "s3cr3t-t0ken-value"
	spec := image(run(`printf 'token=%s' "${SECRET%-*}"; printf -- '-%s\n' "${SECRET##*-}" >&2; echo after`))
	job := newJob(t, spec, "", "")
	job.Env["SECRET"] = secret
	log := &logBuffer{}
	masked := engine.NewMaskingWriter(nopCloser{log}, []string{secret})
	res, err := e.Run(context.Background(), job, masked)
	if err != nil {
		t.Fatalf("Run: %v\nlog:\n%s", err, log)
	}
	if err := masked.Close(); err != nil {
		t.Fatal(err)
	}
	e.Settle()
	if n := countLabelled(t, cli, docker.LabelAttempt+"="+job.ID); n != 0 {
		t.Errorf("%d containers, networks or volumes of attempt %s left after Run", n, job.ID)
	}
	if res.Status != workflows.StatusSuccess {
		t.Fatalf("status %s (%s), log:\n%s", res.Status, res.Reason, log)
	}
	if got := log.String(); strings.Contains(got, "s3cr3t") || strings.Contains(got, "value") || !strings.Contains(got, "token=********\nafter\n") {
		t.Errorf("the secret is not masked whole on its line:\n%s", got)
	}
}
