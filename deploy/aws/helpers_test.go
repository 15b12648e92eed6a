package aws_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"

	"github.com/slipway-ci/slipway/deploy/aws"
	"github.com/slipway-ci/slipway/deploy/aws/awstest"
	"github.com/slipway-ci/slipway/executors"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// sha is the commit the steps ship.
const sha = "3f2a9c1d5e6f708192a3b4c5d6e7f8091a2b3c4d"

// loadOptions keep the SDK from reading this machine's AWS set-up: no
// shared files, no instance metadata, and retries without waiting.
func loadOptions() []func(*config.LoadOptions) error {
	return []func(*config.LoadOptions) error{
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
		config.WithEC2IMDSClientEnableState(imds.ClientDisabled),
		config.WithRetryer(func() awssdk.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
				o.RateLimiter = ratelimit.None
			})
		}),
	}
}

// clearAWSEnv hides the process's AWS variables from the test: the
// runner would take them as the server's configuration.
func clearAWSEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
		}
	}
}

// harness is a runner pointed at a fake AWS through the job's
// environment, as a job's context points it, with the job's files in a
// folder.
type harness struct {
	t      *testing.T
	fake   *awstest.Fake
	runner *aws.Runner
	docker *countingDocker // nil without Docker
	dir    string          // the job's working directory
	env    map[string]string
}

func newHarness(t *testing.T, docker aws.Docker, opts ...awstest.Option) *harness {
	t.Helper()
	clearAWSEnv(t)
	h := &harness{t: t, fake: awstest.New(t, opts...), dir: filepath.Join(t.TempDir(), "app")}
	if err := os.MkdirAll(h.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h.env = map[string]string{
		"AWS_ACCESS_KEY_ID": awstest.AccessKeyID, "AWS_SECRET_ACCESS_KEY": awstest.SecretAccessKey,
		"AWS_REGION": h.fake.Region(), "AWS_ENDPOINT_URL": h.fake.Endpoint(),
		"CIRCLE_SHA1": sha,
	}
	ro := aws.Options{LoadOptions: loadOptions(), Poll: 5 * time.Millisecond}
	if docker != nil {
		h.docker = &countingDocker{Docker: docker}
		ro.Docker = h.docker
	}
	h.runner = aws.New(ro)
	return h
}

// write puts files in the job's working directory.
func (h *harness) write(files map[string]string) {
	h.t.Helper()
	for name, content := range files {
		p := filepath.Join(h.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			h.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
}

// step is one step to run: its command, parameters, and the artifacts a
// rollback restores.
type step struct {
	command string
	params  map[string]string
	restore engine.Outputs
}

// run runs a step as an executor would, with its parameters expanded as
// the engine expands them, and returns its outputs and log.
func (h *harness) run(ctx context.Context, s step) (engine.Outputs, string, error) {
	h.t.Helper()
	log := &syncBuffer{}
	out, err := h.runTo(ctx, s, log)
	return out, log.String(), err
}

func (h *harness) runTo(ctx context.Context, s step, log io.Writer) (engine.Outputs, error) {
	params := map[string]string{}
	for k, v := range s.params {
		params[k] = engine.ExpandEnv(v, h.env)
	}
	job := &engine.JobRun{ID: "att-1", PipelineID: "p-1", JobName: "deploy", Env: h.env, Restore: s.restore}
	files := executors.HostFiles{Resolve: func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(h.dir, p)
	}}
	return h.runner.RunNative(ctx, &engine.NativeRun{Job: job, Env: h.env, Files: files, Log: log,
		Step: &workflows.NativeStep{Orb: engine.OrbAWS, Command: s.command, Params: params}})
}

// ctx is a test's context, ended well inside go test's timeout.
func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// syncBuffer is a log that a test may read while a step writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitLog waits until the log holds text.
func waitLog(t *testing.T, log *syncBuffer, text string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(log.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("the log never said %q:\n%s", text, log.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// countingDocker counts the builds and pushes it passes on to an engine.
type countingDocker struct {
	aws.Docker
	mu     sync.Mutex
	builds int
	pushes []string
}

func (c *countingDocker) ImageBuild(ctx context.Context, r io.Reader, o build.ImageBuildOptions) (build.ImageBuildResponse, error) {
	c.mu.Lock()
	c.builds++
	c.mu.Unlock()
	return c.Docker.ImageBuild(ctx, r, o)
}

func (c *countingDocker) ImagePush(ctx context.Context, ref string, o image.PushOptions) (io.ReadCloser, error) {
	c.mu.Lock()
	c.pushes = append(c.pushes, ref)
	c.mu.Unlock()
	return c.Docker.ImagePush(ctx, ref, o)
}

func (c *countingDocker) counts() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.builds, len(c.pushes)
}

// calls counts the calls of one operation that succeeded.
func calls(fake *awstest.Fake, service, op string) int {
	n := 0
	for _, c := range fake.CallsTo(service, op) {
		if c.ErrorCode == "" {
			n++
		}
	}
	return n
}

// wantErr fails t unless err's text holds every part.
func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one saying %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q\nlacks %q", err, p)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
