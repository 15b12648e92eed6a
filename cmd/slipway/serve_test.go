package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slipway-ci/slipway/config"
	"github.com/slipway-ci/slipway/executors/docker/dockertest"
	"github.com/slipway-ci/slipway/forge/forgetest"
	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows/engine"
)

const webhookSecret = "e2e-webhook-secret"

// serverConfig is a slipway.yml for a test: the fake GitHub, the app
// backend of acme/backend, everything else under dir.
func serverConfig(t *testing.T, gh *forgetest.Server, dir, executor string) *config.Config {
	t.Helper()
	text := fmt.Sprintf(`
http: {addr: "127.0.0.1:0", public_url: "https://slipway.example.com"}
data_dir: %q
executor: %s
local: {allow_root: true}
shutdown_grace: 5s
github:
  token: ${GITHUB_TOKEN}
  webhook_secret: %s
  api_url: %s
contexts:
  aws: {env: {AWS_REGION: eu-west-1}}
apps:
  backend:
    repo: acme/backend
    environments:
      staging: {}
      production: {approvers: [U0RELEASE]}
`, dir, executor, webhookSecret, gh.URL)
	env := func(k string) (string, bool) {
		if k == "GITHUB_TOKEN" {
			return gh.Token, true
		}
		return "", false
	}
	cfg, err := config.Parse("slipway.yml", []byte(text), env, dir)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startServer runs a server in-process on a random port until the test ends.
func startServer(t *testing.T, cfg *config.Config, opts ServerOptions) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.Listener = ln
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	opts.RetryMin, opts.RetryMax = 20*time.Millisecond, 200*time.Millisecond
	s, err := NewServer(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return s
}

// testWriter sends a server's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// pushPayload is GitHub's push event for a branch's new head, from its
// real example payload with the repository and commit replaced.
func pushPayload(t *testing.T, repo, branch, sha string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../testdata/github-webhooks/push.with-new-branch.json")
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	p["ref"], p["after"] = "refs/heads/"+branch, sha
	r := p["repository"].(map[string]any)
	r["full_name"], r["name"] = repo, strings.Split(repo, "/")[1]
	out, _ := json.Marshal(p)
	return out
}

// deliver posts a signed webhook delivery and returns the answer's status.
func deliver(t *testing.T, addr, event, id string, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/github", bytes.NewReader(body))
	m := hmac.New(sha256.New, []byte(webhookSecret))
	m.Write(body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", id)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitStatuses waits until cond holds for the statuses GitHub got.
func waitStatuses(t *testing.T, gh *forgetest.Server, repo string, cond func([]forgetest.Status) bool) []forgetest.Status {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := gh.Statuses(repo)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("statuses never got there; GitHub has %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get fetches path from the server with the given cookies, following no
// redirect.
func get(t *testing.T, addr, path string, cookies []*http.Cookie) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// openLink opens a link slipway posted (at its public URL) on the
// server, as a browser would: the link's token becomes a cookie, then
// the page.
func openLink(t *testing.T, addr, link string) (int, string) {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+u.RequestURI(), nil)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		return resp.StatusCode, "the link did not redirect"
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	return get(t, addr, u.ResolveReference(loc).RequestURI(), resp.Cookies())
}

// final maps each status context to its latest state.
func final(st []forgetest.Status) map[string]string {
	m := map[string]string{}
	for _, s := range st {
		m[s.Context] = s.State
	}
	return m
}

// A push to the seed repository's feature branch, signed and delivered
// to a server started in-process, runs its pipeline with the local
// executor (the commit's source fetched from GitHub as a tarball) and
// posts each job's status, pending then success; a redelivery starts
// nothing new.
func TestServeRunsAPushedCommit(t *testing.T) {
	gh := forgetest.New(t)
	sha := gh.AddCommitFromDir("acme/backend", "feature/login", "../../testdata/seed")
	cfg := serverConfig(t, gh, t.TempDir(), "local")
	s := startServer(t, cfg, ServerOptions{})
	body := pushPayload(t, "acme/backend", "feature/login", sha)
	if code := deliver(t, s.Addr(), "push", "d-1", body); code != http.StatusAccepted {
		t.Fatalf("delivery answered %d", code)
	}
	want := map[string]string{"slipway/build-test-deploy/build": "success", "slipway/build-test-deploy/test": "success"}
	st := waitStatuses(t, gh, "acme/backend", func(st []forgetest.Status) bool { return cmp.Equal(want, final(st)) })
	var seq []string
	for _, s := range st {
		if s.SHA != sha || s.TargetURL == "" || !strings.HasPrefix(s.TargetURL, "https://slipway.example.com/pipelines/") {
			t.Errorf("status %+v", s)
		}
		seq = append(seq, s.Context[len("slipway/build-test-deploy/"):]+" "+s.State)
	}
	if diff := cmp.Diff([]string{"build pending", "build success", "test pending", "test success"}, seq); diff != "" {
		t.Errorf("statuses in order (-want +got):\n%s", diff)
	}
	if code := deliver(t, s.Addr(), "push", "d-1", body); code != http.StatusOK {
		t.Errorf("redelivery answered %d", code)
	}
	if code := deliver(t, s.Addr(), "ping", "d-2", []byte(`{"zen":"Keep it logically awesome."}`)); code != http.StatusOK {
		t.Errorf("ping answered %d", code)
	}
	if code, body := get(t, s.Addr(), "/healthz", nil); code != http.StatusOK {
		t.Errorf("healthz: %d %s", code, body)
	}
	if code, body := get(t, s.Addr(), "/readyz", nil); code != http.StatusOK || !strings.Contains(body, "ok   store\nok   engine\n") {
		t.Errorf("readyz: %d %s", code, body)
	}
	// The dashboard is closed, but the status's link opens its pipeline.
	if code, _ := get(t, s.Addr(), "/pipelines", nil); code != http.StatusUnauthorized {
		t.Errorf("the dashboard without signing in: %d", code)
	}
	code, page := openLink(t, s.Addr(), st[len(st)-1].TargetURL)
	if code != http.StatusOK || !strings.Contains(page, "feature/login") || !strings.Contains(page, "test") {
		t.Errorf("the status's link: %d %s", code, page)
	}
	_, metrics := get(t, s.Addr(), "/metrics", nil)
	for _, want := range []string{
		`slipway_pipelines_finished_total{app="backend",status="success"} 1`,
		`slipway_jobs_finished_total{app="backend",status="success"} 2`,
		`slipway_outbox_deliveries_total{consumer="github",result="delivered"}`,
		`slipway_store_transaction_seconds_count`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(gh.Statuses("acme/backend")); n != len(st) {
		t.Errorf("after the redelivery, %d statuses (was %d)", n, len(st))
	}
	if n := len(gh.CallsTo("GET", "/repos/acme/backend/tarball/*")); n != 1 {
		t.Errorf("the tarball was fetched %d times for two jobs of one commit", n)
	}
}

// A commit whose config cannot be planned starts no job: the commit gets
// one `slipway` status in error saying where and why.
func TestServeConfigErrorAtTheCommit(t *testing.T) {
	gh := forgetest.New(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "repo", ".circleci"), 0o755)
	os.WriteFile(filepath.Join(dir, "repo", ".circleci", "config.yml"), []byte("version: 2.1\njobs:\n  build:\n    docker: [{image: x}]\n    steps: [{nope: 1}]\nworkflows: {w: {jobs: [build]}}\n"), 0o644)
	sha := gh.AddCommitFromDir("acme/backend", "main", filepath.Join(dir, "repo"))
	s := startServer(t, serverConfig(t, gh, filepath.Join(dir, "data"), "local"), ServerOptions{})
	deliver(t, s.Addr(), "push", "d-1", pushPayload(t, "acme/backend", "main", sha))
	st := waitStatuses(t, gh, "acme/backend", func(st []forgetest.Status) bool { return len(st) > 0 })
	if len(st) != 1 || st[0].Context != "slipway" || st[0].State != "error" || !strings.HasPrefix(st[0].Description, ".circleci/config.yml:5:") {
		t.Errorf("statuses %+v", st)
	}
}

func TestServeCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	os.WriteFile(good, []byte("data_dir: "+dir+"\ngithub: {token: t, webhook_secret: s}\napps: {backend: {repo: acme/backend}}\n"), 0o644)
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("data_dir: "+dir+"\ngithub: {token: t}\napps:\n  backend:\n    repo: acme/backend\n    environments:\n      production: {aprovers: [U1]}\n"), 0o644)
	for _, tt := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"serve", "--check", "--config", good}, 0, "valid (1 apps)"},
		{[]string{"serve", "--check", "--config", bad}, 1, `bad.yml:7:20: apps.backend.environments.production: unknown key "aprovers" (did you mean "approvers"?)`},
		{[]string{"serve", "--check", "--config", bad}, 1, "webhook_secret"},
		{[]string{"serve", "--check", "--config", filepath.Join(dir, "nope.yml")}, 1, "nope.yml"},
		{[]string{"serve"}, 2, "usage"},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String()+stderr.String(), tt.out) {
			t.Errorf("%v: exit %d, %q %q; want %d with %q", tt.args, code, stdout.String(), stderr.String(), tt.code, tt.out)
		}
	}
}

// Run as root, a server whose jobs run on the host names who they run
// as: it refuses to start otherwise, saying how.
func TestServeRefusesRootJobs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root's jobs are refused")
	}
	gh := forgetest.New(t)
	cfg := serverConfig(t, gh, t.TempDir(), "local")
	cfg.Local.AllowRoot = false
	_, err := NewServer(context.Background(), cfg, ServerOptions{Listener: nil})
	if err == nil || !strings.Contains(err.Error(), "executor local") || !strings.Contains(err.Error(), "root") {
		t.Errorf("NewServer as root, jobs as root: %v", err)
	}
	cfg.Local.User = "65534:65534"
	dir := cfg.DataDir
	os.Chmod(filepath.Dir(dir), 0o755)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	s, err := NewServer(context.Background(), cfg, ServerOptions{Listener: ln})
	if err != nil {
		t.Fatalf("NewServer with jobs as 65534: %v", err)
	}
	s.close()
	ln.Close()
}

// pipelines counts the pipelines in a store.
func pipelines(t *testing.T, path string) []engine.PipelineRecord {
	t.Helper()
	db, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ps, err := db.Pipelines(context.Background(), store.PipelineFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// The same push with the docker executor: the jobs run in containers of
// the local engine, checking out the tarball GitHub served.
func TestServeRunsAPushedCommitInDocker(t *testing.T) {
	dockertest.RequireImage(t)
	gh := forgetest.New(t)
	sha := gh.AddCommitFromDir("acme/backend", "feature/login", "../../testdata/seed")
	s := startServer(t, serverConfig(t, gh, t.TempDir(), "docker"), ServerOptions{})
	if code := deliver(t, s.Addr(), "push", "d-1", pushPayload(t, "acme/backend", "feature/login", sha)); code != http.StatusAccepted {
		t.Fatalf("delivery answered %d", code)
	}
	want := map[string]string{"slipway/build-test-deploy/build": "success", "slipway/build-test-deploy/test": "success"}
	waitStatuses(t, gh, "acme/backend", func(st []forgetest.Status) bool {
		f := final(st)
		return f["slipway/build-test-deploy/test"] == "success" || f["slipway/build-test-deploy/test"] == "failure" ||
			f["slipway/build-test-deploy/build"] == "failure" || cmp.Equal(want, f)
	})
	if got := final(gh.Statuses("acme/backend")); !cmp.Equal(want, got) {
		t.Errorf("statuses %v", got)
	}
}

// TestMain runs `slipway serve` in a process of its own (this test
// binary, run again), so that a test can SIGKILL it, or any slipway
// command (SLIPWAY_TEST_ARGS).
func TestMain(m *testing.M) {
	if cfg := os.Getenv("SLIPWAY_TEST_SERVE"); cfg != "" {
		os.Exit(Main(context.Background(), []string{"serve", "--config", cfg}, strings.NewReader(""), os.Stdout, os.Stderr))
	}
	if args := os.Getenv("SLIPWAY_TEST_ARGS"); args != "" {
		// slipway in a process of its own, args separated by newlines.
		os.Exit(Main(context.Background(), strings.Split(args, "\n"), strings.NewReader(""), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// A server SIGKILLed right after it answered 202 for a push, before it
// could start the push's pipeline, runs that pipeline once after it
// restarts: the delivery was in the store before the answer.
func TestServeCrashAfterAccepting(t *testing.T) {
	gh := forgetest.New(t)
	sha := gh.AddCommitFromDir("acme/backend", "feature/login", "../../testdata/seed")
	dir := t.TempDir()
	port := freePort(t)
	cfgFile := filepath.Join(dir, "slipway.yml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`http: {addr: "127.0.0.1:%d"}
data_dir: %q
executor: local
local: {allow_root: true}
github: {token: %s, webhook_secret: %s, api_url: %s}
apps: {backend: {repo: acme/backend}}
`, port, filepath.Join(dir, "data"), gh.Token, webhookSecret, gh.URL)), 0o644)
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SLIPWAY_TEST_SERVE="+cfgFile)
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				t.Logf("server log:\n%s", log.String())
			}
		})
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
				resp.Body.Close()
				return cmd
			}
			if time.Now().After(deadline) {
				t.Fatal("the server did not come up")
			}
		}
	}
	// GitHub is slow to hand out the config: the pipeline cannot start
	// before the kill.
	gh.Inject(forgetest.Fault{Method: "GET", Path: "/repos/acme/backend/contents/*", Times: 1, Delay: 5 * time.Second, Status: http.StatusBadGateway})
	first := start()
	if code := deliver(t, fmt.Sprintf("127.0.0.1:%d", port), "push", "d-crash", pushPayload(t, "acme/backend", "feature/login", sha)); code != http.StatusAccepted {
		t.Fatalf("delivery answered %d", code)
	}
	first.Process.Kill()
	first.Wait()
	if ps := pipelines(t, filepath.Join(dir, "data", "slipway.db")); len(ps) != 0 {
		t.Fatalf("a pipeline started before the kill: %+v", ps)
	}
	start()
	want := map[string]string{"slipway/build-test-deploy/build": "success", "slipway/build-test-deploy/test": "success"}
	st := waitStatuses(t, gh, "acme/backend", func(st []forgetest.Status) bool { return cmp.Equal(want, final(st)) })
	if len(st) != 4 {
		t.Errorf("statuses %+v, want one pending and one success per job", st)
	}
	if ps := pipelines(t, filepath.Join(dir, "data", "slipway.db")); len(ps) != 1 {
		t.Errorf("%d pipelines for one push", len(ps))
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
