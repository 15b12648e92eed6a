package slack_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/bot"
	"github.com/slipway-ci/slipway/bot/slack"
	"github.com/slipway-ci/slipway/bot/slack/slacktest"
	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

const (
	sha1 = "1111111111111111111111111111111111111111"
	sha2 = "2222222222222222222222222222222222222222"
	sha3 = "3333333333333333333333333333333333333333"
)

// deployConfig has a CI workflow for pushes and the deploy workflow
// /deploy and /rollback run, deploying to the environment they name.
const deployConfig = `version: 2.1
jobs:
  build:
    machine: true
    steps: [{run: "true"}]
  ship:
    machine: true
    steps: [{run: "echo shipping << pipeline.deploy.version >>"}]
workflows:
  ci:
    unless: << pipeline.deploy.environment >>
    jobs: [build]
  deploy:
    when: << pipeline.deploy.environment >>
    jobs:
      - ship: {context: << pipeline.deploy.environment >>}
`

// fakeRepos resolves refs from a map and serves one config.
type fakeRepos struct {
	refs map[string]bot.Commit
}

func (f *fakeRepos) Resolve(ctx context.Context, app *bot.App, ref string) (bot.Commit, error) {
	if c, ok := f.refs[ref]; ok {
		return c, nil
	}
	return bot.Commit{}, fmt.Errorf("GET commits/%s: %w", ref, bot.ErrNoSuchRef)
}

func (f *fakeRepos) Config(app *bot.App, sha string) engine.ConfigLoader {
	return engine.ConfigFunc(func(context.Context) (*workflows.Config, error) {
		return workflows.Load(".circleci/config.yml", []byte(deployConfig), workflows.LoadOptions{AllowMachine: true})
	})
}

func (f *fakeRepos) Source(app *bot.App, sha string) engine.Source {
	return engine.Source{Repo: app.Repo, Revision: sha}
}

// scriptExecutor ends jobs as told: failed for names in fail, after
// writing a log; the jobs named in hold wait for their channel to close.
type scriptExecutor struct {
	fail map[string]bool
	hold map[string]chan struct{}
}

func (x scriptExecutor) Run(ctx context.Context, job *engine.JobRun, log io.Writer) (engine.JobResult, error) {
	if gate := x.hold[job.JobName]; gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return engine.JobResult{}, ctx.Err()
		}
	}
	for i := range 30 {
		fmt.Fprintf(log, "%s line %d <!channel>\n", job.JobName, i)
	}
	if x.fail[job.JobName] {
		return engine.JobResult{Status: workflows.StatusFailed, ExitCode: 2}, nil
	}
	return engine.JobResult{Status: workflows.StatusSuccess}, nil
}
func (scriptExecutor) Cleanup(ctx context.Context, attemptID string) error { return nil }

func apps() []*bot.App {
	return []*bot.App{
		{App: &engine.App{Name: "backend", Repo: "acme/backend",
			Environments: map[string]*engine.Environment{
				"staging":    {Name: "staging", Deployers: []string{alice}, AllowSelfApproval: true},
				"production": {Name: "production", Deployers: []string{alice}, Approvers: []string{release, sreGroup}},
			}}, Channel: deploys},
		{App: &engine.App{Name: "frontend", Repo: "acme/frontend",
			Environments: map[string]*engine.Environment{"staging": {Name: "staging", Deployers: []string{alice}}}}, Channel: web},
	}
}

// harness is slipway's chat, whole, against a fake Slack: a store, an
// engine whose "slack" consumer is a notifier posting through the
// adapter, the bot answering through it, and Run listening.
type harness struct {
	t        testing.TB
	fake     *slacktest.Fake
	db       *store.DB
	engine   *engine.Engine
	adapter  *slack.Adapter
	bot      *bot.Bot
	notifier *bot.Notifier
	stop     func()
}

type harnessOptions struct {
	fake       *slacktest.Fake
	dbPath     string
	executor   engine.Executor
	httpClient *http.Client
	editEvery  time.Duration
	// botStore wraps the store the bot reads; inbox the adapter's inbox.
	botStore func(*store.DB) bot.Store
	inbox    func(*store.DB) slack.Inbox
	noRun    bool // Run is not started
	// parallelism and retryMin are the engine's (1 and 20ms when zero).
	parallelism int
	retryMin    time.Duration
}

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	ctx := context.Background()
	if o.fake == nil {
		o.fake = newFake(t)
	}
	if o.dbPath == "" {
		o.dbPath = filepath.Join(t.TempDir(), "slipway.db")
	}
	if o.executor == nil {
		o.executor = scriptExecutor{}
	}
	if o.editEvery == 0 {
		o.editEvery = 50 * time.Millisecond
	}
	if o.parallelism == 0 {
		o.parallelism = 1
	}
	if o.retryMin == 0 {
		o.retryMin = 20 * time.Millisecond
	}
	db, err := store.Open(ctx, o.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	var botStore bot.Store = db
	if o.botStore != nil {
		botStore = o.botStore(db)
	}
	var inbox slack.Inbox = db
	if o.inbox != nil {
		inbox = o.inbox(db)
	}
	logger := testLogger(t)
	a, err := slack.New(slack.Options{AppToken: slacktest.AppToken, BotToken: slacktest.BotToken, APIURL: o.fake.URL() + "/api/",
		Inbox: inbox, Logger: logger, HTTPClient: o.httpClient, PostEvery: 10 * time.Millisecond, PostBurst: 5,
		RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	as := apps()
	n := bot.NewNotifier(bot.NotifierOptions{Chat: a, KV: db.KV("slack"), Store: db, Apps: as, Words: slack.Words(),
		EditEvery: o.editEvery, Logger: logger,
		Link: func(p, j string) string { return "https://slipway.example.com/pipelines/" + p }})
	e := engine.New(engine.Options{Store: db, Executor: o.executor, DataDir: t.TempDir(), Logger: logger,
		Apps: map[string]*engine.App{"backend": as[0].App, "frontend": as[1].App}, Notifiers: map[string]engine.Notifier{"slack": n},
		Parallelism: o.parallelism, RetryMin: o.retryMin, RetryMax: max(o.retryMin, 300*time.Millisecond)})
	repos := &fakeRepos{refs: map[string]bot.Commit{
		"v1": {SHA: sha1, Tag: "v1"}, "v2": {SHA: sha2, Tag: "v2"}, "main": {SHA: sha3, Branch: "main"},
	}}
	b := bot.New(bot.Options{Engine: e, Store: botStore, Repos: repos, Directory: a, Apps: as, Words: slack.Words(), Logger: logger})
	a.Attach(b, n)
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	runs := make(chan error, 2)
	go func() { n.Run(rctx); runs <- nil }()
	started := 1
	if !o.noRun {
		started++
		go func() { runs <- a.Run(rctx) }()
	}
	h := &harness{t: t, fake: o.fake, db: db, engine: e, adapter: a, bot: b, notifier: n}
	stopped := false
	h.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		for range started {
			if err := <-runs; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
		e.Shutdown(context.Background())
		db.Close()
	}
	t.Cleanup(h.stop)
	return h
}

// wait waits up to 10s for cond, checked at every change of the fake.
func (h *harness) wait(what string, cond func() bool) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.fake.WaitFor(ctx, cond); err != nil {
		h.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// poll waits up to 10s for a condition outside the fake.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: timed out", what)
		}
	}
}

// command types a slash command and waits for its ack.
func (h *harness) command(user, channel, line string) (slacktest.Envelope, string) {
	h.t.Helper()
	cmd, text, _ := strings.Cut(line, " ")
	id := h.fake.SendSlashCommand(slacktest.SlashCommand{Command: cmd, Text: text, UserID: user, ChannelID: channel})
	if _, err := h.fake.WaitAck(h.t.Context(), id); err != nil {
		h.t.Fatal(err)
	}
	return envelope(h.fake, id), id
}

// envelope is the first delivery of an envelope.
func envelope(fake *slacktest.Fake, id string) slacktest.Envelope {
	for _, e := range fake.Envelopes() {
		if e.ID == id {
			return e
		}
	}
	return slacktest.Envelope{}
}

// ephemeral waits for the nth ephemeral message to user and returns it.
func (h *harness) ephemeral(user string, n int) slacktest.Ephemeral {
	h.t.Helper()
	h.wait(fmt.Sprintf("ephemeral %d to %s", n, user), func() bool { return len(h.fake.Ephemerals(user)) >= n })
	return h.fake.Ephemerals(user)[n-1]
}

// settle waits for the app's pipeline n to settle.
func (h *harness) settle(app string, n int) *engine.PipelineState {
	h.t.Helper()
	var p *engine.PipelineRecord
	h.wait(fmt.Sprintf("pipeline %d of %s", n, app), func() bool {
		var err error
		p, err = h.db.PipelineByNumber(context.Background(), app, n)
		return err == nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := h.engine.WaitSettled(ctx, p.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

// parents are the channel's commit threads' parents.
func (h *harness) parents(channel string) []slacktest.Message {
	var out []slacktest.Message
	for _, m := range h.fake.Messages(channel) {
		if strings.Contains(string(m.Metadata), `"parent/`) {
			out = append(out, m)
		}
	}
	return out
}

// said lists the channel's top-level messages without metadata: the
// bot's public replies to commands.
func (h *harness) said(channel string) []string {
	var out []string
	for _, m := range h.fake.Messages(channel) {
		if m.Metadata == nil {
			out = append(out, m.Text)
		}
	}
	return out
}

// countPipelines counts the pipelines of the store.
func (h *harness) countPipelines() int {
	ps, err := h.db.Pipelines(context.Background(), store.PipelineFilter{})
	if err != nil {
		h.t.Fatal(err)
	}
	return len(ps)
}

// push submits a pipeline of a push to backend's main.
func (h *harness) push(sha string, wfs ...*workflows.PlannedWorkflow) *engine.PipelineRecord {
	h.t.Helper()
	p, err := h.engine.Submit(context.Background(), engine.PipelineRequest{App: "backend", Repo: "acme/backend", Author: alice,
		Trigger: workflows.Trigger{Branch: "main", Revision: sha},
		Commit:  engine.CommitInfo{Title: "Fix the login redirect", URL: "https://github.com/acme/backend/commit/" + sha},
		Plan:    &workflows.Plan{Workflows: wfs}})
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

func job(name string, requires ...string) *workflows.PlannedJob {
	j := &workflows.PlannedJob{Name: name, Job: name, Type: workflows.JobBuild, Requires: map[string][]string{},
		Spec: &workflows.JobSpec{Steps: []workflows.Step{{Run: &workflows.RunStep{Command: "true"}}}}}
	for _, r := range requires {
		j.Requires[r] = nil
	}
	return j
}

// flakyStore is the bot's store failing EnvLocks (the store down) as
// many times as fail says, or blocking it until its context ends.
type flakyStore struct {
	*store.DB
	fail  int32
	block bool
	calls atomic.Int32
}

var errStoreDown = errors.New("store: database is locked")

func (s *flakyStore) EnvLocks(ctx context.Context, app string) ([]engine.EnvLock, error) {
	n := s.calls.Add(1)
	if s.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if n <= s.fail {
		return nil, errStoreDown
	}
	return s.DB.EnvLocks(ctx, app)
}

// wrap makes s wrap the store.
func (s *flakyStore) wrap(db *store.DB) bot.Store {
	s.DB = db
	return s
}
