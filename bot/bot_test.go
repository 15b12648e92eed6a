package bot

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// deployConfig has a CI workflow for pushes and the deploy workflow
// /deploy and /rollback run, deploying to the environment they name.
const deployConfig = `version: 2.1
orbs:
  aws: slipway/aws@1
jobs:
  build:
    machine: true
    steps: [{run: "true"}]
  ship:
    machine: true
    steps:
      - run: "echo shipping << pipeline.deploy.version >>"
      - aws/lambda-update: {function: api, repo: backend}
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
	refs   map[string]Commit // ref -> commit; "" is the default branch
	down   bool
	config string
}

func (f *fakeRepos) Resolve(ctx context.Context, app *App, ref string) (Commit, error) {
	if f.down {
		return Commit{}, fmt.Errorf("GET commits: %w", ErrUnreachable)
	}
	if c, ok := f.refs[ref]; ok {
		return c, nil
	}
	for _, c := range f.refs {
		if len(ref) >= 7 && strings.HasPrefix(c.SHA, ref) {
			return Commit{SHA: c.SHA}, nil
		}
	}
	return Commit{}, fmt.Errorf("GET commits/%s: %w", ref, ErrNoSuchRef)
}

func (f *fakeRepos) Config(app *App, sha string) engine.ConfigLoader {
	return engine.ConfigFunc(func(context.Context) (*workflows.Config, error) {
		return workflows.Load(".circleci/config.yml", []byte(f.config), workflows.LoadOptions{AllowMachine: true})
	})
}

func (f *fakeRepos) Source(app *App, sha string) engine.Source {
	return engine.Source{Repo: app.Repo, Revision: sha}
}

type groups map[string][]string

func (g groups) Groups(ctx context.Context, user string) ([]string, error) { return g[user], nil }

// okExecutor runs every job to success at once, its native steps
// through the engine.
type okExecutor struct{}

func (okExecutor) Run(ctx context.Context, job *engine.JobRun, log io.Writer) (engine.JobResult, error) {
	for _, st := range job.Spec.Steps {
		if st.Native == nil {
			continue
		}
		if _, err := job.Native.RunNative(ctx, &engine.NativeRun{Job: job, Step: st.Native, Env: job.Env, Log: log}); err != nil {
			return engine.JobResult{Status: workflows.StatusFailed, Reason: err.Error()}, nil
		}
	}
	return engine.JobResult{Status: workflows.StatusSuccess}, nil
}

// versionedAWS stands in for slipway/aws: a function's version is its
// commit's short SHA, or what a rollback restores.
type versionedAWS struct{}

func (versionedAWS) RunNative(ctx context.Context, run *engine.NativeRun) (engine.Outputs, error) {
	key := "lambda." + run.Step.Params["function"] + ".version"
	if v, ok := run.Job.Restore[key]; ok {
		return engine.Outputs{key: v}, nil
	}
	return engine.Outputs{key: run.Env["CIRCLE_SHA1"][:7]}, nil
}
func (okExecutor) Cleanup(ctx context.Context, attemptID string) error { return nil }

type botHarness struct {
	t      *testing.T
	db     *store.DB
	engine *engine.Engine
	bot    *Bot
	repos  *fakeRepos
	n      int
}

const (
	sha1 = "1111111111111111111111111111111111111111"
	sha2 = "2222222222222222222222222222222222222222"
	sha3 = "3333333333333333333333333333333333333333"
)

func backendApp() *App {
	return &App{App: &engine.App{Name: "backend", Repo: "acme/backend", LockAfterRollback: true,
		Environments: map[string]*engine.Environment{
			"staging":    {Name: "staging", Deployers: []string{"U0ALICE", "S0DEVS"}, AllowSelfApproval: true},
			"production": {Name: "production", Deployers: []string{"U0ALICE"}, Approvers: []string{"U0RELEASE", "S0SRE"}},
		}}, Channel: "C0DEPLOYS"}
}

func newBotHarness(t *testing.T) *botHarness {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	apps := []*App{backendApp(), {App: &engine.App{Name: "frontend", Repo: "acme/frontend",
		Environments: map[string]*engine.Environment{"staging": {Name: "staging"}}}, Channel: "C0WEB"}}
	e := engine.New(engine.Options{Store: db, Executor: okExecutor{}, DataDir: t.TempDir(),
		Natives: map[string]engine.NativeRunner{engine.OrbAWS: versionedAWS{}},
		Apps:    map[string]*engine.App{"backend": apps[0].App, "frontend": apps[1].App}})
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Shutdown(context.Background())
		db.Close()
	})
	repos := &fakeRepos{config: deployConfig, refs: map[string]Commit{
		"":     {SHA: sha3, Branch: "main"},
		"main": {SHA: sha3, Branch: "main"},
		"v1":   {SHA: sha1, Tag: "v1"},
		"v2":   {SHA: sha2, Tag: "v2"},
	}}
	b := New(Options{Engine: e, Store: db, Repos: repos, Apps: apps,
		Directory: groups{"U0DEV": {"S0DEVS"}, "U0SRE": {"S0SRE"}}})
	return &botHarness{t: t, db: db, engine: e, bot: b, repos: repos}
}

// say types a command in a channel as a user.
func (h *botHarness) say(user, channel, line string) Reply {
	h.t.Helper()
	cmd, text, _ := strings.Cut(line, " ")
	h.n++
	r, err := h.bot.Handle(context.Background(), Request{ID: fmt.Sprint("req-", h.n), Command: cmd, Text: text, Channel: channel, User: user})
	if err != nil {
		h.t.Fatalf("%s: %v", line, err)
	}
	return r
}

// settle waits for the app's pipeline n to settle.
func (h *botHarness) settle(app string, n int) *engine.PipelineState {
	h.t.Helper()
	p, err := h.db.PipelineByNumber(context.Background(), app, n)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := h.engine.WaitSettled(ctx, p.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

func (h *botHarness) approveAll(app string, n int, by string) {
	h.t.Helper()
	st := h.settle(app, n)
	for _, j := range st.Jobs {
		if j.Status == engine.StatusOnHold {
			r, err := h.bot.Decide(context.Background(), Press{User: by, Approve: true, JobID: j.ID})
			if err != nil || !strings.HasPrefix(r.Text, "Approved") {
				h.t.Fatalf("approve %s: %q, %v", j.Name, r.Text, err)
			}
		}
	}
	h.settle(app, n)
}

func expect(t *testing.T, r Reply, public bool, parts ...string) {
	t.Helper()
	if r.Public != public {
		t.Errorf("reply %q public=%v, want %v", r.Text, r.Public, public)
	}
	for _, p := range parts {
		if !strings.Contains(r.Text, p) {
			t.Errorf("reply %q lacks %q", r.Text, p)
		}
	}
}

func TestDeploy(t *testing.T) {
	h := newBotHarness(t)
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/deploy backend@v1 to staging"), true, "U0ALICE is deploying backend v1 (`1111111`) to staging: pipeline 1")
	st := h.settle("backend", 1)
	if st.Pipeline.Status != workflows.StatusSuccess || len(st.Workflows) != 1 || st.Workflows[0].Name != "deploy" {
		t.Fatalf("pipeline 1: %+v %+v", st.Pipeline, st.Workflows)
	}
	tr := st.Pipeline.Trigger
	if tr.Revision != sha1 || tr.Tag != "v1" || tr.Source != "chat" || tr.Deploy == nil || *tr.Deploy != (workflows.DeployValues{Environment: "staging", Version: "v1"}) {
		t.Errorf("trigger %+v (deploy %+v)", tr, tr.Deploy)
	}
	if st.Pipeline.Author != "U0ALICE" || len(st.Jobs) != 1 || st.Jobs[0].Env != "staging" {
		t.Errorf("author %s, jobs %+v", st.Pipeline.Author, st.Jobs)
	}
	// Through a group, and the default branch's head.
	expect(t, h.say("U0DEV", "C0DEPLOYS", "/deploy backend staging"), true, "backend `3333333` to staging: pipeline 2")
	h.settle("backend", 2)
	rel, _ := h.db.Releases(context.Background(), "backend", "staging")
	if len(rel) != 2 || rel[0].Commit != sha3 || rel[1].Version != "v1" {
		t.Errorf("releases %+v", rel)
	}
}

func TestDeployRefusals(t *testing.T) {
	h := newBotHarness(t)
	for _, tt := range []struct {
		name, user, channel, line string
		want                      []string
	}{
		{"not a deployer", "U0MALLORY", "C0DEPLOYS", "/deploy backend production", []string{"only U0ALICE may deploy backend to production"}},
		{"a deployer elsewhere only", "U0DEV", "C0DEPLOYS", "/deploy backend production", []string{"only U0ALICE may"}},
		{"unknown app", "U0ALICE", "C0DEPLOYS", "/deploy payments staging", []string{`no app "payments"`, "backend, frontend"}},
		{"unknown environment", "U0ALICE", "C0DEPLOYS", "/deploy backend prod", []string{`no environment "prod"`, "production, staging"}},
		{"a ref that does not resolve", "U0ALICE", "C0DEPLOYS", "/deploy backend@v9 staging", []string{`acme/backend has no branch, tag or commit "v9"`}},
		{"another app's channel", "U0ALICE", "C0WEB", "/deploy backend staging", []string{"backend's commands are taken in #C0DEPLOYS"}},
		{"a typo", "U0ALICE", "C0DEPLOYS", "/deploy backend", []string{"needs an app and an environment", "/deploy <app>"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			expect(t, h.say(tt.user, tt.channel, tt.line), false, tt.want...)
		})
	}
	h.repos.down = true
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/deploy backend@v1 staging"), false, "cannot be reached right now")
	if ps, _ := h.db.Pipelines(context.Background(), store.PipelineFilter{}); len(ps) != 0 {
		t.Errorf("refused commands started %d pipelines", len(ps))
	}
}

// A request delivered twice (a chat's retry, a reconnect) starts one
// pipeline.
func TestDeployOncePerRequest(t *testing.T) {
	h := newBotHarness(t)
	req := Request{ID: "env-1", Command: "/deploy", Text: "backend@v1 staging", Channel: "C0DEPLOYS", User: "U0ALICE"}
	for range 2 {
		r, err := h.bot.Handle(context.Background(), req)
		if err != nil || !strings.Contains(r.Text, "pipeline 1") {
			t.Fatalf("%q, %v", r.Text, err)
		}
	}
}

func TestRollback(t *testing.T) {
	h := newBotHarness(t)
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/rollback backend production"), false, "Nothing was ever deployed there")
	for i, ref := range []string{"v1", "v2"} {
		h.say("U0ALICE", "C0DEPLOYS", "/deploy backend@"+ref+" production")
		h.approveAll("backend", i+1, "U0SRE")
	}
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/rollback backend in production"), true,
		"rolling backend back in production to release #1 (v1 (`1111111`)): pipeline 3")
	h.approveAll("backend", 3, "U0RELEASE")
	st := h.settle("backend", 3)
	if d := st.Pipeline.Trigger.Deploy; st.Pipeline.Status != workflows.StatusSuccess || d == nil || !d.Rollback || st.Pipeline.Trigger.Revision != sha1 {
		t.Fatalf("rollback pipeline %+v", st.Pipeline)
	}
	// The rollback left production locked: the next deploy is refused.
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/deploy backend@v2 production"), false, "locked by U0ALICE", engine.LockedAfterRollback, "/slipway unlock backend production")
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/slipway unlock backend production"), true, "unlocked by U0ALICE")
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/rollback backend production to "+sha2[:8]), true, "release #2")
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/rollback backend production to #9"), false, "no release #9")
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/rollback backend production to abcdef0"), false, "never deployed there")
	expect(t, h.say("U0MALLORY", "C0DEPLOYS", "/rollback backend production"), false, "only U0ALICE may roll backend back")
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/slipway history backend production"), false, "#3 v1 (`1111111`) by U0ALICE, approved by U0RELEASE", "(rollback)", "#1 v1", "← /rollback goes here",
		"(rollback)\n    lambda.api.version: `1111111`\n#2 v2 (`2222222`) by U0ALICE, approved by U0SRE, just now ← /rollback goes here\n    lambda.api.version: `2222222`\n#1 v1")
}

func TestRollbackTarget(t *testing.T) {
	rel := []engine.Release{
		{Number: 5, Commit: sha3, Outcome: "failed"},
		{Number: 4, Commit: sha2, Outcome: "success"},
		{Number: 3, Commit: sha2, Outcome: "success"},
		{Number: 2, Commit: sha1, Outcome: "success"},
		{Number: 1, Commit: sha3, Outcome: "canceled"},
	}
	for _, tt := range []struct {
		named string
		want  int
		why   string
	}{
		{"", 2, ""},
		{"4", 4, ""},
		{"1", 0, "was canceled"},
		{"5", 0, "failed"},
		{sha1[:7], 2, ""},
		{sha3[:7], 0, "never deployed"},
	} {
		got, why := RollbackTarget(rel, tt.named)
		if tt.want == 0 && (got != nil || !strings.Contains(why, tt.why)) || tt.want != 0 && (got == nil || got.Number != tt.want) {
			t.Errorf("RollbackTarget(%q) = %+v, %q", tt.named, got, why)
		}
	}
	if got, why := RollbackTarget(rel[1:3], ""); got != nil || !strings.Contains(why, "no good release before") {
		t.Errorf("only one good commit: %+v, %q", got, why)
	}
}

func TestLocksCancelRerunStatus(t *testing.T) {
	h := newBotHarness(t)
	expect(t, h.say("U0MALLORY", "C0DEPLOYS", "/slipway lock backend production"), false, "only U0ALICE, U0RELEASE or S0SRE may lock")
	expect(t, h.say("U0SRE", "C0DEPLOYS", "/slipway lock backend production incident 42"), true, "backend/production is locked by U0SRE: incident 42")
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/slipway lock backend production"), false, "locked by U0SRE", "incident 42")
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/slipway status"), false, "*backend*", "production: nothing deployed yet — locked by U0SRE", "*frontend*")
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/slipway unlock backend staging"), false, "not locked")

	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/deploy backend@v1 production"), false, "locked by U0SRE")
	h.say("U0SRE", "C0DEPLOYS", "/slipway unlock backend production")
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/deploy backend@v1 production"), true, "pipeline 1")
	h.settle("backend", 1)
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/slipway status backend"), false, "pipeline 1 on hold (tag v1, 1111111)")
	expect(t, h.say("U0MALLORY", "C0DEPLOYS", "/slipway cancel 1"), false, "Sorry, only")
	expect(t, h.say("U0ALICE", "C0WEB", "/slipway cancel 1"), false, "frontend has no pipeline 1")
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/slipway cancel 7"), false, "backend has no pipeline 7")
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/slipway rerun 1"), false, "still on hold")
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/slipway cancel 1"), true, "Pipeline 1 of backend canceled by U0ALICE")
	h.settle("backend", 1)
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/slipway cancel #1"), false, "already ended (canceled)")
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/slipway rerun backend 1 ship"), true, "reruns ship of pipeline 1 (1 jobs)")
	h.settle("backend", 1)
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/slipway rerun 1 nope"), false, `no job "nope"`)
	st := h.settle("backend", 1)
	if st.Pipeline.Status == engine.StatusOnHold {
		h.approveAll("backend", 1, "U0RELEASE")
	}
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/slipway rerun 1"), true, "reruns pipeline 1 of backend as pipeline 2")
	p2, _ := h.db.PipelineByNumber(context.Background(), "backend", 2)
	if p2.RerunOf != 1 || p2.Trigger.Revision != sha1 || p2.Trigger.Deploy == nil || p2.Trigger.Deploy.Environment != "production" {
		t.Errorf("rerun pipeline %+v", p2)
	}
	expect(t, h.say("U0ALICE", "C0DEPLOYS", "/slipway help"), false, "/deploy <app>")
}

// A press decides only what the engine allows; refusals go to the
// presser alone, in words.
func TestDecide(t *testing.T) {
	h := newBotHarness(t)
	h.say("U0ALICE", "C0DEPLOYS", "/deploy backend@v1 production")
	st := h.settle("backend", 1)
	gate := st.Jobs[0]
	for _, tt := range []struct {
		user    string
		approve bool
		want    string
	}{
		{"U0MALLORY", true, "Sorry, only U0RELEASE or S0SRE may approve this."},
		{"U0ALICE", true, "You wrote this change, and production needs someone else's approval. Ask one of its approvers."},
		{"U0MALLORY", false, "Sorry, only U0RELEASE or S0SRE (or the change's author, U0ALICE) may reject this."},
		{"U0SRE", true, "Approved by U0SRE."},
		{"U0RELEASE", false, "Already approved by U0SRE just now; nothing changed."},
	} {
		r, err := h.bot.Decide(context.Background(), Press{User: tt.user, Approve: tt.approve, JobID: gate.ID})
		if err != nil || r.Text != tt.want || r.Public {
			t.Errorf("%s presses (approve %v): %q, %v; want %q", tt.user, tt.approve, r.Text, err, tt.want)
		}
	}
}
