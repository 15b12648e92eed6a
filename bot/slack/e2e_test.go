package slack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/bot"
	"github.com/slipway-ci/slipway/bot/slack"
	"github.com/slipway-ci/slipway/bot/slack/slacktest"
	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// ackBound is Slack's deadline for acknowledging an envelope, after
// which a command's user is told it failed. How fast acks are is
// BenchmarkAckBurst's; TestAckBeforeKeep checks the ack comes first.
const ackBound = 3 * time.Second

// request finds the approval request in the thread of a commit: the
// reply that has buttons.
func (h *harness) request(sha string) slacktest.Message {
	h.t.Helper()
	var req slacktest.Message
	h.wait("the approval request of "+sha[:7], func() bool {
		for _, p := range h.parents(deploys) {
			if !strings.Contains(string(p.Metadata), sha) {
				continue
			}
			for _, r := range p.Replies {
				if strings.Contains(string(r.Blocks), `"action_id":"approve"`) || len(r.Edits) > 0 && strings.Contains(string(r.Edits[0].Blocks), `"action_id":"approve"`) {
					req = r
					return true
				}
			}
		}
		return false
	})
	return req
}

// onHold is the ID of a pipeline's job waiting for approval.
func (h *harness) onHold(n int) string {
	h.t.Helper()
	for _, j := range h.settle("backend", n).Jobs {
		if j.Status == engine.StatusOnHold {
			return j.ID
		}
	}
	h.t.Fatalf("pipeline %d has no job on hold", n)
	return ""
}

// press clicks a button of a message as user, with value "" for the
// button's own, and waits for the ack.
func (h *harness) press(user string, m slacktest.Message, action, value string) {
	h.t.Helper()
	id := h.fake.SendBlockAction(user, m.Channel, m.TS, action, value)
	if _, err := h.fake.WaitAck(h.t.Context(), id); err != nil {
		h.t.Fatal(err)
	}
	if lat := envelope(h.fake, id).AckLatency(); lat > ackBound {
		h.t.Errorf("a press acknowledged in %v, want within %v", lat, ackBound)
	}
}

// The whole path, Slack to engine and back: a command acked at once and
// answered in the channel, its pipeline's thread, approval requests with
// buttons, presses refused, forged and decided, and a command typed in
// another app's channel.
func TestCommandsAndApprovals(t *testing.T) {
	h := newHarness(t, harnessOptions{})

	env, _ := h.command(alice, deploys, "/deploy backend@v1 to staging")
	t.Logf("/deploy acknowledged in %v", env.AckLatency())
	if env.AckLatency() > ackBound {
		t.Errorf("/deploy acknowledged in %v, want within %v", env.AckLatency(), ackBound)
	}
	h.wait("the public reply", func() bool { return len(h.said(deploys)) == 1 })
	if got, want := h.said(deploys)[0], "<@U0ALICE> is deploying backend v1 (`1111111`) to staging: pipeline 1."; got != want {
		t.Errorf("public reply %q, want %q", got, want)
	}
	if st := h.settle("backend", 1); st.Pipeline.Status != workflows.StatusSuccess {
		t.Fatalf("pipeline 1 %s", st.Pipeline.Status)
	}
	h.wait("the thread's parent, green", func() bool {
		ps := h.parents(deploys)
		return len(ps) == 1 && strings.Contains(ps[0].AllText(), ":white_check_mark: *backend*")
	})
	parent := h.parents(deploys)[0]
	var blocks []map[string]any
	if err := json.Unmarshal(parent.Blocks, &blocks); err != nil || len(blocks) < 3 {
		t.Fatalf("parent's blocks %s: %v", parent.Blocks, err)
	}
	for i, typ := range []string{"section", "context", "section"} {
		if blocks[i]["type"] != typ {
			t.Errorf("parent's block %d is %v, want %s", i, blocks[i]["type"], typ)
		}
	}
	if text := parent.AllText(); !strings.Contains(text, "/deploy to staging") || !strings.Contains(text, ":white_check_mark: ship") {
		t.Errorf("parent reads:\n%s", text)
	}
	if parent.Text != "backend tag v1 1111111: succeeded" {
		t.Errorf("parent's fallback text %q", parent.Text)
	}

	// Two deploys to production, each held for approval in its thread.
	h.command(alice, deploys, "/deploy backend@v2 production")
	h.command(alice, deploys, "/deploy backend@main production")
	job3 := h.onHold(3)
	h.onHold(2)
	req2, req3 := h.request(sha2), h.request(sha3)
	if !req2.Broadcast || !strings.Contains(req2.AllText(), "Who may approve: <@U0RELEASE> or <!subteam^S0SRE>") {
		t.Errorf("approval request reads (broadcast %v):\n%s", req2.Broadcast, req2.AllText())
	}

	// Someone not allowed: refused, to them alone; nothing changes.
	h.press(mallory, req2, "approve", "")
	if e := h.ephemeral(mallory, 1); e.Text != "Sorry, only <@U0RELEASE> or <!subteam^S0SRE> may approve this." || e.Channel != deploys {
		t.Errorf("refusal %+v", e)
	}
	// The change's author: refused, self-approval.
	h.press(alice, req2, "approve", "")
	if e := h.ephemeral(alice, 1); !strings.HasPrefix(e.Text, "You wrote this change") {
		t.Errorf("self-approval refusal %q", e.Text)
	}

	// An approver's press on request 2 whose value was forged to name
	// pipeline 3's approval: it decides request 2's, the message pressed.
	h.press(sre, req2, "approve", job3)
	if e := h.ephemeral(sre, 1); e.Text != "Approved by <@U0SRE>." {
		t.Errorf("approver told %q", e.Text)
	}
	if st := h.settle("backend", 2); st.Pipeline.Status != workflows.StatusSuccess {
		t.Errorf("pipeline 2 (pressed) %s", st.Pipeline.Status)
	}
	if st := h.settle("backend", 3); st.Pipeline.Status != engine.StatusOnHold {
		t.Errorf("pipeline 3 (named by the forged value) %s, want still on hold", st.Pipeline.Status)
	}
	h.wait("request 2 edited", func() bool {
		m, _ := h.fake.Message(deploys, req2.TS)
		return len(m.Edits) > 0
	})
	m2, _ := h.fake.Message(deploys, req2.TS)
	if !strings.Contains(m2.AllText(), "approved by <@U0SRE>") {
		t.Errorf("request 2 after approval reads:\n%s", m2.AllText())
	}
	if strings.Contains(string(m2.Blocks), `"actions"`) {
		t.Errorf("request 2 still has buttons: %s", m2.Blocks)
	}
	if m3, _ := h.fake.Message(deploys, req3.TS); len(m3.Edits) != 0 || !strings.Contains(string(m3.Blocks), `"action_id":"approve"`) {
		t.Errorf("request 3 changed: %+v", m3)
	}
	// The other approver, by name, on request 3; and a late press.
	h.press(release, req3, "reject", "")
	if e := h.ephemeral(release, 1); e.Text != "Rejected by <@U0RELEASE>." {
		t.Errorf("rejecter told %q", e.Text)
	}
	if st := h.settle("backend", 3); st.Pipeline.Status == engine.StatusOnHold {
		t.Errorf("pipeline 3 still on hold after a rejection")
	}
	h.press(sre, req2, "approve", "")
	if e := h.ephemeral(sre, 2); !strings.HasPrefix(e.Text, "Already approved by <@U0SRE>") {
		t.Errorf("a late press told %q", e.Text)
	}

	// Another app's command typed here: refused, to its user alone.
	h.command(alice, deploys, "/deploy frontend@v1 to staging")
	if e := h.ephemeral(alice, 2); e.Text != "frontend's commands are taken in <#C0WEB>, where its threads are." {
		t.Errorf("another app's command answered %q", e.Text)
	}
	if n := h.countPipelines(); n != 3 {
		t.Errorf("%d pipelines, want 3", n)
	}
	if n := len(h.parents(deploys)); n != 3 {
		t.Errorf("%d threads, want one per commit, 3", n)
	}
}

// A connection that dies after an ack (the ack lost with it, so Slack
// sends the envelope again), or that Slack closes: every command runs
// once, including those sent while the app was away.
func TestReconnects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(*slacktest.Fake)
	}{
		{"dropped", (*slacktest.Fake).Drop},
		{"warning", func(f *slacktest.Fake) { f.Disconnect("warning") }},
		{"refresh_requested", func(f *slacktest.Fake) { f.Disconnect("refresh_requested") }},
		{"link_disabled", func(f *slacktest.Fake) { f.Disconnect("link_disabled") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			_, first := h.command(alice, deploys, "/deploy backend@v1 staging")
			tc.break_(h.fake)
			// Slack's retry of the first, and a new command, wait for the
			// app to connect again.
			h.fake.SendSlashCommand(slacktest.SlashCommand{EnvelopeID: first, RetryAttempt: 1, RetryReason: "timeout"})
			second := h.fake.SendSlashCommand(slacktest.SlashCommand{Command: "/deploy", Text: "backend@v2 staging", UserID: alice, ChannelID: deploys})
			h.wait("both acknowledged on a new connection", func() bool {
				acked := 0
				for _, e := range h.fake.Envelopes() {
					if e.Acked && e.Conn > 1 && (e.ID == first || e.ID == second) {
						acked++
					}
				}
				return acked == 2
			})
			// A barrier: a command after them in the same channel is
			// answered after them.
			h.command(alice, deploys, "/slipway help")
			h.ephemeral(alice, 1)
			if got := h.said(deploys); len(got) != 2 || !strings.Contains(got[0], "pipeline 1") || !strings.Contains(got[1], "pipeline 2") {
				t.Errorf("public replies %q, want one per command", got)
			}
			if n := h.countPipelines(); n != 2 {
				t.Errorf("%d pipelines, want 2", n)
			}
			if h.fake.Connects() < 2 {
				t.Errorf("%d connections", h.fake.Connects())
			}
			if err := h.adapter.Connected(); err != nil {
				t.Errorf("Connected after reconnecting: %v", err)
			}
		})
	}
}

// A command whose handling fails (the store is down) is tried again from
// the inbox, and runs once; one that keeps failing is given up, its user
// told.
func TestHandlingRetried(t *testing.T) {
	t.Run("recovers", func(t *testing.T) {
		fs := &flakyStore{fail: 3}
		h := newHarness(t, harnessOptions{botStore: fs.wrap})
		h.command(alice, deploys, "/deploy backend@v1 staging")
		h.wait("the reply", func() bool { return len(h.said(deploys)) == 1 })
		h.settle("backend", 1)
		if fs.calls.Load() != 4 || h.countPipelines() != 1 || len(h.fake.Ephemerals(alice)) != 0 {
			t.Errorf("%d tries, %d pipelines, ephemerals %+v", fs.calls.Load(), h.countPipelines(), h.fake.Ephemerals(alice))
		}
	})
	t.Run("gives up", func(t *testing.T) {
		fs := &flakyStore{fail: 1000}
		h := newHarness(t, harnessOptions{botStore: fs.wrap})
		_, id := h.command(alice, deploys, "/deploy backend@v1 staging")
		if e := h.ephemeral(alice, 1); e.Text != "slipway could not do that: internal error. Please try again later." {
			t.Errorf("told %q", e.Text)
		}
		if fs.calls.Load() != 8 || h.countPipelines() != 0 {
			t.Errorf("%d tries, %d pipelines", fs.calls.Load(), h.countPipelines())
		}
		if handled, result, err := h.db.InboxResult(context.Background(), "slack", id); !handled || !strings.HasPrefix(result, "failed: ") || err != nil {
			t.Errorf("inbox: %v %q %v", handled, result, err)
		}
	})
}

// A process that stops mid-command (acknowledged and kept, not yet
// handled) leaves the command in the inbox: the next one handles it, and
// Slack's retry of its envelope is dropped.
func TestStopMidCommand(t *testing.T) {
	fake := newFake(t)
	path := t.TempDir() + "/slipway.db"
	fs := &flakyStore{block: true}
	h1 := newHarness(t, harnessOptions{fake: fake, dbPath: path, botStore: fs.wrap})
	_, id := h1.command(alice, deploys, "/deploy backend@v1 staging")
	poll(t, "the command in hand", func() bool { return fs.calls.Load() > 0 })
	h1.stop()

	h2 := newHarness(t, harnessOptions{fake: fake, dbPath: path})
	h2.wait("the reply", func() bool { return len(h2.said(deploys)) == 1 })
	fake.SendSlashCommand(slacktest.SlashCommand{EnvelopeID: id, RetryAttempt: 2, RetryReason: "timeout"})
	h2.wait("the retry acknowledged", func() bool {
		n := 0
		for _, a := range fake.Acks() {
			if a.EnvelopeID == id {
				n++
			}
		}
		return n == 2
	})
	h2.command(alice, deploys, "/slipway help")
	h2.ephemeral(alice, 1)
	if got := h2.said(deploys); len(got) != 1 || h2.countPipelines() != 1 {
		t.Errorf("replies %q, %d pipelines; want the command run once", got, h2.countPipelines())
	}
}

// Frames Slack would never send, and payloads slipway cannot use: each
// acknowledged where it has an envelope ID, none handled, nothing
// crashes, and the next command is answered.
func TestMalformedEnvelopes(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, tc := range []struct {
		name, frame, id string
	}{
		{"not JSON", `{"envelope_id": "bad-0", "type": "slash_commands", "payload": `, ""},
		{"no envelope ID", `{"type":"slash_commands","payload":{"command":"/deploy"}}`, ""},
		{"a payload that is a string", `{"envelope_id":"bad-1","type":"slash_commands","payload":"nope","accepts_response_payload":true}`, "bad-1"},
		{"a command without its user", `{"envelope_id":"bad-2","type":"slash_commands","payload":{"command":"/deploy","text":"backend@v1 staging","channel_id":"C0DEPLOYS"}}`, "bad-2"},
		{"a press without actions", `{"envelope_id":"bad-3","type":"interactive","payload":{"type":"block_actions","user":{"id":"U0SRE"},"actions":[]}}`, "bad-3"},
		{"an unknown type", `{"envelope_id":"bad-4","type":"mystery","payload":{}}`, "bad-4"},
		{"an event that is no event", `{"envelope_id":"bad-5","type":"events_api","payload":[1,2]}`, "bad-5"},
		{"a view submission", `{"envelope_id":"bad-6","type":"interactive","payload":{"type":"view_submission","user":{"id":"U0SRE"}}}`, "bad-6"},
		{"a button not slipway's", `{"envelope_id":"bad-7","type":"interactive","payload":{"type":"block_actions","user":{"id":"U0SRE"},"container":{"type":"message","message_ts":"1.000100","channel_id":"C0DEPLOYS"},"actions":[{"action_id":"launch","block_id":"b1","type":"button"}]}}`, "bad-7"},
		{"a press on an ephemeral message", `{"envelope_id":"bad-8","type":"interactive","payload":{"type":"block_actions","user":{"id":"U0SRE"},"container":{"type":"message","message_ts":"1.000100","channel_id":"C0DEPLOYS","is_ephemeral":true},"actions":[{"action_id":"approve","block_id":"b1","type":"button"}]}}`, "bad-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.fake.SendRaw([]byte(tc.frame))
			if tc.id == "" {
				return
			}
			if _, err := h.fake.WaitAck(t.Context(), tc.id); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A press on a message that is no approval request.
	h.fake.SendRaw([]byte(`{"envelope_id":"press-1","type":"interactive","payload":{"type":"block_actions","user":{"id":"U0SRE"},"container":{"type":"message","message_ts":"1.000100","channel_id":"C0DEPLOYS"},"actions":[{"action_id":"approve","block_id":"b1","type":"button","value":"anything"}]}}`))
	if e := h.ephemeral(sre, 1); e.Text != "That message is no approval request of slipway's; nothing changed." {
		t.Errorf("a press on no request told %q", e.Text)
	}
	h.command(alice, deploys, "/slipway help")
	if e := h.ephemeral(alice, 1); !strings.Contains(e.Text, "/deploy <app>") {
		t.Errorf("help reads %q", e.Text)
	}
	pending, _ := h.db.PendingInbox(context.Background(), "slack", time.Now().Add(time.Hour), 100)
	for _, id := range []string{"bad-1", "bad-2", "bad-3", "bad-4", "bad-5", "bad-6", "bad-7", "bad-8"} {
		if _, _, err := h.db.InboxResult(context.Background(), "slack", id); err == nil {
			t.Errorf("%s was kept in the inbox", id)
		}
	}
	if len(pending) != 0 || h.countPipelines() != 0 || len(h.said(deploys)) != 0 {
		t.Errorf("pending %v, %d pipelines, said %q", pending, h.countPipelines(), h.said(deploys))
	}
}

// Slack refusing with 429 (Retry-After) and failing with 5xx for a while
// mid-pipeline: every message of the thread arrives once, in order.
func TestSlackFaultsMidPipeline(t *testing.T) {
	fails := map[string]bool{"a": true, "b": true, "c": true, "d": true}
	gate := make(chan struct{})
	h := newHarness(t, harnessOptions{executor: scriptExecutor{fail: fails, hold: map[string]chan struct{}{"a": gate}}})
	var jobs []*workflows.PlannedJob
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		jobs = append(jobs, job(name))
	}
	h.push(sha1, &workflows.PlannedWorkflow{Name: "ci", Jobs: jobs})
	// Once the thread is there, Slack rate-limits and fails: the failure
	// replies and the parent's edits meet it.
	h.wait("the parent", func() bool { return len(h.parents(deploys)) == 1 })
	h.fake.Inject(slacktest.Fault{Method: "chat.postMessage", Status: 429, RetryAfter: time.Second, Calls: 1})
	h.fake.Inject(slacktest.Fault{Method: "chat.postMessage", Status: 503, Calls: 3})
	h.fake.Inject(slacktest.Fault{Method: "chat.update", Status: 500, Calls: 2})
	close(gate)
	st := h.settle("backend", 1)
	h.wait("four failure replies and the outcome", func() bool {
		ps := h.parents(deploys)
		return len(ps) == 1 && len(ps[0].Replies) >= 4 && strings.HasPrefix(ps[0].Text, "backend main 1111111: failed")
	})
	time.Sleep(200 * time.Millisecond) // for a duplicate to show, if any
	parent := h.parents(deploys)[0]
	var got []string
	for _, r := range parent.Replies {
		got = append(got, r.Text)
	}
	// Jobs run one at a time here: their failures end in their order.
	var want []string
	byEnd := slices.Clone(st.Jobs)
	slices.SortFunc(byEnd, func(x, y engine.JobRecord) int { return x.Finished.Compare(y.Finished) })
	for _, j := range byEnd {
		if fails[j.Name] {
			want = append(want, j.Name+" failed")
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("replies %q, want %q", got, want)
	}
	if len(h.parents(deploys)) != 1 {
		t.Errorf("%d parents", len(h.parents(deploys)))
	}
	statuses := map[int]int{}
	for _, c := range h.fake.Calls("") {
		statuses[c.Status]++
	}
	if statuses[429] != 1 || statuses[503] != 3 || statuses[500] == 0 {
		t.Errorf("answers by status %v: want the faults met", statuses)
	}
	// The failure's log tail, escaped and in a code block.
	if text := parent.Replies[0].AllText(); !strings.Contains(text, "```\n") || !strings.Contains(text, "line 29 &lt;!channel&gt;") {
		t.Errorf("failure reply reads:\n%s", text)
	}
}

// A post whose answer never came (the client gave up, Slack posted it
// all the same) is found through its metadata when the outbox tries
// again, not posted twice.
func TestPostFoundAfterTimeout(t *testing.T) {
	fake := newFake(t)
	// The client gives up after 300ms; the outbox tries again after 800ms.
	h := newHarness(t, harnessOptions{fake: fake, httpClient: &http.Client{Timeout: 300 * time.Millisecond}, retryMin: 800 * time.Millisecond})
	fake.Inject(slacktest.Fault{Method: "chat.postMessage", Delay: 500 * time.Millisecond, Calls: 1})
	h.push(sha1, &workflows.PlannedWorkflow{Name: "ci", Jobs: []*workflows.PlannedJob{job("a")}})
	h.settle("backend", 1)
	h.wait("the parent looked for, then edited", func() bool {
		found := fake.Calls("conversations.history")
		if len(found) == 0 {
			return false
		}
		for _, c := range fake.Calls("chat.update") {
			if c.At.After(found[0].At) {
				return true
			}
		}
		return false
	})
	if n := len(fake.Messages(deploys)); n != 1 {
		t.Errorf("%d messages, want the parent once", n)
	}
	if posts := fake.Calls("chat.postMessage"); len(posts) != 1 {
		t.Errorf("%d posts, want the one that timed out", len(posts))
	}
}

// A workflow of 100 jobs all ending within a second costs a handful of
// Web API calls: the parent's post and a few coalesced edits.
func TestWideWorkflowCalls(t *testing.T) {
	h := newHarness(t, harnessOptions{editEvery: time.Second, parallelism: 100})
	var jobs []*workflows.PlannedJob
	for i := range 100 {
		jobs = append(jobs, job(fmt.Sprint("shard-", i)))
	}
	start := time.Now()
	h.push(sha1, &workflows.PlannedWorkflow{Name: "wide", Jobs: jobs})
	st := h.settle("backend", 1)
	t.Logf("100 jobs settled in %v", time.Since(start))
	if st.Pipeline.Status != workflows.StatusSuccess {
		t.Fatal(st.Pipeline.Status)
	}
	h.wait("the outcome", func() bool {
		ps := h.parents(deploys)
		return len(ps) == 1 && strings.HasPrefix(ps[0].Text, "backend main 1111111: succeeded")
	})
	time.Sleep(1500 * time.Millisecond) // for late edits to show
	n := 0
	for _, c := range h.fake.Calls("") {
		if strings.HasPrefix(c.Method, "chat.") || strings.HasPrefix(c.Method, "conversations.") {
			n++
		}
	}
	t.Logf("%d Web API calls for a workflow of 100 jobs", n)
	if n > 5 {
		t.Errorf("%d Web API calls for a workflow of 100 jobs, want at most 5: %v", n, methods(h.fake.Calls("")))
	}
	if !strings.Contains(h.parents(deploys)[0].AllText(), "100 of 100 jobs done") {
		t.Errorf("parent reads:\n%s", h.parents(deploys)[0].AllText())
	}
}

// A command typed where the bot cannot post (a direct message between
// people) is answered through its response_url.
func TestReplyWhereTheBotCannotPost(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.command(alice, "D0ALICEBOB", "/slipway help")
	e := h.ephemeral(alice, 1)
	if e.Channel != "D0ALICEBOB" || !strings.Contains(e.Text, "/deploy <app>") {
		t.Errorf("answer %+v", e)
	}
	if calls := h.fake.Calls("chat.postEphemeral"); len(calls) != 1 || calls[0].Error != "channel_not_found" || len(h.fake.Calls("response_url")) != 1 {
		t.Errorf("calls %v", methods(h.fake.Calls("")))
	}
}

// A wrong app token ends Run with an error that says which, rather than
// a retry for ever.
func TestRunRefusedAppToken(t *testing.T) {
	fake := newFake(t)
	db, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a := newAdapter(t, fake, slack.Options{AppToken: "xapp-1-A0-revoked", Inbox: db})
	a.Attach(bot.New(bot.Options{}), bot.NewNotifier(bot.NotifierOptions{}))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err = a.Run(ctx)
	if want := "slack: the app token was refused by Slack: invalid_auth — check slack.app_token"; err == nil || err.Error() != want {
		t.Errorf("Run: %v, want %q", err, want)
	}
	if err := a.Connected(); err == nil {
		t.Error("Connected with a refused app token")
	}
	if err := newAdapter(t, fake, slack.Options{}).Run(ctx); err == nil || !strings.Contains(err.Error(), "Run needs") {
		t.Errorf("Run without a bot: %v", err)
	}
}
