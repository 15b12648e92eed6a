package bot

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// fakeChat keeps what the notifier posts and edits, as a chat would.
type fakeChat struct {
	mu       sync.Mutex
	n        int
	messages []*chatMessage // in post order
	byTS     map[string]*chatMessage
	calls    int
	down     bool
}

type chatMessage struct {
	Channel, TS, ThreadTS string
	Broadcast             bool
	M                     Message
	Edits                 []Message
}

func newFakeChat() *fakeChat { return &fakeChat{byTS: map[string]*chatMessage{}} }

func (c *fakeChat) Post(ctx context.Context, channel, threadTS string, broadcast bool, m Message) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.down {
		return "", engine.RetryAfter(fmt.Errorf("ratelimited"), time.Second)
	}
	c.n++
	ts := fmt.Sprintf("1700000000.%06d", c.n)
	cm := &chatMessage{Channel: channel, TS: ts, ThreadTS: threadTS, Broadcast: broadcast, M: m}
	c.messages = append(c.messages, cm)
	c.byTS[ts] = cm
	return ts, nil
}

func (c *fakeChat) Update(ctx context.Context, channel, ts string, m Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.down {
		return engine.RetryAfter(fmt.Errorf("ratelimited"), time.Second)
	}
	cm := c.byTS[ts]
	if cm == nil {
		return engine.Permanent(fmt.Errorf("message_not_found"))
	}
	cm.Edits = append(cm.Edits, m)
	return nil
}

func (c *fakeChat) Find(ctx context.Context, channel, threadTS, key string) (string, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.messages {
		if m.Channel == channel && m.ThreadTS == threadTS && m.M.Key == key {
			return m.TS, true, nil
		}
	}
	return "", false, nil
}

// now is a message as it reads now.
func (c *fakeChat) now(cm *chatMessage) Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cm.current()
}

// current is a message as it reads now; the chat's lock is held.
func (cm *chatMessage) current() Message {
	if len(cm.Edits) > 0 {
		return cm.Edits[len(cm.Edits)-1]
	}
	return cm.M
}

func (c *fakeChat) parents() []*chatMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*chatMessage
	for _, m := range c.messages {
		if m.ThreadTS == "" {
			out = append(out, m)
		}
	}
	return out
}

func (c *fakeChat) replies(parent string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.messages {
		if m.ThreadTS == parent {
			out = append(out, m.current().Title)
		}
	}
	return out
}

// scriptExecutor ends jobs as told: failed for names in fail, after
// writing a log.
type scriptExecutor struct{ fail map[string]bool }

func (x scriptExecutor) Run(ctx context.Context, job *engine.JobRun, log io.Writer) (engine.JobResult, error) {
	for i := range 30 {
		fmt.Fprintf(log, "%s line %d\n", job.JobName, i)
	}
	if x.fail[job.JobName] {
		return engine.JobResult{Status: workflows.StatusFailed, ExitCode: 2}, nil
	}
	return engine.JobResult{Status: workflows.StatusSuccess}, nil
}
func (scriptExecutor) Cleanup(ctx context.Context, attemptID string) error { return nil }

type threadHarness struct {
	*botHarness
	chat     *fakeChat
	notifier *Notifier
	cancel   context.CancelFunc
}

// newThreadHarness runs an engine whose "chat" consumer is a notifier
// posting to a fake chat, with the edits' loop running.
func newThreadHarness(t *testing.T, path string, x engine.Executor, editEvery time.Duration) *threadHarness {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	app := backendApp()
	chat := newFakeChat()
	n := NewNotifier(NotifierOptions{Chat: chat, KV: db.KV("chat"), Store: db, Apps: []*App{app}, EditEvery: editEvery,
		Link: func(p, j string) string { return "https://slipway.example.com/pipelines/" + p }})
	e := engine.New(engine.Options{Store: db, Executor: x, DataDir: t.TempDir(),
		Apps: map[string]*engine.App{"backend": app.App}, Notifiers: map[string]engine.Notifier{"chat": n},
		RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { n.Run(rctx); close(done) }()
	h := &threadHarness{chat: chat, notifier: n, cancel: cancel,
		botHarness: &botHarness{t: t, db: db, engine: e, repos: &fakeRepos{config: deployConfig, refs: map[string]Commit{"v1": {SHA: sha1, Tag: "v1"}}}}}
	h.bot = New(Options{Engine: e, Store: db, Repos: h.repos, Apps: []*App{app}, Directory: groups{"U0SRE": {"S0SRE"}}})
	t.Cleanup(func() {
		cancel()
		<-done
		e.Shutdown(context.Background())
		db.Close()
	})
	return h
}

// waitChat waits until cond holds for the chat.
func (h *threadHarness) waitChat(what string, cond func() bool) {
	h.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			h.t.Fatalf("the chat never showed %s", what)
		}
	}
}

func (h *threadHarness) push(sha string, wfs ...*workflows.PlannedWorkflow) *engine.PipelineRecord {
	h.t.Helper()
	p, err := h.engine.Submit(context.Background(), engine.PipelineRequest{App: "backend", Repo: "acme/backend", Author: "U0ALICE",
		Trigger: workflows.Trigger{Branch: "main", Revision: sha}, Commit: engine.CommitInfo{Title: "Fix the login redirect", URL: "https://github.com/acme/backend/commit/" + sha},
		Plan: &workflows.Plan{Workflows: wfs}})
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

// One commit, one thread: a parent edited as the pipeline runs, replies
// for a failure (with the log's tail), an approval request with buttons
// (edited once decided), a deploy starting and done; a later pipeline of
// the same commit, and a notifier started again on the same store, post
// in the same thread.
func TestThreadPerCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "slipway.db")
	h := newThreadHarness(t, path, scriptExecutor{fail: map[string]bool{"lint": true}}, 50*time.Millisecond)
	hold := job("hold", "test")
	hold.Type, hold.Spec = workflows.JobApproval, nil
	prod := job("ship", "hold")
	prod.Context = []string{"production"}
	p := h.push(sha1, &workflows.PlannedWorkflow{Name: "ci", Jobs: []*workflows.PlannedJob{job("test"), job("lint"), hold, prod}})
	h.waitChat("the approval request", func() bool {
		ps := h.chat.parents()
		return len(ps) == 1 && len(h.chat.replies(ps[0].TS)) == 2
	})
	parent := h.chat.parents()[0]
	// The failure and the request come in the order their jobs ended.
	var failure, request *chatMessage
	h.chat.mu.Lock()
	for _, m := range h.chat.messages[1:] {
		switch {
		case strings.Contains(m.M.Title, "*lint* failed (exit 2)"):
			failure = m
		case strings.Contains(m.M.Title, "*hold* waits for approval"):
			request = m
		}
	}
	h.chat.mu.Unlock()
	if failure == nil || request == nil {
		t.Fatalf("replies %q", h.chat.replies(parent.TS))
	}
	if !strings.HasSuffix(failure.M.Code, "lint line 29") || strings.Count(failure.M.Code, "\n") != 19 || !strings.Contains(failure.M.Text, p.ID) {
		t.Errorf("failure reply %+v", failure.M)
	}
	if !request.Broadcast || len(request.M.Buttons) != 2 || !strings.Contains(request.M.Text, "U0RELEASE or S0SRE") {
		t.Errorf("approval request %+v", request)
	}
	// A press routes by the message pressed, not by what the button says.
	// The notifier records the request just after posting it.
	var jobID string
	var err error
	h.waitChat("the approval request recorded", func() bool {
		jobID, err = h.notifier.ApprovalJob(context.Background(), request.Channel, request.TS)
		return err != nil || jobID != ""
	})
	if err != nil || jobID == "" {
		t.Fatalf("approval job of the request: %q, %v", jobID, err)
	}
	if other, _ := h.notifier.ApprovalJob(context.Background(), request.Channel, failure.TS); other != "" {
		t.Errorf("a message that is no request routes to %q", other)
	}
	if r, err := h.bot.Decide(context.Background(), Press{User: "U0SRE", Approve: true, JobID: jobID}); err != nil || !r.Public && !strings.HasPrefix(r.Text, "Approved") {
		t.Fatalf("press: %q, %v", r.Text, err)
	}
	h.settle("backend", 1)
	h.waitChat("the deploy and the outcome", func() bool {
		return len(h.chat.replies(parent.TS)) == 4 && strings.Contains(h.chat.now(parent).Title, ":x:")
	})
	replies := strings.Join(h.chat.replies(parent.TS), "\n")
	for _, want := range []string{"*hold* approved by U0SRE", ":rocket: Deploying `1111111` in production (pipeline 1)", "Deployed `1111111` to production: release #1"} {
		if !strings.Contains(replies, want) {
			t.Errorf("replies %q lack %q", replies, want)
		}
	}
	cur := h.chat.now(parent)
	if want := ":x: *backend* · main · <https://github.com/acme/backend/commit/" + sha1 + "|1111111> Fix the login redirect"; cur.Title != want {
		t.Errorf("parent title %q, want %q", cur.Title, want)
	}
	if got := strings.Join(cur.Sections[0].Lines, "\n"); !strings.Contains(got, ":x: lint") || !strings.Contains(got, ":white_check_mark: ship") {
		t.Errorf("parent jobs %q", got)
	}

	// Another pipeline of the same commit, through a new notifier on the
	// same store (a restart): the same thread.
	h.cancel()
	h2 := newThreadHarness(t, path, scriptExecutor{}, 50*time.Millisecond)
	h2.push(sha1, &workflows.PlannedWorkflow{Name: "again", Jobs: []*workflows.PlannedJob{job("test")}})
	time.Sleep(300 * time.Millisecond)
	if ps := h2.chat.parents(); len(ps) != 0 {
		t.Errorf("a second parent for one commit: %+v", ps[0].M.Title)
	}
}

// A post made just before a crash (its record not yet written) is found
// in the chat when the event comes again, not posted twice.
func TestPostOnceAcrossACrash(t *testing.T) {
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	chat := newFakeChat()
	n := NewNotifier(NotifierOptions{Chat: chat, KV: db.KV("chat"), Store: db})
	ctx := context.Background()
	m := Message{Key: "ev/7", Title: "hello"}
	// The first try posts, then dies before recording it.
	db.KV("chat").Put(ctx, "posting/ev/7", "C1")
	chat.Post(ctx, "C1", "", false, m)
	ts, err := n.postOnce(ctx, "C1", "", false, m)
	if err != nil || ts != "1700000000.000001" || len(chat.parents()) != 1 {
		t.Errorf("postOnce after a crash: %q, %v; %d messages", ts, err, len(chat.parents()))
	}
	if ts2, _ := n.postOnce(ctx, "C1", "", false, m); ts2 != ts || len(chat.parents()) != 1 {
		t.Errorf("posted again")
	}
}

// 100 jobs ending within a second cost a few edits of the parent, not
// one per job (Slack allows about one edit a second per message).
func TestParentEditsAreCoalesced(t *testing.T) {
	h := newThreadHarness(t, filepath.Join(t.TempDir(), "slipway.db"), scriptExecutor{}, time.Second)
	var jobs []*workflows.PlannedJob
	for i := range 100 {
		jobs = append(jobs, job(fmt.Sprint("shard-", i)))
	}
	h.push(sha1, &workflows.PlannedWorkflow{Name: "wide", Jobs: jobs})
	st := h.settle("backend", 1)
	if st.Pipeline.Status != workflows.StatusSuccess {
		t.Fatal(st.Pipeline.Status)
	}
	h.waitChat("the outcome", func() bool {
		ps := h.chat.parents()
		return len(ps) == 1 && strings.HasPrefix(h.chat.now(ps[0]).Title, ":white_check_mark:")
	})
	h.chat.mu.Lock()
	calls := h.chat.calls
	h.chat.mu.Unlock()
	t.Logf("%d chat calls for 100 jobs", calls)
	if calls > 5 {
		t.Errorf("%d chat calls for a workflow of 100 jobs ending within a second", calls)
	}
	if lines := h.chat.now(h.chat.parents()[0]).Sections[0].Lines; lines[0] != "100 of 100 jobs done" {
		t.Errorf("a large workflow is listed as %q", lines)
	}
}

// An edit that a shutdown cuts short is no failure to warn about: the
// process is going, and the pipeline's end edits the thread through the
// outbox, whose retries outlive it.
func TestEditCutShortByShutdownIsNoWarning(t *testing.T) {
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var log bytes.Buffer
	n := NewNotifier(NotifierOptions{Chat: newFakeChat(), KV: db.KV("chat"), Store: db, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	db.KV("chat").Put(context.Background(), "thread/backend/"+sha1, `{"channel":"C1","ts":"1700000000.000001"}`)
	n.pending["backend/"+sha1] = &edit{pipelineID: "p1", due: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n.flush(ctx)
	if log.Len() != 0 {
		t.Errorf("logged:\n%s", log.String())
	}
}
