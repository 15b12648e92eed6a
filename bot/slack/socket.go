package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/slipway-ci/slipway/bot"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// The inbox's kinds of Slack requests.
const (
	kindCommand = "slash_commands"
	kindPress   = "block_actions"
)

// request is what the inbox keeps of an envelope: what handling it
// needs, not Slack's whole payload (no verification token, no trigger).
type request struct {
	User    string `json:"user"`
	Channel string `json:"channel"`
	// A slash command.
	Command string `json:"command,omitempty"`
	Text    string `json:"text,omitempty"`
	// A press: the message pressed and the button's action.
	MessageTS string `json:"message_ts,omitempty"`
	Action    string `json:"action,omitempty"`
	// ResponseURL answers where the bot cannot post (a direct message);
	// Slack honours it for 30 minutes.
	ResponseURL string `json:"response_url,omitempty"`
}

// Tuning of the inbox's handling.
const (
	// lanes handle requests side by side; a channel's requests take one
	// lane, in the order they came.
	lanes     = 4
	laneQueue = 16
	// pendingBatch is how many due requests one look at the inbox takes.
	pendingBatch = 64
	// maxAttempts is how many times a request whose handling fails is
	// tried before its user is told it failed.
	maxAttempts = 8
	// receiveFor is how long an acknowledged envelope is tried to be kept
	// in the inbox before its user is told it was lost.
	receiveFor = time.Minute
	// replyTries is how many times a reply is posted before it is given
	// up, honouring Slack's Retry-After in between.
	replyTries = 4
)

// Run listens on Socket Mode until ctx ends, and handles what comes: each
// envelope is acknowledged first, before anything else, then kept in the
// inbox (source "slack", ID the envelope's), then handled from the inbox
// by the bot, its reply posted. Slack's retries of an envelope carry its
// ID and are acknowledged and dropped; so are envelopes that cannot be
// read. slack-go reconnects on Slack's disconnect and on a dead
// connection; an ack lost with a connection makes Slack send the envelope
// again, which the inbox takes once.
//
// Its goroutines (the listener, the inbox's keeper, the handlers) end
// before it returns. It returns nil when ctx ends, and an error when
// Slack refuses the app token.
func (a *Adapter) Run(ctx context.Context) error {
	a.mu.Lock()
	b, n := a.bot, a.notifier
	a.mu.Unlock()
	if b == nil || n == nil || a.inbox == nil {
		return errors.New("slack: Run needs the bot, the notifier (Options or Attach) and the inbox")
	}
	h := &handler{a: a, bot: b, notifier: n, wake: make(chan struct{}, 1)}
	sm := socketmode.New(a.api)
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	received := &queue{signal: make(chan struct{}, 1)}
	listening := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(listening)
		h.listen(ctx, sm, received)
	})
	wg.Go(func() { h.keep(ctx, received, listening) })
	wg.Go(func() { h.work(ctx) })

	a.log.Info("slack: connecting over Socket Mode", "api_url", a.apiURL)
	err := sm.RunContext(ctx)
	cancel()
	wg.Wait()
	if parent.Err() != nil || err == nil {
		return nil
	}
	switch slackCode(err) {
	case "invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive":
		return fmt.Errorf("slack: the app token was refused by Slack: %s — check slack.app_token", slackCode(err))
	}
	return fmt.Errorf("slack: socket mode: %w", err)
}

// handler is one Run's state.
type handler struct {
	a        *Adapter
	bot      *bot.Bot
	notifier *bot.Notifier
	wake     chan struct{} // the inbox has new requests
}

// received is an acknowledged envelope on its way to the inbox.
type received struct {
	item  engine.InboxItem
	req   request
	retry int // Slack's retry_attempt
}

// queue holds acknowledged envelopes until the inbox has them. It never
// blocks the listener, which must get to the next ack.
type queue struct {
	mu     sync.Mutex
	items  []received
	signal chan struct{}
}

func (q *queue) push(r received) {
	q.mu.Lock()
	q.items = append(q.items, r)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *queue) take() []received {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

// listen reads slack-go's events until ctx ends. An envelope is
// acknowledged before anything else is done with it.
func (h *handler) listen(ctx context.Context, sm *socketmode.Client, q *queue) {
	for {
		select {
		case <-ctx.Done():
			return
		case evt := <-sm.Events:
			h.event(ctx, sm, evt, q)
		}
	}
}

func (h *handler) event(ctx context.Context, sm *socketmode.Client, evt socketmode.Event, q *queue) {
	log := h.a.log
	switch evt.Type {
	case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive, socketmode.EventTypeEventsAPI:
		if evt.Request == nil || evt.Request.EnvelopeID == "" {
			log.Warn("slack: an envelope without an ID was dropped", "type", evt.Type)
			return
		}
		at := time.Now()
		if err := sm.AckCtx(ctx, evt.Request.EnvelopeID, nil); err != nil {
			log.Warn("slack: envelope not acknowledged; Slack will send it again", "envelope", evt.Request.EnvelopeID, "err", err)
		}
		r, ok := h.parse(evt)
		if !ok {
			return
		}
		r.item = engine.InboxItem{Source: Source, ID: evt.Request.EnvelopeID, Kind: r.item.Kind, Received: at}
		r.item.Payload, _ = json.Marshal(r.req)
		r.retry = evt.Request.RetryAttempt
		q.push(r)
	case socketmode.EventTypeErrorBadMessage:
		bad, _ := evt.Data.(*socketmode.ErrorBadMessage)
		if bad == nil {
			return
		}
		var env struct {
			EnvelopeID string `json:"envelope_id"`
			Type       string `json:"type"`
		}
		_ = json.Unmarshal(bad.Message, &env)
		if env.EnvelopeID != "" {
			// Acknowledged all the same: Slack would send it again and
			// again, and it would never read better.
			if err := sm.AckCtx(ctx, env.EnvelopeID, nil); err != nil {
				log.Warn("slack: malformed envelope not acknowledged", "envelope", env.EnvelopeID, "err", err)
			}
		}
		log.Warn("slack: a malformed envelope was dropped", "envelope", env.EnvelopeID, "type", env.Type, "err", bad.Cause)
	case socketmode.EventTypeIncomingError:
		log.Warn("slack: a Socket Mode frame could not be read", "err", eventErr(evt))
	case socketmode.EventTypeErrorWriteFailed:
		log.Warn("slack: an acknowledgement was not written; Slack will send its envelope again", "err", eventErr(evt))
	case socketmode.EventTypeConnecting:
		h.a.setLink(errors.New("connecting to Socket Mode"))
		log.Debug("slack: connecting")
	case socketmode.EventTypeDisconnect:
		h.a.setLink(errors.New("Slack asked Socket Mode to reconnect"))
	case socketmode.EventTypeConnected:
		h.a.setLink(nil)
		if c, ok := evt.Data.(*socketmode.ConnectedEvent); ok && c.ConnectionCount > 0 {
			log.Info("slack: reconnected", "connections", c.ConnectionCount+1)
		} else {
			log.Info("slack: connected")
		}
	case socketmode.EventTypeConnectionError:
		h.a.setLink(fmt.Errorf("connecting to Socket Mode failed: %v", eventErr(evt)))
		log.Warn("slack: connecting failed; trying again", "err", eventErr(evt))
	case socketmode.EventTypeInvalidAuth:
		h.a.setLink(errors.New("Slack refused the app token (slack.app_token)"))
		log.Error("slack: Slack refused the app token")
	}
}

func eventErr(evt socketmode.Event) any {
	switch d := evt.Data.(type) {
	case *slackapi.IncomingEventError:
		return d.ErrorObj
	case *socketmode.ErrorWriteFailed:
		return d.Cause
	case *slackapi.ConnectionErrorEvent:
		return d.ErrorObj
	}
	return evt.Data
}

// parse reads what handling an envelope needs; false for what slipway
// does not handle (events, other interactions, buttons not its own) and
// for what cannot be read, which is logged.
func (h *handler) parse(evt socketmode.Event) (received, bool) {
	log := h.a.log.With("envelope", evt.Request.EnvelopeID)
	var r received
	switch d := evt.Data.(type) {
	case slackapi.SlashCommand:
		r.item.Kind = kindCommand
		r.req = request{User: d.UserID, Channel: d.ChannelID, Command: d.Command, Text: d.Text, ResponseURL: d.ResponseURL}
		if d.UserID == "" || d.ChannelID == "" || d.Command == "" {
			log.Warn("slack: a slash command without its user, channel or command was dropped")
			return r, false
		}
		return r, true
	case slackapi.InteractionCallback:
		if d.Type != slackapi.InteractionTypeBlockActions {
			log.Debug("slack: an interaction slipway does not handle", "type", d.Type)
			return r, false
		}
		if len(d.ActionCallback.BlockActions) == 0 || d.ActionCallback.BlockActions[0] == nil {
			log.Warn("slack: a press without an action was dropped")
			return r, false
		}
		action := d.ActionCallback.BlockActions[0].ActionID
		if action != bot.ActionApprove && action != bot.ActionReject {
			log.Debug("slack: a press of a button not slipway's", "action", action)
			return r, false
		}
		channel, ts := d.Container.ChannelID, d.Container.MessageTs
		if channel == "" {
			channel = d.Channel.ID
		}
		if ts == "" {
			ts = d.Message.Timestamp
		}
		if d.User.ID == "" || channel == "" || ts == "" || d.Container.IsEphemeral {
			log.Warn("slack: a press without its user, channel or message was dropped")
			return r, false
		}
		r.item.Kind = kindPress
		r.req = request{User: d.User.ID, Channel: channel, MessageTS: ts, Action: action, ResponseURL: d.ResponseURL}
		return r, true
	case slackevents.EventsAPIEvent:
		log.Debug("slack: an Events API event slipway does not subscribe to", "type", d.Type)
		return r, false
	}
	log.Warn("slack: an envelope slipway cannot read was dropped", "data", fmt.Sprintf("%T", evt.Data))
	return r, false
}

// keep puts acknowledged envelopes into the inbox, in the order they
// came, until the listener has stopped and its last envelopes are kept.
func (h *handler) keep(ctx context.Context, q *queue, listening <-chan struct{}) {
	for {
		select {
		case <-q.signal:
			for _, r := range q.take() {
				h.receive(ctx, r)
			}
		case <-listening:
			for _, r := range q.take() {
				h.receive(ctx, r)
			}
			return
		}
	}
}

// receive puts one envelope into the inbox, which takes an envelope once:
// a retry of one it has is dropped. When the inbox cannot take it (the
// store is down) it is tried again for receiveFor, then its user is told.
// It is kept even while Run stops: it was acknowledged, and would be lost.
func (h *handler) receive(ctx context.Context, r received) {
	log := h.a.log.With("envelope", r.item.ID, "kind", r.item.Kind)
	kctx := context.WithoutCancel(ctx)
	wait := 50 * time.Millisecond
	deadline := time.Now().Add(receiveFor)
	for {
		fresh, err := h.a.inbox.Receive(kctx, r.item)
		if err == nil {
			if fresh {
				h.kick()
			} else {
				log.Info("slack: an envelope already received was sent again; dropped", "retry_attempt", r.retry)
			}
			return
		}
		if time.Now().After(deadline) || !sleep(ctx, wait) {
			log.Error("slack: an acknowledged envelope could not be kept and is lost", "err", err)
			if ctx.Err() == nil {
				h.tell(ctx, r.req, "slipway could not take that just now (internal error); please try again.")
			}
			return
		}
		log.Warn("slack: keeping an envelope failed; trying again", "retry_in", wait, "err", err)
		wait = min(wait*2, 5*time.Second)
	}
}

func (h *handler) kick() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// work hands the inbox's due requests to the lanes until ctx ends, and
// waits for the lanes to finish what they hold. A request is in one lane
// at a time. The inbox is read again when a request arrives, a retry
// comes due, or the requests it gave have all gone to their lanes and it
// had more: not at every request handled, which would cost a burst of
// commands a query each.
func (h *handler) work(ctx context.Context) {
	done := make(chan string, lanes*(laneQueue+1))
	queues := make([]chan engine.InboxItem, lanes)
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan engine.InboxItem, laneQueue)
		wg.Go(func() {
			for it := range queues[i] {
				h.handle(ctx, it)
				done <- it.ID
			}
		})
	}
	defer func() {
		for _, q := range queues {
			close(q)
		}
		wg.Wait()
	}()

	inflight := map[string]bool{}
	var backlog []engine.InboxItem // due, not yet in a lane, oldest first
	more := false                  // the inbox had more than it gave
	query := true
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if query {
			var wait time.Duration
			backlog, more, wait = h.pending(ctx, inflight)
			timer.Reset(wait)
			query = false
		}
		backlog = feed(backlog, queues, inflight)
		select {
		case <-ctx.Done():
			return
		case <-h.wake:
			query = true
		case id := <-done:
			delete(inflight, id)
			query = len(backlog) == 0 && more
		case <-timer.C:
			query = true
		}
	}
}

// pending reads the inbox's due requests not in a lane, whether it has
// more, and how long to sleep unless woken.
func (h *handler) pending(ctx context.Context, inflight map[string]bool) ([]engine.InboxItem, bool, time.Duration) {
	now := time.Now()
	items, err := h.a.inbox.PendingInbox(ctx, Source, now, pendingBatch)
	if err != nil {
		if ctx.Err() == nil {
			h.a.log.Warn("slack: reading the inbox failed; trying again", "err", err)
		}
		return nil, false, h.a.retryMin
	}
	backlog := items[:0]
	for _, it := range items {
		if !inflight[it.ID] {
			backlog = append(backlog, it)
		}
	}
	more := len(items) == pendingBatch
	next, err := h.a.inbox.NextInboxDue(ctx, Source)
	switch {
	case err != nil:
		return backlog, more, h.a.retryMin
	case next.IsZero():
		return backlog, more, time.Hour // woken when something comes
	case next.After(now):
		return backlog, more, next.Sub(now)
	}
	// Something is due and in a lane, which may hide a retry due later:
	// look again in a while.
	return backlog, more, time.Second
}

// feed hands the backlog's requests to their lanes, in order, and
// returns those whose lane is full.
func feed(backlog []engine.InboxItem, queues []chan engine.InboxItem, inflight map[string]bool) []engine.InboxItem {
	left := backlog[:0]
	full := map[int]bool{}
	for _, it := range backlog {
		l := lane(it)
		if !full[l] {
			select {
			case queues[l] <- it:
				inflight[it.ID] = true
				continue
			default:
				full[l] = true // and the lane's later requests wait behind it
			}
		}
		left = append(left, it)
	}
	return left
}

// lane is the lane of a request: its channel's, so that a channel's
// requests are handled in order.
func lane(it engine.InboxItem) int {
	var r request
	_ = json.Unmarshal(it.Payload, &r)
	f := fnv.New32a()
	f.Write([]byte(r.Channel))
	return int(f.Sum32() % lanes)
}

// handle handles one request: the bot answers it, the inbox records it
// handled, and the answer is posted. A failure of the bot (the store is
// down) leaves it in the inbox for a retry with backoff; after
// maxAttempts its user is told. The inbox records it handled before its
// reply is posted: a crash in between loses a reply, never runs a command
// twice.
func (h *handler) handle(ctx context.Context, it engine.InboxItem) {
	log := h.a.log.With("envelope", it.ID, "kind", it.Kind)
	var r request
	if err := json.Unmarshal(it.Payload, &r); err != nil {
		log.Error("slack: a request in the inbox cannot be read; dropped", "err", err)
		h.handled(ctx, it, "unreadable")
		return
	}
	var reply bot.Reply
	var err error
	switch it.Kind {
	case kindCommand:
		reply, err = h.bot.Handle(ctx, bot.Request{ID: it.ID, Command: r.Command, Text: r.Text, Channel: r.Channel, User: r.User})
	case kindPress:
		reply, err = h.press(ctx, it, r)
	default:
		log.Error("slack: a request of an unknown kind in the inbox; dropped")
		h.handled(ctx, it, "unknown kind")
		return
	}
	if err != nil {
		h.failed(ctx, it, r, err)
		return
	}
	h.handled(ctx, it, "answered")
	// The reply of a request handled just as Run stops still goes out.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	h.reply(rctx, r, reply)
}

// errNoRequestYet is a press on a message the notifier does not know as
// an approval request, yet: it records a request just after posting it.
var errNoRequestYet = errors.New("the message pressed is no approval request slipway knows (yet)")

// requestRetries is how many times a press on a message that is no
// known request is tried again before it is answered so.
const requestRetries = 3

// press decides the approval whose request is the message pressed: the
// message's, as the notifier recorded when it posted it, whatever the
// button's value says, which anyone can forge.
func (h *handler) press(ctx context.Context, it engine.InboxItem, r request) (bot.Reply, error) {
	jobID, err := h.notifier.ApprovalJob(ctx, r.Channel, r.MessageTS)
	if err != nil {
		return bot.Reply{}, err
	}
	if jobID == "" && it.Attempts < requestRetries {
		return bot.Reply{}, errNoRequestYet
	}
	if jobID == "" {
		return bot.Reply{Text: "That message is no approval request of slipway's; nothing changed."}, nil
	}
	return h.bot.Decide(ctx, bot.Press{User: r.User, Approve: r.Action == bot.ActionApprove, JobID: jobID})
}

// handled records a request handled, trying a few times: a request left
// unrecorded would be handled again.
func (h *handler) handled(ctx context.Context, it engine.InboxItem, result string) {
	ctx = context.WithoutCancel(ctx)
	var err error
	for try := range 3 {
		if err = h.a.inbox.HandledInbox(ctx, Source, it.ID, result, time.Now()); err == nil {
			return
		}
		sleep(ctx, time.Duration(try+1)*100*time.Millisecond)
	}
	h.a.log.Error("slack: a handled request could not be recorded; it will be handled again", "envelope", it.ID, "err", err)
}

// failed schedules a failed request's retry, or gives it up.
func (h *handler) failed(ctx context.Context, it engine.InboxItem, r request, cause error) {
	log := h.a.log.With("envelope", it.ID, "kind", it.Kind, "attempt", it.Attempts+1)
	if ctx.Err() != nil {
		return // shutting down: still due at the next start
	}
	if it.Attempts+1 >= maxAttempts {
		log.Error("slack: a request failed for good", "err", cause)
		h.handled(ctx, it, "failed: "+cause.Error())
		h.tell(ctx, r, "slipway could not do that: internal error. Please try again later.")
		return
	}
	backoff := h.a.retryMin
	for i := 0; i < it.Attempts && backoff < h.a.retryMax; i++ {
		backoff *= 2
	}
	backoff = min(backoff, h.a.retryMax)
	level := slog.LevelWarn
	if errors.Is(cause, errNoRequestYet) {
		level = slog.LevelDebug
	}
	log.Log(ctx, level, "slack: handling a request failed; will retry", "retry_in", backoff, "err", cause)
	if err := h.a.inbox.RetryInbox(ctx, Source, it.ID, time.Now().Add(backoff), cause.Error()); err != nil {
		log.Error("slack: recording a retry failed", "err", err)
	}
	h.kick() // for the dispatcher to time the retry
}

// tell says something to a request's user alone.
func (h *handler) tell(ctx context.Context, r request, text string) {
	h.reply(ctx, r, bot.Reply{Text: text})
}

// reply posts the bot's reply: in the channel when public, else to the
// user alone. A rate limit or an error of Slack's is tried again a few
// times; a channel the bot cannot post to (a direct message between
// people) is answered through the request's response_url instead.
func (h *handler) reply(ctx context.Context, r request, reply bot.Reply) {
	if reply.Text == "" {
		return
	}
	log := h.a.log.With("user", r.User, "channel", r.Channel)
	text, _ := clip(reply.Text, 39000)
	var err error
	for try := 1; ; try++ {
		if reply.Public {
			_, err = h.a.post(ctx, r.Channel, slackapi.MsgOptionText(text, false), slackapi.MsgOptionDisableLinkUnfurl())
		} else {
			_, err = h.a.api.PostEphemeralContext(ctx, r.Channel, r.User, slackapi.MsgOptionText(text, false))
			err = h.a.classify("chat.postEphemeral", err)
		}
		if err == nil {
			return
		}
		var perm *engine.PermanentError
		if errors.As(err, &perm) || try == replyTries || ctx.Err() != nil {
			break
		}
		wait := time.Duration(try) * h.a.retryMin
		var ra *engine.RetryAfterError
		if errors.As(err, &ra) {
			wait = max(wait, ra.After)
		}
		log.Warn("slack: posting a reply failed; trying again", "retry_in", wait, "err", err)
		if !sleep(ctx, wait) {
			break
		}
	}
	if r.ResponseURL != "" && ctx.Err() == nil {
		kind := slackapi.ResponseTypeEphemeral
		if reply.Public {
			kind = slackapi.ResponseTypeInChannel
		}
		_, _, _, rerr := h.a.api.SendMessageContext(ctx, "", slackapi.MsgOptionResponseURL(r.ResponseURL, kind), slackapi.MsgOptionText(text, false))
		if rerr == nil {
			return
		}
		log.Warn("slack: answering through response_url failed", "err", rerr)
	}
	log.Error("slack: a reply could not be posted", "err", err)
}
