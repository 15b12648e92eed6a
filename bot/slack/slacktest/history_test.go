package slacktest_test

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/slack-go/slack"

	"github.com/slipway-ci/slipway/bot/slack/slacktest"
)

// keyOf is the key a message's metadata carries, "" for none.
func keyOf(m slack.Message) string {
	if m.Metadata.EventType != "slipway_message" {
		return ""
	}
	k, _ := m.Metadata.EventPayload["key"].(string)
	return k
}

func keyed(key string) slack.MsgOption {
	return slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "slipway_message", EventPayload: map[string]any{"key": key}})
}

// A message's metadata is kept as posted, kept by an edit without any,
// and shown by conversations.history and conversations.replies only with
// include_all_metadata.
func TestMetadata(t *testing.T) {
	fake := newFake(t)
	api := botAPI(fake)
	_, parent, err := api.PostMessage(deploys, slack.MsgOptionText("parent", false), keyed("parent/backend/1111"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := api.UpdateMessage(deploys, parent, slack.MsgOptionText("parent, edited", false)); err != nil {
		t.Fatal(err)
	}
	if m, _ := fake.Message(deploys, parent); string(m.Metadata) != `{"event_payload":{"key":"parent/backend/1111"},"event_type":"slipway_message"}` {
		t.Errorf("metadata after an edit without any: %s", m.Metadata)
	}
	for _, tc := range []struct {
		name, metadata, want string
	}{
		{"not JSON", `{"event_type":`, "invalid_metadata_format"},
		{"no event type", `{"event_payload":{"key":"x"}}`, "invalid_metadata_format"},
		{"payload not an object", `{"event_type":"x","event_payload":[1]}`, "invalid_metadata_format"},
		{"no payload", `{"event_type":"x"}`, ""},
		{"empty, as slack-go sends to a response_url", `{"event_type":"","event_payload":null}`, ""},
		{"a payload without a type", `{"event_type":"","event_payload":{"key":"x"}}`, "invalid_metadata_format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answer := postForm(t, fake, "chat.postMessage", url.Values{"channel": {deploys}, "text": {"x"}, "metadata": {tc.metadata}})
			got, _ := answer["error"].(string)
			if got != tc.want {
				t.Errorf("metadata %s: error %q, want %q", tc.metadata, got, tc.want)
			}
		})
	}

	for _, with := range []bool{false, true} {
		h, err := api.GetConversationHistory(&slack.GetConversationHistoryParameters{ChannelID: deploys, IncludeAllMetadata: with})
		if err != nil {
			t.Fatal(err)
		}
		r, _, _, err := api.GetConversationReplies(&slack.GetConversationRepliesParameters{ChannelID: deploys, Timestamp: parent, IncludeAllMetadata: with})
		if err != nil {
			t.Fatal(err)
		}
		last := h.Messages[len(h.Messages)-1]
		want := ""
		if with {
			want = "parent/backend/1111"
		}
		if keyOf(last) != want || keyOf(r[0]) != want {
			t.Errorf("include_all_metadata=%v: keys %q and %q, want %q", with, keyOf(last), keyOf(r[0]), want)
		}
	}
}

// conversations.history lists a channel's top-level messages and
// broadcast replies newest first; conversations.replies a thread, parent
// first; both in pages with a cursor.
func TestHistoryAndReplies(t *testing.T) {
	fake := newFake(t)
	api := botAPI(fake)
	post := func(text, thread string, broadcast bool) string {
		t.Helper()
		opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
		if thread != "" {
			opts = append(opts, slack.MsgOptionTS(thread))
		}
		if broadcast {
			opts = append(opts, slack.MsgOptionBroadcast())
		}
		_, ts, err := api.PostMessage(deploys, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	first := post("first", "", false)
	for i := range 5 {
		post(fmt.Sprint("reply ", i), first, i == 2)
	}
	post("second", "", false)

	texts := func(ms []slack.Message) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Text)
		}
		return out
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		h, err := api.GetConversationHistory(&slack.GetConversationHistoryParameters{ChannelID: deploys, Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, texts(h.Messages)...)
		if !h.HasMore {
			if h.ResponseMetaData.NextCursor != "" || pages != 1 {
				t.Errorf("last page after %d pages with cursor %q", pages+1, h.ResponseMetaData.NextCursor)
			}
			break
		}
		cursor = h.ResponseMetaData.NextCursor
	}
	if diff := cmp.Diff([]string{"second", "reply 2", "first"}, got); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}

	got = nil
	cursor = ""
	for {
		ms, more, next, err := api.GetConversationReplies(&slack.GetConversationRepliesParameters{ChannelID: deploys, Timestamp: first, Limit: 4, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, texts(ms)...)
		if !more {
			break
		}
		cursor = next
	}
	if diff := cmp.Diff([]string{"first", "reply 0", "reply 1", "reply 2", "reply 3", "reply 4"}, got); diff != "" {
		t.Errorf("replies (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name    string
		call    func() error
		errWant string
	}{
		{"history of no channel", func() error {
			_, err := api.GetConversationHistory(&slack.GetConversationHistoryParameters{ChannelID: "C0NOPE"})
			return err
		}, "channel_not_found"},
		{"replies of no message", func() error {
			_, _, _, err := api.GetConversationReplies(&slack.GetConversationRepliesParameters{ChannelID: deploys, Timestamp: "1.000001"})
			return err
		}, "thread_not_found"},
		{"a cursor not Slack's", func() error {
			_, err := api.GetConversationHistory(&slack.GetConversationHistoryParameters{ChannelID: deploys, Cursor: "bm9wZQ=="})
			return err
		}, "invalid_cursor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := slackError(t, tc.call()); got != tc.errWant {
				t.Errorf("error %q, want %q", got, tc.errWant)
			}
		})
	}
}

func TestUserGroupsList(t *testing.T) {
	fake := newFake(t)
	fake.AddUserGroup(slacktest.UserGroup{ID: "S0SRE", Handle: "sre", Members: []string{bob}})
	fake.AddUserGroup(slacktest.UserGroup{ID: "S0RELEASE", Handle: "release-managers", Members: []string{alice, bob}})
	fake.AddUserGroup(slacktest.UserGroup{ID: "S0OLD", Handle: "old", Members: []string{alice}, Disabled: true})
	api := botAPI(fake)

	groups, err := api.GetUserGroups(slack.GetUserGroupsOptionIncludeUsers(true))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range groups {
		got = append(got, fmt.Sprint(g.ID, " ", g.Users))
	}
	if diff := cmp.Diff([]string{"S0RELEASE [U0ALICE U0BOB]", "S0SRE [U0BOB]"}, got); diff != "" {
		t.Errorf("usergroups.list include_users (-want +got):\n%s", diff)
	}
	groups, err = api.GetUserGroups(slack.GetUserGroupsOptionIncludeDisabled(true))
	if err != nil || len(groups) != 3 || groups[0].ID != "S0OLD" || groups[0].DateDelete == 0 || groups[0].Users != nil {
		t.Errorf("usergroups.list include_disabled = %+v, %v", groups, err)
	}
}
