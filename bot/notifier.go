package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// Chat is what the notifier needs of a chat: posting, editing, and
// finding a message it may have posted before a crash.
type Chat interface {
	// Post posts m in channel, as a reply in threadTS's thread when
	// threadTS is set (broadcast: also to the channel), and returns its
	// ts. An error may be engine.RetryAfter (a rate limit) or
	// engine.Permanent (a channel that does not exist).
	Post(ctx context.Context, channel, threadTS string, broadcast bool, m Message) (string, error)
	// Update replaces the message at ts.
	Update(ctx context.Context, channel, ts string, m Message) error
	// Find looks for a message the bot posted with m.Key == key in the
	// thread (or channel when threadTS is ""), for a post that may have
	// happened just before a crash; found false when there is none.
	Find(ctx context.Context, channel, threadTS, key string) (ts string, found bool, err error)
}

// KV keeps what the notifier must remember across restarts.
type KV interface {
	Get(ctx context.Context, key string) (string, bool, error)
	Put(ctx context.Context, key, value string) error
}

// NotifierStore is what the notifier reads of the store.
type NotifierStore interface {
	Pipeline(ctx context.Context, id string) (*engine.PipelineRecord, error)
	PipelineState(ctx context.Context, id string) (*engine.PipelineState, error)
	ActivePipelines(ctx context.Context) ([]string, error)
	Approval(ctx context.Context, jobID string) (*engine.ApprovalRecord, error)
	JobLog(ctx context.Context, attemptID string) (io.ReadCloser, error)
}

// NotifierOptions configure a Notifier.
type NotifierOptions struct {
	Chat  Chat
	KV    KV
	Store NotifierStore
	Apps  []*App
	Words Words
	// Link is the address of a pipeline's page (a job's when jobID is
	// set); "" when there is none.
	Link   func(pipelineID, jobID string) string
	Logger *slog.Logger
	// EditEvery is the least time between two edits of one message; 1s.
	EditEvery time.Duration
	// LogLines is how much of a failed job's log is replied; 20.
	LogLines int
}

// Notifier keeps one thread per commit in an app's channel: a parent
// message edited as the commit's pipelines run, and replies for what
// people must see or do. It is the engine's outbox consumer for a chat:
// every message goes out from events, so a chat that is down delays
// messages, never pipelines, and each message is posted once (see
// postOnce). Parent edits are coalesced: at most one per EditEvery per
// message, by Run's goroutine, whatever the number of jobs changing.
type Notifier struct {
	chat      Chat
	kv        KV
	store     NotifierStore
	apps      map[string]*App
	words     Words
	link      func(pipelineID, jobID string) string
	log       *slog.Logger
	editEvery time.Duration
	logLines  int

	mu      sync.Mutex
	pending map[string]*edit // thread key -> the edit it waits for
	wake    chan struct{}
}

// edit is a parent message to render again.
type edit struct {
	pipelineID string
	due        time.Time
	last       time.Time // of the previous edit
}

// thread is where a commit's thread is.
type thread struct {
	Channel string `json:"channel"`
	TS      string `json:"ts"`
}

// NewNotifier returns a notifier; Run does its edits.
func NewNotifier(opts NotifierOptions) *Notifier {
	n := &Notifier{chat: opts.Chat, kv: opts.KV, store: opts.Store, apps: map[string]*App{}, words: opts.Words,
		link: opts.Link, log: opts.Logger, editEvery: opts.EditEvery, logLines: opts.LogLines,
		pending: map[string]*edit{}, wake: make(chan struct{}, 1)}
	for _, a := range opts.Apps {
		n.apps[a.Name] = a
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.link == nil {
		n.link = func(string, string) string { return "" }
	}
	if n.editEvery <= 0 {
		n.editEvery = time.Second
	}
	if n.logLines <= 0 {
		n.logLines = 20
	}
	return n
}

// Notify handles one event of the outbox.
func (n *Notifier) Notify(ctx context.Context, ev engine.Event) error {
	app := n.apps[ev.Pipeline.App]
	if app == nil || app.Channel == "" || ev.Pipeline.Revision == "" {
		return nil // an app without a chat channel, or not an app's
	}
	th, err := n.thread(ctx, app, ev)
	if err != nil {
		return err
	}
	d := ev.Data
	switch ev.Kind {
	case engine.EventJobStarted:
		n.touch(ev)
		if d.Env != "" {
			return n.deploying(ctx, th, ev)
		}
	case engine.EventJobWaiting:
		n.touch(ev)
	case engine.EventJobFinished:
		n.touch(ev)
		if d.Status == workflows.StatusFailed || d.Status == workflows.StatusUnauthorized {
			return n.failed(ctx, th, ev)
		}
	case engine.EventApprovalNeeded:
		n.touch(ev)
		return n.approvalNeeded(ctx, th, ev)
	case engine.EventApprovalDecided:
		n.touch(ev)
		return n.approvalDecided(ctx, ev)
	case engine.EventDeployed:
		return n.reply(ctx, th, ev, n.deployedMessage(ev))
	case engine.EventPipelineFinished:
		switch d.Status {
		case engine.StatusError:
			err = n.reply(ctx, th, ev, Message{Summary: "The config cannot run", Title: fmt.Sprintf(":warning: Pipeline %d cannot run: its config has a problem", ev.Pipeline.Number), Code: d.Reason})
		case workflows.StatusCanceled:
			err = n.reply(ctx, th, ev, Message{Summary: "Canceled", Title: fmt.Sprintf(":no_entry_sign: Pipeline %d was canceled", ev.Pipeline.Number)})
		}
		if err != nil {
			return err
		}
		// The outcome is edited in now, not coalesced: it is the last edit.
		return n.render(ctx, th, ev.PipelineID)
	case engine.EventChatMessage:
		channel, threadTS := th.Channel, th.TS
		if d.Channel != "" && d.Channel != th.Channel {
			channel, threadTS = d.Channel, ""
		}
		text := n.words.Text(d.Message)
		_, err := n.postOnce(ctx, channel, threadTS, false, Message{Key: evKey(ev), Summary: text, Text: text})
		return err
	}
	return nil
}

func evKey(ev engine.Event) string { return fmt.Sprintf("ev/%d", ev.Seq) }

// thread finds the commit's thread, posting its parent message the first
// time: never a second parent for one commit, whichever pipeline of it
// (a rerun, a /deploy of that commit) comes after.
func (n *Notifier) thread(ctx context.Context, app *App, ev engine.Event) (thread, error) {
	key := "thread/" + app.Name + "/" + ev.Pipeline.Revision
	var th thread
	if v, ok, err := n.kv.Get(ctx, key); err != nil {
		return th, err
	} else if ok {
		return th, json.Unmarshal([]byte(v), &th)
	}
	st, err := n.store.PipelineState(ctx, ev.PipelineID)
	if err != nil {
		return th, err
	}
	m := n.parent(app, st)
	m.Key = "parent/" + app.Name + "/" + ev.Pipeline.Revision
	ts, err := n.postOnce(ctx, app.Channel, "", false, m)
	if err != nil {
		return th, err
	}
	th = thread{Channel: app.Channel, TS: ts}
	b, _ := json.Marshal(th)
	return th, n.kv.Put(ctx, key, string(b))
}

// postOnce posts m unless it was posted before, under its Key: it notes
// that it is about to post, so that after a crash between the post and
// its record it looks for the message in the chat instead of posting it
// again.
func (n *Notifier) postOnce(ctx context.Context, channel, threadTS string, broadcast bool, m Message) (string, error) {
	posted := "posted/" + m.Key
	if v, ok, err := n.kv.Get(ctx, posted); err != nil || ok {
		return v, err
	}
	intent := "posting/" + m.Key
	if _, ok, err := n.kv.Get(ctx, intent); err != nil {
		return "", err
	} else if ok {
		ts, found, err := n.chat.Find(ctx, channel, threadTS, m.Key)
		if err != nil {
			return "", err
		}
		if found {
			return ts, n.kv.Put(ctx, posted, ts)
		}
	} else if err := n.kv.Put(ctx, intent, channel); err != nil {
		return "", err
	}
	ts, err := n.chat.Post(ctx, channel, threadTS, broadcast, m)
	if err != nil {
		return "", err
	}
	return ts, n.kv.Put(ctx, posted, ts)
}

// reply posts a reply to the thread for an event, once.
func (n *Notifier) reply(ctx context.Context, th thread, ev engine.Event, m Message) error {
	m.Key = evKey(ev)
	_, err := n.postOnce(ctx, th.Channel, th.TS, false, m)
	return err
}

// touch asks for the parent of an event's commit to be edited soon.
func (n *Notifier) touch(ev engine.Event) {
	key := ev.Pipeline.App + "/" + ev.Pipeline.Revision
	now := time.Now()
	n.mu.Lock()
	e := n.pending[key]
	if e == nil {
		e = &edit{}
		n.pending[key] = e
	}
	if e.due.IsZero() {
		e.due = now
		if next := e.last.Add(n.editEvery); next.After(now) {
			e.due = next
		}
	}
	e.pipelineID = ev.PipelineID
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// render edits a thread's parent to show a pipeline as it is now.
func (n *Notifier) render(ctx context.Context, th thread, pipelineID string) error {
	st, err := n.store.PipelineState(ctx, pipelineID)
	if err != nil {
		return err
	}
	app := n.apps[st.Pipeline.App]
	if app == nil {
		return nil
	}
	key := st.Pipeline.App + "/" + st.Pipeline.Trigger.Revision
	n.mu.Lock()
	if e := n.pending[key]; e != nil {
		e.last = time.Now()
	}
	n.mu.Unlock()
	return n.chat.Update(ctx, th.Channel, th.TS, n.parent(app, st))
}

// Run makes the coalesced parent edits until ctx ends. At start it edits
// the threads of the unfinished pipelines, which a previous process may
// have left behind the truth.
func (n *Notifier) Run(ctx context.Context) error {
	if ids, err := n.store.ActivePipelines(ctx); err == nil {
		for _, id := range ids {
			if p, err := n.store.Pipeline(ctx, id); err == nil {
				n.touch(engine.Event{PipelineID: id, Pipeline: p.Ref()})
			}
		}
	}
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		next := n.flush(ctx)
		if !next.IsZero() {
			t.Reset(max(time.Until(next), time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-n.wake:
		case <-t.C:
		}
	}
}

// Flush makes every pending edit now, due or not: a terminal session
// shows a thread as it is before the next command.
func (n *Notifier) Flush(ctx context.Context) {
	n.mu.Lock()
	for _, e := range n.pending {
		if !e.due.IsZero() {
			e.due = time.Now()
		}
	}
	n.mu.Unlock()
	n.flush(ctx)
}

// flush makes the edits that are due and says when the next one is.
func (n *Notifier) flush(ctx context.Context) time.Time {
	now := time.Now()
	var due []string
	var ids []string
	var next time.Time
	n.mu.Lock()
	for key, e := range n.pending {
		switch {
		case e.due.IsZero():
			if now.Sub(e.last) > time.Hour {
				delete(n.pending, key)
			}
		case !e.due.After(now):
			due, ids = append(due, key), append(ids, e.pipelineID)
			e.due, e.last = time.Time{}, now
		case next.IsZero() || e.due.Before(next):
			next = e.due
		}
	}
	n.mu.Unlock()
	for i, key := range due {
		app, sha, _ := strings.Cut(key, "/")
		var th thread
		v, ok, err := n.kv.Get(ctx, "thread/"+app+"/"+sha)
		if err == nil && ok {
			err = json.Unmarshal([]byte(v), &th)
		}
		if err == nil && ok {
			err = n.render(ctx, th, ids[i])
		}
		if err != nil && ctx.Err() != nil {
			// Cut short by the process's end: no failure; the
			// pipeline's end edits the thread through the outbox,
			// whose retries outlive this process.
			continue
		}
		if err != nil {
			// Tried again at the next change, or at the pipeline's end,
			// whose edit goes through the outbox and its retries.
			n.log.Warn("edit of a commit's thread failed", "app", app, "commit", sha, "err", err)
			var ra *engine.RetryAfterError
			if errors.As(err, &ra) {
				n.mu.Lock()
				if e := n.pending[key]; e != nil && e.due.IsZero() {
					e.due = time.Now().Add(ra.After)
				}
				n.mu.Unlock()
			}
		}
	}
	return next
}

// deploying replies once per pipeline and environment that a deploy there
// started.
func (n *Notifier) deploying(ctx context.Context, th thread, ev engine.Event) error {
	p := ev.Pipeline
	verb := "Deploying"
	if p.Rollback {
		verb = "Rolling back to"
	}
	m := Message{Key: "deploying/" + p.ID + "/" + ev.Data.Env, Summary: verb + " " + ev.Data.Env,
		Title: fmt.Sprintf(":rocket: %s %s in %s (pipeline %d)", verb, n.words.version(p.Revision, ""), ev.Data.Env, p.Number)}
	_, err := n.postOnce(ctx, th.Channel, th.TS, false, m)
	return err
}

func (n *Notifier) deployedMessage(ev engine.Event) Message {
	p, d := ev.Pipeline, ev.Data
	title := fmt.Sprintf(":white_check_mark: Deployed %s to %s: release #%d", n.words.version(p.Revision, ""), d.Env, d.Release)
	if p.Rollback {
		title = fmt.Sprintf(":rewind: Rolled %s back to %s: release #%d", d.Env, n.words.version(p.Revision, ""), d.Release)
	}
	text := "Started by " + n.words.mention(p.Author)
	if d.Actor != "" {
		text += ", approved by " + n.words.mentions(strings.Split(d.Actor, ","))
	}
	return Message{Summary: fmt.Sprintf("Deployed to %s", d.Env), Title: title, Text: text + "."}
}

// failed replies with a failed job's last log lines.
func (n *Notifier) failed(ctx context.Context, th thread, ev engine.Event) error {
	d := ev.Data
	title := fmt.Sprintf(":x: *%s* failed", d.Job)
	switch {
	case d.ExitCode > 0:
		title += fmt.Sprintf(" (exit %d)", d.ExitCode)
	case d.Reason != "":
		title += ": " + n.words.Text(d.Reason)
	}
	m := Message{Summary: d.Job + " failed", Title: title}
	if link := n.link(ev.PipelineID, d.JobID); link != "" {
		m.Text = "<" + link + "|The whole log>"
	}
	if d.AttemptID != "" {
		if r, err := n.store.JobLog(ctx, d.AttemptID); err == nil {
			lines, err := Tail(r, n.logLines)
			r.Close()
			if err == nil {
				m.Code = strings.Join(lines, "\n")
			}
		}
	}
	return n.reply(ctx, th, ev, m)
}

// approvalNeeded posts the approval request, with its buttons, in the
// thread and the channel; its message is remembered for the decision's
// edit and for routing presses.
func (n *Notifier) approvalNeeded(ctx context.Context, th thread, ev engine.Event) error {
	ap, err := n.store.Approval(ctx, ev.Data.JobID)
	if err != nil {
		return err
	}
	m := n.approvalMessage(ev, ap)
	m.Key = evKey(ev)
	ts, err := n.postOnce(ctx, th.Channel, th.TS, true, m)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(thread{Channel: th.Channel, TS: ts})
	if err := n.kv.Put(ctx, "approval/"+ev.Data.JobID, string(b)); err != nil {
		return err
	}
	return n.kv.Put(ctx, "button/"+th.Channel+"/"+ts, ev.Data.JobID)
}

func (n *Notifier) approvalMessage(ev engine.Event, ap *engine.ApprovalRecord) Message {
	d := ev.Data
	what := d.Job
	if len(ap.Envs) > 0 {
		what = "the deploy to " + strings.Join(ap.Envs, " and ")
	}
	m := Message{
		Summary: fmt.Sprintf("%s waits for approval", d.Job),
		Title:   fmt.Sprintf(":double_vertical_bar: *%s* waits for approval", d.Job),
		Text: fmt.Sprintf("Approving lets %s go on (pipeline %d, %s). Who may approve: %s. It expires %s.", what,
			ev.Pipeline.Number, n.words.version(ev.Pipeline.Revision, ""), n.words.Approvers(ap.Approvers), ap.Expires.UTC().Format("Mon 2 Jan 15:04 UTC")),
		Buttons: []Button{
			{Action: ActionApprove, Label: "Approve", Style: "primary", Value: d.JobID},
			{Action: ActionReject, Label: "Reject", Style: "danger", Value: d.JobID},
		},
	}
	if !ap.AllowSelf {
		p, err := n.store.Pipeline(context.Background(), ev.PipelineID)
		if err == nil && authorsUnknown(p.AuthorList()) {
			m.Text += " The change's author could not be matched to a chat user, so slipway cannot tell whether an approver wrote it."
		}
	}
	return m
}

func authorsUnknown(authors []string) bool {
	for _, a := range authors {
		if strings.HasPrefix(a, "github:") {
			return true
		}
	}
	return false
}

// approvalDecided edits the approval request to say how it was decided,
// its buttons gone.
func (n *Notifier) approvalDecided(ctx context.Context, ev engine.Event) error {
	v, ok, err := n.kv.Get(ctx, "approval/"+ev.Data.JobID)
	if err != nil || !ok {
		return err
	}
	var at thread
	if err := json.Unmarshal([]byte(v), &at); err != nil {
		return err
	}
	d := ev.Data
	var title string
	switch d.Status {
	case engine.ApprovalApproved:
		title = fmt.Sprintf(":white_check_mark: *%s* approved by %s", d.Job, n.words.mention(d.Actor))
	case engine.ApprovalRejected:
		title = fmt.Sprintf(":no_entry_sign: *%s* rejected by %s", d.Job, n.words.mention(d.Actor))
	case engine.ApprovalExpired:
		title = fmt.Sprintf(":hourglass: The approval of *%s* expired: %s", d.Job, n.words.Text(d.Reason))
	default:
		title = fmt.Sprintf(":no_entry_sign: The approval of *%s* was canceled: %s", d.Job, n.words.Text(d.Reason))
	}
	return n.chat.Update(ctx, at.Channel, at.TS, Message{Summary: title, Title: title})
}

// ApprovalJob is the job whose approval request is the message at ts in
// channel; "" when that message is none of the bot's requests. A press
// decides that job, whatever the button's value says.
func (n *Notifier) ApprovalJob(ctx context.Context, channel, ts string) (string, error) {
	v, _, err := n.kv.Get(ctx, "button/"+channel+"/"+ts)
	return v, err
}
