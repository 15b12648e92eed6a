package slacktest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// AckTimeout is how long Slack waits for an envelope's acknowledgement:
// after it, a slash command's user is told it failed and the ack's
// response payload is not shown.
const AckTimeout = 3 * time.Second

// writeTimeout bounds a write to a Socket Mode connection, so that a
// client that stopped reading cannot hold the fake.
const writeTimeout = 5 * time.Second

// Envelope is one delivery of a Socket Mode envelope to the app. A retry
// of an envelope is another delivery with the same ID.
type Envelope struct {
	ID           string
	Type         string // "slash_commands", "interactive", or a raw frame's
	Payload      json.RawMessage
	RetryAttempt int
	RetryReason  string
	// Conn is the connection it went out on (1 is the first to connect),
	// 0 while it waits for one.
	Conn   int
	SentAt time.Time
	// Acked, AckedAt and AckPayload describe the first acknowledgement of
	// this delivery: one that arrived after it was sent and before
	// another delivery of the same ID.
	Acked      bool
	AckedAt    time.Time
	AckPayload json.RawMessage
}

// AckLatency is the time from the envelope's sending to its
// acknowledgement, 0 while it is not acknowledged.
func (e Envelope) AckLatency() time.Duration {
	if !e.Acked {
		return 0
	}
	return e.AckedAt.Sub(e.SentAt)
}

// Ack is a frame the app sent over Socket Mode: an acknowledgement,
// {"envelope_id": ..., "payload": ...}, or whatever else it sent.
type Ack struct {
	EnvelopeID string
	Payload    json.RawMessage // nil when there was none
	At         time.Time
	Conn       int
	Frame      []byte // as received
	// Rejected says why Slack would not show the ack's response payload
	// to the user: "late" (after AckTimeout), or the error code of the
	// message it carries ("invalid_blocks"...). It is "" for an ack
	// without a payload, or of an envelope that accepts none.
	Rejected string
}

// SlashCommand is a slash command a user typed, as SendSlashCommand sends
// it.
type SlashCommand struct {
	Command   string // "/deploy"
	Text      string // "backend@v1.4.2 to staging"
	UserID    string
	ChannelID string
	// EnvelopeID is the new envelope's ID; "" makes one up. When it names
	// an envelope already sent, SendSlashCommand sends that envelope again,
	// its payload unchanged whatever the fields above say, with
	// RetryAttempt and RetryReason ("timeout"), as Slack does when it got
	// no ack.
	EnvelopeID   string
	RetryAttempt int
	RetryReason  string
}

// delivery is an Envelope with its frame and what a response to it
// addresses.
type delivery struct {
	env   Envelope
	frame []byte
	to    *responder // nil for raw frames
}

// conn is an open Socket Mode connection.
type conn struct {
	id      int
	ws      *websocket.Conn
	done    chan struct{}
	once    sync.Once
	pinging atomic.Bool
}

// write sends a text frame. Writes happen with f.mu held, which keeps
// them one at a time as gorilla/websocket requires.
func (c *conn) write(frame []byte) error {
	if err := c.ws.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	return c.ws.WriteMessage(websocket.TextMessage, frame)
}

// close closes the connection without a close frame, once.
func (c *conn) close() {
	c.once.Do(func() {
		close(c.done)
		c.ws.Close()
	})
}

// socketEnvelope is an envelope on the wire.
type socketEnvelope struct {
	EnvelopeID             string          `json:"envelope_id"`
	Payload                json.RawMessage `json:"payload"`
	Type                   string          `json:"type"`
	AcceptsResponsePayload bool            `json:"accepts_response_payload"`
	RetryAttempt           int             `json:"retry_attempt,omitempty"`
	RetryReason            string          `json:"retry_reason,omitempty"`
}

// serveLink is the Socket Mode endpoint: it takes a ticket from
// apps.connections.open once, upgrades to a WebSocket, says hello, sends
// the envelopes that waited for a connection, pings, and reads acks until
// the connection ends.
func (f *Fake) serveLink(w http.ResponseWriter, r *http.Request) {
	ticket := r.URL.Query().Get("ticket")
	f.mu.Lock()
	valid := f.tickets[ticket] && !f.closed
	delete(f.tickets, ticket)
	f.mu.Unlock()
	if !valid {
		f.logf("socket mode: refused a connection with an unknown or used ticket")
		http.Error(w, "invalid ticket", http.StatusUnauthorized)
		return
	}
	ws, err := f.upgrader.Upgrade(w, r, nil)
	if err != nil {
		f.logf("socket mode: upgrade: %v", err)
		return
	}

	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		ws.Close()
		return
	}
	f.connects++
	c := &conn{id: f.connects, ws: ws, done: make(chan struct{})}
	c.pinging.Store(true)
	f.conns = append(f.conns, c)
	hello, _ := json.Marshal(map[string]any{
		"type":            "hello",
		"num_connections": len(f.conns),
		"debug_info": map[string]any{
			"host":                        "applink-slacktest",
			"build_number":                1,
			"approximate_connection_time": 18060,
		},
		"connection_info": map[string]any{"app_id": AppID},
	})
	if err := c.write(hello); err != nil {
		f.removeConnLocked(c)
		f.mu.Unlock()
		c.close()
		return
	}
	f.flushLocked()
	f.wg.Add(2)
	f.notifyLocked()
	f.mu.Unlock()
	f.logf("socket mode: connection %d open", c.id)

	go f.ping(c)
	f.read(c)
}

// ping pings the connection at once and every ping interval, until it
// closes.
func (f *Fake) ping(c *conn) {
	defer f.wg.Done()
	t := time.NewTicker(f.pingInterval)
	defer t.Stop()
	for {
		if c.pinging.Load() {
			_ = c.ws.WriteControl(websocket.PingMessage, []byte("slacktest"), time.Now().Add(writeTimeout))
		}
		select {
		case <-c.done:
			return
		case <-t.C:
		}
	}
}

// read records what the app sends until the connection ends.
func (f *Fake) read(c *conn) {
	defer f.wg.Done()
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			break
		}
		f.received(c, data, time.Now())
	}
	f.mu.Lock()
	f.removeConnLocked(c)
	f.notifyLocked()
	f.mu.Unlock()
	c.close()
	f.logf("socket mode: connection %d closed", c.id)
}

// received records a frame from the app and matches it, as an
// acknowledgement, to the delivery of its envelope.
func (f *Fake) received(c *conn, frame []byte, at time.Time) {
	var ack struct {
		EnvelopeID string          `json:"envelope_id"`
		Payload    json.RawMessage `json:"payload"`
	}
	_ = json.Unmarshal(frame, &ack) // a malformed frame is recorded as it came
	a := Ack{EnvelopeID: ack.EnvelopeID, Payload: ack.Payload, At: at, Conn: c.id, Frame: frame}

	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.envelopes) - 1; i >= 0 && a.EnvelopeID != ""; i-- {
		d := f.envelopes[i]
		if d.env.ID != a.EnvelopeID || d.env.SentAt.IsZero() {
			continue
		}
		if !d.env.Acked {
			d.env.Acked, d.env.AckedAt, d.env.AckPayload = true, at, a.Payload
			a.Rejected = f.ackResponseLocked(d, a)
		}
		break
	}
	f.acks = append(f.acks, a)
	f.notifyLocked()
}

// ackResponseLocked shows the response payload of a slash command's ack
// as Slack does: ephemeral to the user, or in the channel. It returns why
// it did not. f.mu must be held.
func (f *Fake) ackResponseLocked(d *delivery, a Ack) string {
	if d.env.Type != "slash_commands" || d.to == nil || len(a.Payload) == 0 || string(a.Payload) == "null" {
		return ""
	}
	if a.At.Sub(d.env.SentAt) > AckTimeout {
		return "late"
	}
	params := map[string][]string{}
	if err := addJSON(params, a.Payload); err != nil {
		return "invalid_json"
	}
	if apiErr := f.respondLocked(*d.to, params); apiErr != nil {
		return apiErr.code
	}
	return ""
}

// removeConnLocked forgets a connection. f.mu must be held.
func (f *Fake) removeConnLocked(c *conn) {
	f.conns = slices.DeleteFunc(f.conns, func(o *conn) bool { return o == c })
}

// sendLocked records a delivery and sends it, or keeps it until a
// connection opens. f.mu must be held.
func (f *Fake) sendLocked(d *delivery) {
	f.envelopes = append(f.envelopes, d)
	f.pending = append(f.pending, d)
	f.flushLocked()
	f.notifyLocked()
}

// flushLocked sends the waiting deliveries, in order, over the newest
// connection. f.mu must be held.
func (f *Fake) flushLocked() {
	for len(f.pending) > 0 && len(f.conns) > 0 {
		c := f.conns[len(f.conns)-1]
		d := f.pending[0]
		d.env.Conn, d.env.SentAt = c.id, time.Now()
		if err := c.write(d.frame); err != nil {
			d.env.Conn, d.env.SentAt = 0, time.Time{}
			f.removeConnLocked(c)
			c.close()
			continue
		}
		f.pending = f.pending[1:]
	}
}

// newEnvelopeIDLocked makes up an envelope ID shaped like Slack's UUIDs.
// f.mu must be held.
func (f *Fake) newEnvelopeIDLocked() string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", 0xe7e10be, f.nextID())
}

// deliveryLocked finds the latest delivery of an envelope. f.mu must be
// held.
func (f *Fake) deliveryLocked(id string) *delivery {
	for i := len(f.envelopes) - 1; i >= 0; i-- {
		if f.envelopes[i].env.ID == id {
			return f.envelopes[i]
		}
	}
	return nil
}

// retryLocked sends an envelope again with its retry attempt and reason.
// f.mu must be held.
func (f *Fake) retryLocked(prev *delivery, attempt int, reason string) string {
	var env socketEnvelope
	if err := json.Unmarshal(prev.frame, &env); err != nil {
		f.tb.Errorf("slacktest: retrying envelope %s, which was not JSON: %v", prev.env.ID, err)
		return prev.env.ID
	}
	env.RetryAttempt, env.RetryReason = attempt, reason
	frame, _ := json.Marshal(env)
	f.sendLocked(&delivery{
		env: Envelope{
			ID: prev.env.ID, Type: prev.env.Type, Payload: prev.env.Payload,
			RetryAttempt: attempt, RetryReason: reason,
		},
		frame: frame,
		to:    prev.to,
	})
	return prev.env.ID
}

// envelopeLocked sends a new envelope. f.mu must be held.
func (f *Fake) envelopeLocked(id, typ string, payload any, acceptsResponse bool, attempt int, reason string, to *responder) string {
	if id == "" {
		id = f.newEnvelopeIDLocked()
	}
	p, err := json.Marshal(payload)
	if err != nil {
		panic(fmt.Sprintf("slacktest: encoding a %s payload: %v", typ, err))
	}
	frame, _ := json.Marshal(socketEnvelope{
		EnvelopeID: id, Payload: p, Type: typ, AcceptsResponsePayload: acceptsResponse,
		RetryAttempt: attempt, RetryReason: reason,
	})
	f.sendLocked(&delivery{
		env:   Envelope{ID: id, Type: typ, Payload: p, RetryAttempt: attempt, RetryReason: reason},
		frame: frame,
		to:    to,
	})
	return id
}

// slashPayload is a slash command's payload as Slack sends it over Socket
// Mode: the fields of the HTTP form, as JSON strings.
type slashPayload struct {
	Token       string `json:"token"`
	TeamID      string `json:"team_id"`
	TeamDomain  string `json:"team_domain"`
	ChannelID   string `json:"channel_id"`
	ChannelName string `json:"channel_name"`
	UserID      string `json:"user_id"`
	UserName    string `json:"user_name"`
	Command     string `json:"command"`
	Text        string `json:"text"`
	APIAppID    string `json:"api_app_id"`
	// Slack sends the string "false" here (slack-go issue #1265), which
	// slack-go reads since v0.12.5.
	IsEnterpriseInstall string `json:"is_enterprise_install"`
	ResponseURL         string `json:"response_url"`
	TriggerID           string `json:"trigger_id"`
}

// verificationToken is the deprecated token Slack still puts in payloads.
const verificationToken = "slacktestverificationtoken"

// SendSlashCommand sends a slash_commands envelope, or sends one again
// (see SlashCommand.EnvelopeID), and returns its ID. Without an open
// connection it waits for the next one; so does every envelope.
//
// The payload's response_url leads back to the fake, and a response there
// or in the ack's payload is shown as Slack shows it: ephemeral to the
// user unless response_type is in_channel.
func (f *Fake) SendSlashCommand(cmd SlashCommand) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cmd.EnvelopeID != "" {
		if prev := f.deliveryLocked(cmd.EnvelopeID); prev != nil {
			return f.retryLocked(prev, cmd.RetryAttempt, cmd.RetryReason)
		}
	}
	ch, ok := f.channelLocked(cmd.ChannelID)
	if !ok {
		ch.ID = cmd.ChannelID
	}
	to := &responder{channel: ch.ID, user: cmd.UserID}
	payload := slashPayload{
		Token:               verificationToken,
		TeamID:              TeamID,
		TeamDomain:          TeamDomain,
		ChannelID:           ch.ID,
		ChannelName:         ch.Name,
		UserID:              cmd.UserID,
		UserName:            f.users[cmd.UserID].Name,
		Command:             cmd.Command,
		Text:                cmd.Text,
		APIAppID:            AppID,
		IsEnterpriseInstall: "false",
		ResponseURL:         f.responseURLLocked("commands", to),
		TriggerID:           f.triggerIDLocked(),
	}
	// An EnvelopeID the fake never sent, with a retry attempt, is a retry
	// of an envelope sent before the test's time: sent as given.
	id := f.envelopeLocked(cmd.EnvelopeID, "slash_commands", payload, true, cmd.RetryAttempt, cmd.RetryReason, to)
	f.logf("socket mode: sent %s %s as envelope %s", cmd.Command, cmd.Text, id)
	return id
}

// blockActionsPayload is a block_actions interaction as Slack sends it.
type blockActionsPayload struct {
	Type                string           `json:"type"`
	User                actionUser       `json:"user"`
	APIAppID            string           `json:"api_app_id"`
	Token               string           `json:"token"`
	Container           actionContainer  `json:"container"`
	TriggerID           string           `json:"trigger_id"`
	Team                actionTeam       `json:"team"`
	Enterprise          *struct{}        `json:"enterprise"`
	IsEnterpriseInstall bool             `json:"is_enterprise_install"`
	Channel             actionChannel    `json:"channel"`
	Message             map[string]any   `json:"message,omitempty"`
	State               actionState      `json:"state"`
	ResponseURL         string           `json:"response_url"`
	Actions             []map[string]any `json:"actions"`
}

type actionUser struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Name     string `json:"name"`
	TeamID   string `json:"team_id"`
}

type actionContainer struct {
	Type        string `json:"type"`
	MessageTS   string `json:"message_ts"`
	ThreadTS    string `json:"thread_ts,omitempty"`
	ChannelID   string `json:"channel_id"`
	IsEphemeral bool   `json:"is_ephemeral"`
}

type actionTeam struct {
	ID     string `json:"id"`
	Domain string `json:"domain"`
}

type actionChannel struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type actionState struct {
	Values map[string]any `json:"values"`
}

// SendBlockAction sends an interactive envelope with the block_actions
// payload of user clicking the button actionID of the message messageTS
// in channel, and returns its ID.
//
// The payload carries the message as it is now, and the button's
// block_id, text and style as its blocks have them; value "" sends the
// button's own value. A message the user was sent ephemerally is clicked
// as such (container.is_ephemeral, no message). A click on a message or
// button the fake does not know is sent all the same, with what is known.
func (f *Fake) SendBlockAction(user, channel, messageTS, actionID, value string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, _ := f.channelLocked(channel)
	if ch.ID == "" {
		ch.ID = channel
	}
	u := f.users[user]
	ts := f.nextTS()
	action := map[string]any{"action_id": actionID, "block_id": "", "type": "button", "action_ts": ts}
	payload := blockActionsPayload{
		Type:      "block_actions",
		User:      actionUser{ID: user, Username: u.Name, Name: u.Name, TeamID: TeamID},
		APIAppID:  AppID,
		Token:     verificationToken,
		Container: actionContainer{Type: "message", MessageTS: messageTS, ChannelID: ch.ID},
		TriggerID: f.triggerIDLocked(),
		Team:      actionTeam{ID: TeamID, Domain: TeamDomain},
		Channel:   actionChannel{ID: ch.ID, Name: ch.Name},
		State:     actionState{Values: map[string]any{}},
		Actions:   []map[string]any{action},
	}
	var blocks json.RawMessage
	if m := f.findLocked(ch.ID, messageTS); m != nil {
		payload.Message = f.wireLocked(m)
		payload.Container.ThreadTS = m.ThreadTS
		blocks = m.Blocks
	} else {
		for _, e := range f.ephemerals {
			if e.Channel == ch.ID && e.User == user && e.TS == messageTS {
				payload.Container.IsEphemeral = true
				blocks = e.Blocks
			}
		}
	}
	if blockID, button := findButton(blocks, actionID); button != nil {
		action["block_id"] = blockID
		for _, k := range []string{"type", "text", "value", "style"} {
			if v, ok := button[k]; ok {
				action[k] = v
			}
		}
	}
	if value != "" {
		action["value"] = value
	}
	to := &responder{channel: ch.ID, user: user, messageTS: messageTS}
	if payload.Container.IsEphemeral {
		to.messageTS = "" // an ephemeral message cannot be edited
	}
	payload.ResponseURL = f.responseURLLocked("actions", to)
	id := f.envelopeLocked("", "interactive", payload, false, 0, "", to)
	f.logf("socket mode: sent a click on %s by %s as envelope %s", actionID, user, id)
	return id
}

// findButton finds the interactive element actionID in blocks, and the
// block_id of its block.
func findButton(blocks json.RawMessage, actionID string) (string, map[string]any) {
	var bs []map[string]any
	if len(blocks) == 0 || json.Unmarshal(blocks, &bs) != nil {
		return "", nil
	}
	for _, b := range bs {
		blockID, _ := b["block_id"].(string)
		elements, _ := b["elements"].([]any)
		if acc, ok := b["accessory"]; ok {
			elements = append(elements, acc)
		}
		for _, e := range elements {
			if el, ok := e.(map[string]any); ok && el["action_id"] == actionID {
				return blockID, el
			}
		}
	}
	return "", nil
}

// SendRaw sends a frame as it is, malformed or not, and records it as an
// envelope (with the envelope_id and type it has, if it has them).
func (f *Fake) SendRaw(frame []byte) {
	var env socketEnvelope
	_ = json.Unmarshal(frame, &env)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sendLocked(&delivery{
		env:   Envelope{ID: env.EnvelopeID, Type: env.Type, Payload: env.Payload, RetryAttempt: env.RetryAttempt, RetryReason: env.RetryReason},
		frame: slices.Clone(frame),
	})
}

// Disconnect sends every open connection Slack's disconnect message with
// reason — "warning", "refresh_requested" or "link_disabled" — then closes
// it with a close frame. Envelopes sent afterwards wait for the app to
// connect again.
func (f *Fake) Disconnect(reason string) {
	frame, _ := json.Marshal(map[string]any{
		"type":       "disconnect",
		"reason":     reason,
		"debug_info": map[string]any{"host": "applink-slacktest"},
	})
	f.mu.Lock()
	conns := f.conns
	f.conns = nil
	for _, c := range conns {
		_ = c.write(frame)
	}
	f.notifyLocked()
	f.mu.Unlock()
	for _, c := range conns {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, reason)
		_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeTimeout))
		c.close()
		f.logf("socket mode: connection %d disconnected (%s)", c.id, reason)
	}
}

// Drop closes every open connection abruptly, without a word or a close
// frame, as a network failure would.
func (f *Fake) Drop() {
	f.mu.Lock()
	conns := f.conns
	f.conns = nil
	f.notifyLocked()
	f.mu.Unlock()
	for _, c := range conns {
		c.close()
		f.logf("socket mode: connection %d dropped", c.id)
	}
}

// StopPings stops the pings on the open connections, which then look dead
// to a client that expects them (slack-go reconnects after its ping
// interval). Later connections are pinged.
func (f *Fake) StopPings() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.pinging.Store(false)
	}
}

// Connects counts the Socket Mode connections opened so far. The
// apps.connections.open calls that preceded them are among the Calls.
func (f *Fake) Connects() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connects
}

// Connected counts the Socket Mode connections open now.
func (f *Fake) Connected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// Envelopes lists the deliveries of envelopes, in the order sent
// (retries are deliveries of their own).
func (f *Fake) Envelopes() []Envelope {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Envelope, len(f.envelopes))
	for i, d := range f.envelopes {
		out[i] = d.env
	}
	return out
}

// Acks lists the frames the app sent, in the order received.
func (f *Fake) Acks() []Ack {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.acks)
}

// WaitAck waits for the first acknowledgement of envelopeID.
func (f *Fake) WaitAck(ctx context.Context, envelopeID string) (Ack, error) {
	var ack Ack
	err := f.WaitFor(ctx, func() bool {
		for _, a := range f.Acks() {
			if a.EnvelopeID == envelopeID {
				ack = a
				return true
			}
		}
		return false
	})
	if err != nil {
		return Ack{}, fmt.Errorf("slacktest: no ack of envelope %s: %w", envelopeID, err)
	}
	return ack, nil
}
