package slacktest

import (
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Message is a message of a channel as the fake keeps it: the bot's
// posts, and what responses to commands and interactions posted in the
// channel.
type Message struct {
	Channel string // the channel's ID
	TS      string
	// ThreadTS is the parent's ts for a reply, "" for a top-level message.
	ThreadTS string
	// Broadcast is set on a reply also sent to the channel
	// (reply_broadcast).
	Broadcast bool
	Text      string
	// Blocks are the message's blocks as Slack keeps them: compact JSON,
	// each with a block_id (Slack's made-up one where none was given).
	Blocks json.RawMessage
	// Metadata is the message's metadata as posted, compact JSON
	// {"event_type":...,"event_payload":{...}}; nil for none. Slack shows
	// it in conversations.history and conversations.replies when asked
	// with include_all_metadata.
	Metadata json.RawMessage
	User     string // who posted it: the bot
	PostedAt time.Time
	// Edits are the message's earlier versions, oldest first; the message
	// itself is its current one.
	Edits    []Version
	EditedAt time.Time
	// Deleted is set once a response deleted it (delete_original); the
	// message stays listed.
	Deleted bool
	// Replies are a top-level message's replies, in order, as Messages
	// and Message return it.
	Replies []Message
}

// Version is a message as it was before an edit.
type Version struct {
	Text   string
	Blocks json.RawMessage
	// At is when this version was posted or last edited.
	At time.Time
}

// AllText is what a person reads in the message: its text and every text
// of its blocks, one per line. It suits assertions like "the thread's
// parent says Approved by <@U0BOB>".
func (m Message) AllText() string {
	return strings.Join(append([]string{m.Text}, allText(m.Blocks)...), "\n")
}

// Ephemeral is a message only one user sees.
type Ephemeral struct {
	Channel  string
	User     string
	TS       string
	ThreadTS string
	Text     string
	Blocks   json.RawMessage
	At       time.Time
}

// AllText is the ephemeral message's text and the texts of its blocks, one
// per line.
func (e Ephemeral) AllText() string {
	return strings.Join(append([]string{e.Text}, allText(e.Blocks)...), "\n")
}

// message is a Message as stored, updated in place.
type message struct {
	Message
	edits  int    // versions so far, for new block IDs
	editTS string // Slack's ts of the latest edit
}

// Messages lists a channel's top-level messages in the order posted, each
// with its replies. A broadcast reply is listed in its thread only.
func (f *Fake) Messages(channel string) []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Message
	for _, m := range f.messages[f.channelIDLocked(channel)] {
		if m.ThreadTS == "" {
			out = append(out, f.withRepliesLocked(m))
		}
	}
	return out
}

// Thread returns a thread: its parent, then its replies in order, with no
// Replies of their own. It is empty when channel has no message ts; ts
// may be the parent's or a reply's.
func (f *Fake) Thread(channel, ts string) []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.channelIDLocked(channel)
	m := f.findLocked(id, ts)
	if m == nil {
		return nil
	}
	parent := m.TS
	if m.ThreadTS != "" {
		parent = m.ThreadTS
	}
	var out []Message
	for _, m := range f.messages[id] {
		if m.TS == parent || m.ThreadTS == parent {
			out = append(out, m.snapshot())
		}
	}
	return out
}

// Message returns one message of a channel, a top-level one with its
// replies.
func (f *Fake) Message(channel, ts string) (Message, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.findLocked(f.channelIDLocked(channel), ts)
	if m == nil {
		return Message{}, false
	}
	if m.ThreadTS == "" {
		return f.withRepliesLocked(m), true
	}
	return m.snapshot(), true
}

// Ephemerals lists the ephemeral messages a user was sent, in order.
func (f *Fake) Ephemerals(user string) []Ephemeral {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Ephemeral
	for _, e := range f.ephemerals {
		if e.User == user {
			out = append(out, e)
		}
	}
	return out
}

// snapshot is a copy of m that later changes do not reach.
func (m *message) snapshot() Message {
	out := m.Message
	out.Edits = slices.Clone(m.Edits)
	out.Replies = nil
	return out
}

func (f *Fake) withRepliesLocked(parent *message) Message {
	out := parent.snapshot()
	for _, m := range f.messages[parent.Channel] {
		if m.ThreadTS == parent.TS {
			out.Replies = append(out.Replies, m.snapshot())
		}
	}
	return out
}

// channelIDLocked is the ID of the channel with that ID or name, or
// idOrName itself. f.mu must be held.
func (f *Fake) channelIDLocked(idOrName string) string {
	if c, ok := f.channelLocked(idOrName); ok {
		return c.ID
	}
	return idOrName
}

// findLocked finds a message by channel ID and ts. f.mu must be held.
func (f *Fake) findLocked(channelID, ts string) *message {
	if ts == "" {
		return nil
	}
	for _, m := range f.messages[channelID] {
		if m.TS == ts {
			return m
		}
	}
	return nil
}

// repliesLocked counts a message's replies and finds its latest one. f.mu
// must be held.
func (f *Fake) repliesLocked(parent *message) (n int, latest string) {
	for _, m := range f.messages[parent.Channel] {
		if m.ThreadTS == parent.TS {
			n, latest = n+1, m.TS
		}
	}
	return n, latest
}

// wireLocked is m as Slack shows a message in its answers and payloads.
// f.mu must be held.
func (f *Fake) wireLocked(m *message) map[string]any {
	w := map[string]any{
		"type":   "message",
		"user":   m.User,
		"bot_id": BotID,
		"app_id": AppID,
		"team":   TeamID,
		"ts":     m.TS,
		"text":   m.Text,
	}
	if len(m.Blocks) > 0 {
		w["blocks"] = m.Blocks
	}
	if m.ThreadTS != "" {
		w["thread_ts"] = m.ThreadTS
		w["parent_user_id"] = f.findLocked(m.Channel, m.ThreadTS).User
		if m.Broadcast {
			w["subtype"] = "thread_broadcast"
		}
	} else if n, latest := f.repliesLocked(m); n > 0 {
		w["thread_ts"] = m.TS
		w["reply_count"] = n
		w["latest_reply"] = latest
	}
	if !m.EditedAt.IsZero() {
		w["edited"] = map[string]any{"user": m.User, "ts": m.editTS}
	}
	return w
}

// content is a message's text and blocks, checked.
type content struct {
	text      string
	hasText   bool
	blocks    json.RawMessage
	hasBlocks bool // a blocks argument was given, maybe empty
	metadata  json.RawMessage
}

// contentOf reads and checks the text, blocks and attachments arguments
// of a message; seed makes its block IDs. Attachments are accepted and not
// kept.
func contentOf(p url.Values, seed string) (content, *apiError) {
	var c content
	c.text, c.hasText = p.Get("text"), p.Has("text")
	_, c.hasBlocks = p["blocks"]
	if utf8.RuneCountInString(c.text) > MaxTextLen {
		return c, errCode("msg_too_long")
	}
	blocks, apiErr := checkBlocks(p.Get("blocks"), seed)
	if apiErr != nil {
		return c, apiErr
	}
	c.blocks = blocks
	if c.metadata, apiErr = checkMetadata(p.Get("metadata")); apiErr != nil {
		return c, apiErr
	}
	if c.text == "" && len(c.blocks) == 0 && strings.TrimSpace(p.Get("attachments")) == "" {
		return c, errCode("no_text")
	}
	return c, nil
}

// checkMetadata reads a message's metadata argument: a JSON object with
// a string event_type and an object event_payload, or
// invalid_metadata_format. It returns the metadata compacted, nil for
// none.
func checkMetadata(arg string) (json.RawMessage, *apiError) {
	if strings.TrimSpace(arg) == "" {
		return nil, nil
	}
	var md struct {
		EventType    *string         `json:"event_type"`
		EventPayload json.RawMessage `json:"event_payload"`
	}
	if err := json.Unmarshal([]byte(arg), &md); err != nil || md.EventType == nil {
		return nil, errCode("invalid_metadata_format")
	}
	var payload map[string]any
	if len(md.EventPayload) > 0 && json.Unmarshal(md.EventPayload, &payload) != nil {
		return nil, errCode("invalid_metadata_format")
	}
	if *md.EventType == "" && payload == nil {
		// What slack-go sends with every response_url message, its
		// metadata field being a struct: taken as none.
		return nil, nil
	}
	if *md.EventType == "" {
		return nil, errCode("invalid_metadata_format")
	}
	if payload == nil {
		payload = map[string]any{}
	}
	out, err := json.Marshal(map[string]any{"event_type": *md.EventType, "event_payload": payload})
	if err != nil {
		return nil, errCode("invalid_metadata_format")
	}
	return out, nil
}

// postableLocked finds the channel a message goes to. f.mu must be held.
func (f *Fake) postableLocked(channel string) (Channel, *apiError) {
	c, ok := f.channelLocked(channel)
	if !ok {
		return c, errCode("channel_not_found")
	}
	if c.Archived {
		return c, errCode("is_archived")
	}
	return c, nil
}

// chatPostMessage posts a message to a channel or a thread.
func (f *Fake) chatPostMessage(p url.Values) (map[string]any, *apiError) {
	ch, apiErr := f.postableLocked(p.Get("channel"))
	if apiErr != nil {
		return nil, apiErr
	}
	threadTS := p.Get("thread_ts")
	if threadTS != "" {
		parent := f.findLocked(ch.ID, threadTS)
		if parent == nil {
			// Stricter than Slack, which may post a reply to no thread as
			// a new message: a test wants to hear of it.
			return nil, errCode("thread_not_found")
		}
		if parent.ThreadTS != "" {
			threadTS = parent.ThreadTS // a reply to a reply joins its thread
		}
	}
	ts := f.nextTS()
	c, apiErr := contentOf(p, ch.ID+"/"+ts)
	if apiErr != nil {
		return nil, apiErr
	}
	m := f.postLocked(ch.ID, ts, threadTS, c)
	m.Broadcast = threadTS != "" && truthy(p.Get("reply_broadcast"))
	return map[string]any{"channel": ch.ID, "ts": m.TS, "message": f.wireLocked(m)}, nil
}

// postLocked stores a new message of the bot. f.mu must be held.
func (f *Fake) postLocked(channelID, ts, threadTS string, c content) *message {
	m := &message{Message: Message{
		Channel:  channelID,
		TS:       ts,
		ThreadTS: threadTS,
		Text:     c.text,
		Blocks:   c.blocks,
		Metadata: c.metadata,
		User:     BotUserID,
		PostedAt: time.Now(),
	}}
	f.messages[channelID] = append(f.messages[channelID], m)
	return m
}

// chatUpdate edits a message: the text and blocks given replace the
// message's, those left out are kept (an empty blocks array removes the
// blocks), as chat.update does.
func (f *Fake) chatUpdate(p url.Values) (map[string]any, *apiError) {
	ch, ok := f.channelLocked(p.Get("channel"))
	if !ok {
		return nil, errCode("channel_not_found")
	}
	m := f.findLocked(ch.ID, p.Get("ts"))
	if m == nil || m.Deleted {
		return nil, errCode("message_not_found")
	}
	if m.User != BotUserID {
		return nil, errCode("cant_update_message")
	}
	c, apiErr := contentOf(p, ch.ID+"/"+m.TS+"/"+strconv.Itoa(m.edits+1))
	if apiErr != nil {
		return nil, apiErr
	}
	f.editLocked(m, c)
	return map[string]any{"channel": ch.ID, "ts": m.TS, "text": m.Text, "message": f.wireLocked(m)}, nil
}

// editLocked makes c the current version of m. f.mu must be held.
func (f *Fake) editLocked(m *message, c content) {
	at := m.PostedAt
	if !m.EditedAt.IsZero() {
		at = m.EditedAt
	}
	m.Edits = append(m.Edits, Version{Text: m.Text, Blocks: m.Blocks, At: at})
	m.edits++
	m.editTS = f.nextTS()
	if c.hasText {
		m.Text = c.text
	}
	if c.hasBlocks {
		m.Blocks = c.blocks
	}
	if c.metadata != nil {
		// An edit without metadata leaves the message's as it was.
		m.Metadata = c.metadata
	}
	m.EditedAt = time.Now()
}

// chatPostEphemeral sends a message only one user of a channel sees.
func (f *Fake) chatPostEphemeral(p url.Values) (map[string]any, *apiError) {
	ch, apiErr := f.postableLocked(p.Get("channel"))
	if apiErr != nil {
		return nil, apiErr
	}
	user := p.Get("user")
	if _, ok := f.users[user]; !ok {
		return nil, errCode("user_not_found")
	}
	if ch.Members != nil && !slices.Contains(ch.Members, user) {
		return nil, errCode("user_not_in_channel")
	}
	ts := f.nextTS()
	c, apiErr := contentOf(p, ch.ID+"/"+ts)
	if apiErr != nil {
		return nil, apiErr
	}
	f.ephemeralLocked(ch.ID, user, ts, p.Get("thread_ts"), c)
	return map[string]any{"message_ts": ts}, nil
}

// ephemeralLocked stores an ephemeral message. f.mu must be held.
func (f *Fake) ephemeralLocked(channelID, user, ts, threadTS string, c content) {
	f.ephemerals = append(f.ephemerals, Ephemeral{
		Channel:  channelID,
		User:     user,
		TS:       ts,
		ThreadTS: threadTS,
		Text:     c.text,
		Blocks:   c.blocks,
		At:       time.Now(),
	})
}
