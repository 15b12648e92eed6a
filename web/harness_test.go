package web

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/bcrypt"

	"github.com/slipway-ci/slipway/bot"
	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// seedConfig is the seed's shape: build, test and lint, staging, an
// approval, then production.
const seedConfig = `version: 2.1
jobs:
  build:
    machine: true
    steps: [{run: make build}]
  test:
    machine: true
    steps: [{run: make test}]
  lint:
    machine: true
    steps: [{run: make lint}]
  deploy:
    machine: true
    steps: [{run: ./deploy.sh}]
workflows:
  main:
    jobs:
      - build
      - test: {requires: [build]}
      - lint: {requires: [build]}
      - deploy: {name: deploy-staging, requires: [test, lint], context: staging}
      - hold: {type: approval, requires: [deploy-staging]}
      - deploy: {name: deploy-production, requires: [hold], context: production}
`

// clock is a settable clock; it stands still unless moved, so that pages
// say the same durations every run.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type seqIDs struct{ n atomic.Int64 }

func (s *seqIDs) NewID() string { return fmt.Sprintf("id%04d", s.n.Add(1)) }

// standIn is the executor: each job prints a few coloured lines and
// succeeds, or fails where fail says; a job named in hold prints a line
// every tick until its channel is closed.
type standIn struct {
	mu    sync.Mutex
	fail  map[string]bool
	hold  map[string]chan struct{}
	tick  time.Duration
	lines int               // printed per tick by a held job
	runs  map[string]string // job name -> attempt ID, latest
	dir   string
	store func(job *engine.JobRun) // stores artifacts, if set
}

func (s *standIn) Run(ctx context.Context, job *engine.JobRun, log io.Writer) (engine.JobResult, error) {
	s.mu.Lock()
	s.runs[job.JobName] = job.ID
	hold := s.hold[job.JobName]
	fail := s.fail[job.JobName]
	storeFn := s.store
	s.mu.Unlock()
	start := time.Now()
	cmd := "make " + job.JobName
	if len(job.Spec.Steps) > 0 && job.Spec.Steps[0].Run != nil {
		cmd = job.Spec.Steps[0].Run.Command
	}
	fmt.Fprintf(log, "\x1b[1;34m$ %s\x1b[0m\n", cmd)
	if hold != nil {
		n := 0
		t := time.NewTicker(s.tick)
		defer t.Stop()
	wait:
		for {
			select {
			case <-hold:
				break wait
			case <-ctx.Done():
				return engine.JobResult{Status: workflows.StatusCanceled}, nil
			case <-t.C:
				for range max(s.lines, 1) {
					n++
					fmt.Fprintf(log, "line %d: \x1b[32mok\x1b[0m <%s>\n", n, job.JobName)
				}
			}
		}
	}
	if storeFn != nil {
		storeFn(job)
	}
	status, code := workflows.StatusSuccess, 0
	if fail {
		fmt.Fprintf(log, "\x1b[31merror: %s failed\x1b[0m\n", job.JobName)
		status, code = workflows.StatusFailed, 2
	} else {
		fmt.Fprintf(log, "done & \x1b[32mgreen\x1b[0m\n")
	}
	return engine.JobResult{Status: status, ExitCode: code, Steps: []engine.StepResult{
		{Name: "Spin up environment", Status: workflows.StatusSuccess, Started: start, Finished: start},
		{Name: cmd, Status: status, ExitCode: code, Started: start, Finished: start},
	}}, nil
}

func (s *standIn) Cleanup(ctx context.Context, attemptID string) error { return nil }

// failJob makes a job fail from now on, or not.
func (s *standIn) failJob(name string, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[name] = fail
}

// holdJob makes a job run until the channel it returns is closed.
func (s *standIn) holdJob(name string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	s.hold[name] = ch
	return ch
}

func (s *standIn) setStore(fn func(job *engine.JobRun)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.store = fn
}

func (s *standIn) attempt(job string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[job]
}

// Users of the tests: the release manager approves production; alice
// wrote the change; viewer may only look.
const (
	releaser = "U0RELEASE"
	alice    = "U0ALICE"
	password = "correct horse"
)

var passwordHash = func() string {
	b, _ := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	return string(b)
}()

type harness struct {
	t       *testing.T
	db      *store.DB
	engine  *engine.Engine
	exec    *standIn
	clock   *clock
	handler *Handler
	metrics *Metrics
	server  *httptest.Server
	dataDir string
	key     []byte
}

func testApps() map[string]*engine.App {
	return map[string]*engine.App{"backend": {Name: "backend", Repo: "acme/backend", Environments: map[string]*engine.Environment{
		"staging":    {Name: "staging", AllowSelfApproval: true},
		"production": {Name: "production", Approvers: []string{releaser}, Deployers: []string{alice}},
	}}}
}

type harnessOpts struct {
	poll   time.Duration
	checks []Check
}

func newHarness(t *testing.T, ho harnessOpts) *harness {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, filepath.Join(dir, "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, db: db, clock: &clock{t: time.Date(2026, 3, 14, 9, 26, 0, 0, time.UTC)}, dataDir: filepath.Join(dir, "data"),
		exec: &standIn{fail: map[string]bool{}, hold: map[string]chan struct{}{}, runs: map[string]string{}, tick: 20 * time.Millisecond}}
	h.metrics = NewMetrics(db, MetricsOptions{Now: h.clock.Now})
	apps := testApps()
	h.engine = engine.New(engine.Options{Store: db, Executor: h.exec, DataDir: h.dataDir, Apps: apps, Clock: h.clock, IDs: &seqIDs{},
		Notifiers: map[string]engine.Notifier{"metrics": h.metrics.Notifier()}})
	if err := h.engine.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h.key = []byte("0123456789abcdef0123456789abcdef")
	h.handler, err = New(Options{Store: db, Engine: h.engine, Apps: apps, DataDir: h.dataDir, Key: h.key,
		Auth: Auth{Users: map[string]User{
			"rita":   {PasswordHash: passwordHash, ChatID: releaser},
			"alice":  {PasswordHash: passwordHash, ChatID: alice},
			"viewer": {PasswordHash: passwordHash},
		}},
		Words: bot.Words{Now: h.clock.Now}, Metrics: h.metrics, Checks: ho.checks, LogPoll: ho.poll})
	if err != nil {
		t.Fatal(err)
	}
	h.server = httptest.NewServer(h.handler)
	t.Cleanup(func() {
		h.server.Close()
		h.engine.Shutdown(context.Background())
		db.Close()
	})
	return h
}

// start runs the seed config for a push by alice, as pipeline id.
func (h *harness) start(id, branch, config string) *engine.PipelineRecord {
	h.t.Helper()
	sha := fmt.Sprintf("%040x", len(id)*7919+int(id[len(id)-1]))
	st, err := h.engine.StartPipeline(context.Background(), engine.StartRequest{ID: id, App: "backend", Repo: "acme/backend",
		Author: alice, Trigger: workflows.Trigger{Branch: branch, Revision: sha, Source: "webhook"},
		Config: engine.ConfigFunc(func(context.Context) (*workflows.Config, error) {
			return workflows.Load(".circleci/config.yml", []byte(config), workflows.LoadOptions{AllowMachine: true})
		}),
		Commit: engine.CommitInfo{Title: "Ship the <new> billing page & more", Author: "Alice Liddell", URL: "https://github.com/acme/backend/commit/" + sha}})
	if err != nil {
		h.t.Fatal(err)
	}
	return st.Pipeline
}

// waitFor waits until cond holds of the pipeline's state.
func (h *harness) waitFor(id string, cond func(*engine.PipelineState) bool) *engine.PipelineState {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := h.engine.Wait(ctx, id, cond)
	if err != nil {
		h.t.Fatalf("waiting for pipeline %s: %v", id, err)
	}
	return st
}

func jobStatus(name, status string) func(*engine.PipelineState) bool {
	return func(st *engine.PipelineState) bool {
		for _, j := range st.Jobs {
			if j.Name == name {
				return j.Status == status
			}
		}
		return false
	}
}

// get fetches path as user ("" for nobody) and returns the response
// with its body read.
func (h *harness) get(user, path string) (*http.Response, string) {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.server.URL+path, nil)
	req.Header.Set("Accept", "text/html")
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	return h.do(req)
}

func (h *harness) do(req *http.Request) (*http.Response, string) {
	h.t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// post sends a form as user, from the dashboard's own pages.
func (h *harness) post(user, path string, form url.Values) *http.Response {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.server.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.SetBasicAuth(user, password)
	resp, _ := h.do(req)
	return resp
}

// csrf is the token of user's forms.
func (h *harness) csrf(user string) string {
	u := h.handler.auth.Users[user]
	return h.handler.csrfToken(&viewer{Name: user, ChatID: u.ChatID})
}

// main is a page's <main>, the part golden files hold.
func mainOf(t *testing.T, page string) string {
	t.Helper()
	i, j := strings.Index(page, "<main>"), strings.Index(page, "</main>")
	if i < 0 || j < i {
		t.Fatalf("no <main> in:\n%s", page)
	}
	return page[i : j+len("</main>")]
}

var attemptIDs = regexp.MustCompile(`id\d{4}`)

// golden compares got with testdata/name, rewriting it under -update.
// IDs the engine made are numbered in order of appearance, so that a
// different interleaving of parallel jobs does not change the file. Tags
// that meet are put on lines of their own, so that a diff of the file
// reads (the pages have no whitespace between them).
func golden(t *testing.T, name, got string) {
	t.Helper()
	seen := map[string]string{}
	got = attemptIDs.ReplaceAllStringFunc(got, func(id string) string {
		if n, ok := seen[id]; ok {
			return n
		}
		seen[id] = fmt.Sprintf("ID%d", len(seen)+1)
		return seen[id]
	})
	got = strings.ReplaceAll(got, "><", ">\n<")
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s differs (-want +got), go test -update rewrites it:\n%s", name, d)
	}
}

func mustPrefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}
