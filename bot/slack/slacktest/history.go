package slacktest

import (
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
)

// Reading a channel back, as the adapter does to find a message it may
// have posted just before a crash: conversations.history (a channel's
// top-level messages, newest first) and conversations.replies (a thread,
// its parent first), paged with a cursor, each message with its metadata
// when asked for include_all_metadata.

// Slack's page sizes: the default when limit is not given, and the most
// it hands out at once.
const (
	historyDefaultLimit = 100
	repliesDefaultLimit = 1000
	maxPageLimit        = 999
)

func (f *Fake) conversationsHistory(p url.Values) (map[string]any, *apiError) {
	ch, ok := f.channelLocked(p.Get("channel"))
	if !ok {
		return nil, errCode("channel_not_found")
	}
	// Top-level messages and the replies also sent to the channel, as
	// the channel shows them: newest first.
	var list []*message
	all := f.messages[ch.ID]
	for i := len(all) - 1; i >= 0; i-- {
		m := all[i]
		if m.Deleted || m.ThreadTS != "" && !m.Broadcast {
			continue
		}
		if !inRange(m.TS, p) {
			continue
		}
		list = append(list, m)
	}
	return f.pageLocked(list, p, historyDefaultLimit)
}

func (f *Fake) conversationsReplies(p url.Values) (map[string]any, *apiError) {
	ch, ok := f.channelLocked(p.Get("channel"))
	if !ok {
		return nil, errCode("channel_not_found")
	}
	m := f.findLocked(ch.ID, p.Get("ts"))
	if m == nil || m.Deleted {
		return nil, errCode("thread_not_found")
	}
	parent := m.TS
	if m.ThreadTS != "" {
		parent = m.ThreadTS
	}
	// The parent, then its replies oldest first; oldest and latest bound
	// the replies, never the parent.
	var list []*message
	for _, m := range f.messages[ch.ID] {
		switch {
		case m.Deleted:
		case m.TS == parent:
			list = append(list, m)
		case m.ThreadTS == parent && inRange(m.TS, p):
			list = append(list, m)
		}
	}
	return f.pageLocked(list, p, repliesDefaultLimit)
}

// inRange says whether ts is within the call's oldest and latest, which
// include their ends only with inclusive.
func inRange(ts string, p url.Values) bool {
	inclusive := truthy(p.Get("inclusive"))
	if oldest := p.Get("oldest"); oldest != "" {
		if c := compareTS(ts, oldest); c < 0 || c == 0 && !inclusive {
			return false
		}
	}
	if latest := p.Get("latest"); latest != "" {
		if c := compareTS(ts, latest); c > 0 || c == 0 && !inclusive {
			return false
		}
	}
	return true
}

// compareTS compares two message timestamps as numbers.
func compareTS(a, b string) int {
	x, _ := strconv.ParseFloat(a, 64)
	y, _ := strconv.ParseFloat(b, 64)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// pageLocked answers one page of list, from the call's cursor on, with
// the cursor of the next page. f.mu must be held.
func (f *Fake) pageLocked(list []*message, p url.Values, defaultLimit int) (map[string]any, *apiError) {
	limit := defaultLimit
	if s := p.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, errCode("invalid_limit")
		}
		if n > 0 {
			limit = min(n, maxPageLimit)
		}
	}
	start := 0
	if c := p.Get("cursor"); c != "" {
		n, ok := decodeCursor(c)
		if !ok || n > len(list) {
			return nil, errCode("invalid_cursor")
		}
		start = n
	}
	end := min(start+limit, len(list))
	withMetadata := truthy(p.Get("include_all_metadata"))
	messages := make([]map[string]any, 0, end-start)
	for _, m := range list[start:end] {
		w := f.wireLocked(m)
		if withMetadata && len(m.Metadata) > 0 {
			w["metadata"] = m.Metadata
		}
		messages = append(messages, w)
	}
	answer := map[string]any{"messages": messages, "has_more": end < len(list)}
	next := ""
	if end < len(list) {
		next = encodeCursor(end)
	}
	answer["response_metadata"] = map[string]any{"next_cursor": next}
	return answer, nil
}

// Cursors are opaque to clients, as Slack's are; the fake's hold the
// index of the page's first message.
func encodeCursor(n int) string {
	return base64.StdEncoding.EncodeToString([]byte("next:" + strconv.Itoa(n)))
}

func decodeCursor(c string) (int, bool) {
	b, err := base64.StdEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	s, ok := strings.CutPrefix(string(b), "next:")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}
