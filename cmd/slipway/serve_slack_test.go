package main

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/bot/slack/slacktest"
	"github.com/slipway-ci/slipway/config"
	"github.com/slipway-ci/slipway/forge/forgetest"
	"github.com/slipway-ci/slipway/store"
)

// deployRepo is a repository's config: CI on pushes (main also ships to
// production), and the deploy workflow /deploy and /rollback run.
const deployRepo = `version: 2.1
jobs:
  test:
    docker: [{image: cimg/base:stable}]
    steps: [{run: "echo testing"}]
  ship:
    docker: [{image: cimg/base:stable}]
    steps: [{run: "echo shipping $CIRCLE_SHA1"}]
workflows:
  ci:
    unless: << pipeline.deploy.environment >>
    jobs:
      - test
      - ship: {name: ship-production, context: production, requires: [test], filters: {branches: {only: main}}}
  deploy:
    when: << pipeline.deploy.environment >>
    jobs:
      - ship: {context: << pipeline.deploy.environment >>}
`

type chatE2E struct {
	t     *testing.T
	gh    *forgetest.Server
	slack *slacktest.Fake
	srv   *Server
	db    string
	n     int
}

// chatOptions change the e2e's server.
type chatOptions struct {
	// production is the production environment's keys, beyond who may
	// deploy and approve: a YAML flow map's entries.
	production string
	opts       ServerOptions
}

func newChatE2E(t *testing.T, co chatOptions) *chatE2E {
	t.Helper()
	gh := forgetest.New(t)
	sl := slacktest.New(t)
	for _, u := range []slacktest.User{
		{ID: "U0ALICE", Name: "alice", Email: "alice@example.com"},
		{ID: "U0RELEASE", Name: "rel", Email: "release@example.com"},
		{ID: "U0MALLORY", Name: "mallory", Email: "mallory@example.com"},
	} {
		sl.AddUser(u)
	}
	sl.AddChannel(slacktest.Channel{ID: "C0DEPLOYS", Name: "deploys", Members: []string{"U0ALICE", "U0RELEASE", "U0MALLORY"}})
	sl.AddChannel(slacktest.Channel{ID: "C0OTHER", Name: "other", Members: []string{"U0ALICE"}})
	dir := t.TempDir()
	text := fmt.Sprintf(`
http: {addr: "127.0.0.1:0", public_url: "https://slipway.example.com"}
data_dir: %q
executor: local
local: {allow_root: true}
github: {token: %s, webhook_secret: %s, api_url: %s}
slack: {app_token: %s, bot_token: %s, api_url: %s}
users: {Codertocat: U0ALICE}
apps:
  backend:
    repo: acme/backend
    channel: C0DEPLOYS
    environments:
      staging: {deployers: [U0ALICE]}
      production: {deployers: [U0ALICE], approvers: [U0RELEASE]%s}
`, dir, gh.Token, webhookSecret, gh.URL, slacktest.AppToken, slacktest.BotToken, sl.URL()+"/api/", co.production)
	cfg, err := config.Parse("slipway.yml", []byte(text), nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &chatE2E{t: t, gh: gh, slack: sl, db: cfg.Store.Path}
	e.srv = startServer(t, cfg, co.opts)
	return e
}

func (e *chatE2E) waitFor(what string, cond func() bool) {
	e.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			e.t.Fatalf("never: %s; the channel holds %s", what, e.describe())
		}
	}
}

func (e *chatE2E) describe() string {
	var b strings.Builder
	for _, m := range e.slack.Messages("C0DEPLOYS") {
		fmt.Fprintf(&b, "\n- %s", firstLine(m.AllText()))
		for _, r := range m.Replies {
			fmt.Fprintf(&b, "\n    - %s", firstLine(r.AllText()))
		}
	}
	return b.String()
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// say types a slash command in a channel.
func (e *chatE2E) say(user, channel, line string) {
	cmd, text, _ := strings.Cut(line, " ")
	e.slack.SendSlashCommand(slacktest.SlashCommand{Command: cmd, Text: text, UserID: user, ChannelID: channel})
}

// ephemeral waits for a private answer to user containing want.
func (e *chatE2E) ephemeral(user, want string) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("%s told %q", user, want), func() bool {
		for _, m := range e.slack.Ephemerals(user) {
			if strings.Contains(m.AllText(), want) {
				return true
			}
		}
		return false
	})
}

// posted waits for a message or reply in the app's channel containing want.
func (e *chatE2E) posted(want string) slacktest.Message {
	e.t.Helper()
	var found slacktest.Message
	e.waitFor(fmt.Sprintf("the channel shows %q", want), func() bool {
		for _, m := range e.slack.Messages("C0DEPLOYS") {
			for _, x := range append([]slacktest.Message{m}, m.Replies...) {
				if strings.Contains(x.AllText(), want) {
					found = x
					return true
				}
			}
		}
		return false
	})
	return found
}

// requests are the approval requests still showing their buttons.
func (e *chatE2E) requests() []slacktest.Message {
	var out []slacktest.Message
	for _, m := range e.slack.Messages("C0DEPLOYS") {
		for _, r := range m.Replies {
			if strings.Contains(string(r.Blocks), `"action_id":"approve"`) {
				out = append(out, r)
			}
		}
	}
	return out
}

func (e *chatE2E) releases(env string) []string {
	db, err := store.Open(context.Background(), e.db)
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	rel, err := db.Releases(context.Background(), "backend", env)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, r := range rel {
		s := fmt.Sprintf("#%d %s %s", r.Number, r.Commit[:7], r.Outcome)
		if r.Rollback {
			s += " rollback"
		}
		out = append(out, s)
	}
	return out
}

// The product end to end, through the fakes of GitHub and Slack: a push
// opens the commit's thread; its production deploy waits for approval; a
// press by someone not allowed and by the author change nothing; an
// approver's press deploys; /deploy ships an older commit, /rollback goes
// back, and production is then locked.
func TestServeWithSlack(t *testing.T) {
	e := newChatE2E(t, chatOptions{})
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, ".circleci"), 0o755)
	os.WriteFile(filepath.Join(dir, ".circleci", "config.yml"), []byte(deployRepo), 0o644)
	first := e.gh.AddCommitFromDir("acme/backend", "main", dir)
	os.WriteFile(filepath.Join(dir, "CHANGES"), []byte("second"), 0o644)
	second := e.gh.AddCommitFromDir("acme/backend", "main", dir)

	if code := deliver(t, e.srv.Addr(), "push", "d-1", pushPayload(t, "acme/backend", "main", second)); code != http.StatusAccepted {
		t.Fatalf("push answered %d", code)
	}
	parent := e.posted("*backend* · main")
	if !strings.Contains(parent.AllText(), "by <@U0ALICE>") {
		t.Errorf("the thread's author is not the pusher matched to Slack: %q", parent.AllText())
	}
	// The thread links to the pipeline's page, which opens without
	// signing in; the server is ready, Slack connected.
	link := regexp.MustCompile(`<(https://slipway\.example\.com/pipelines/[^|>]+)\|pipeline 1 `).FindStringSubmatch(parent.AllText())
	if link == nil {
		t.Fatalf("no link to the pipeline in %q", parent.AllText())
	}
	if code, page := openLink(t, e.srv.Addr(), html.UnescapeString(link[1])); code != http.StatusOK || !strings.Contains(page, "backend") {
		t.Errorf("the thread's link: %d %s", code, page)
	}
	if code, body := get(t, e.srv.Addr(), "/readyz", nil); code != http.StatusOK || !strings.Contains(body, "ok   slack") {
		t.Errorf("readyz: %d %s", code, body)
	}
	e.waitFor("an approval request", func() bool { return len(e.requests()) == 1 })
	req := e.requests()[0]
	if !req.Broadcast || !strings.Contains(req.AllText(), "Who may approve: <@U0RELEASE>") {
		t.Errorf("approval request %q (broadcast %v)", req.AllText(), req.Broadcast)
	}
	// Someone not allowed, then the author: refused in private, nothing changes.
	e.slack.SendBlockAction("U0MALLORY", "C0DEPLOYS", req.TS, "approve", "")
	e.ephemeral("U0MALLORY", "Sorry, only <@U0RELEASE> may approve this.")
	e.slack.SendBlockAction("U0ALICE", "C0DEPLOYS", req.TS, "approve", "")
	e.ephemeral("U0ALICE", "You wrote this change")
	if got := e.releases("production"); len(got) != 0 {
		t.Fatalf("refused presses deployed: %v", got)
	}
	e.slack.SendBlockAction("U0RELEASE", "C0DEPLOYS", req.TS, "approve", "")
	e.posted("approved by <@U0RELEASE>")
	e.posted(fmt.Sprintf("Deployed `%s` to production: release #1", second[:7]))

	// /deploy of the older commit, approved; then /rollback to the first release.
	e.say("U0ALICE", "C0DEPLOYS", "/deploy backend@"+first[:7]+" production")
	e.posted(fmt.Sprintf("<@U0ALICE> is deploying backend `%s` to production: pipeline 2.", first[:7]))
	e.waitFor("the second approval request", func() bool { return len(e.requests()) == 1 })
	e.slack.SendBlockAction("U0RELEASE", "C0DEPLOYS", e.requests()[0].TS, "approve", "")
	e.posted(fmt.Sprintf("Deployed `%s` to production: release #2", first[:7]))
	e.say("U0ALICE", "C0OTHER", "/rollback backend production")
	e.ephemeral("U0ALICE", "backend's commands are taken in <#C0DEPLOYS>")
	e.say("U0ALICE", "C0DEPLOYS", "/rollback backend production")
	e.posted("rolling backend back in production to release #1")
	e.waitFor("the rollback's approval request", func() bool { return len(e.requests()) == 1 })
	e.slack.SendBlockAction("U0RELEASE", "C0DEPLOYS", e.requests()[0].TS, "approve", "")
	e.posted(fmt.Sprintf("Rolled production back to `%s`: release #3", second[:7]))
	want := []string{"#3 " + second[:7] + " success rollback", "#2 " + first[:7] + " success", "#1 " + second[:7] + " success"}
	if got := e.releases("production"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("releases %v, want %v", got, want)
	}
	e.say("U0ALICE", "C0DEPLOYS", "/deploy backend production")
	e.ephemeral("U0ALICE", "backend/production is locked by <@U0ALICE>")
	// One thread per commit: the rollback of the second commit replied
	// in its thread, and the first commit has one of its own.
	threads := 0
	for _, m := range e.slack.Messages("C0DEPLOYS") {
		if strings.Contains(m.AllText(), "*backend* ·") {
			threads++
		}
	}
	if threads != 2 {
		t.Errorf("%d threads, want one per commit (2):%s", threads, e.describe())
	}
	// GitHub heard of it too.
	e.waitFor("GitHub statuses", func() bool { return final(e.gh.Statuses("acme/backend"))["slipway/ci/ship-production"] == "success" })
}
