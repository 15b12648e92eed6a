package slacktest_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/slack-go/slack"

	"github.com/slipway-ci/slipway/bot/slack/slacktest"
)

const (
	deploys = "C0DEPLOYS"
	alice   = "U0ALICE"
	bob     = "U0BOB"
)

// newFake is a fake workspace with two people and a #deploys channel.
func newFake(t *testing.T, opts ...slacktest.Option) *slacktest.Fake {
	t.Helper()
	fake := slacktest.New(t, opts...)
	fake.AddUser(slacktest.User{ID: alice, Name: "alice", RealName: "Alice Liddell", Email: "alice@example.com"})
	fake.AddUser(slacktest.User{ID: bob, Name: "bob", RealName: "Bob Dylan", Email: "bob@example.com"})
	fake.AddChannel(slacktest.Channel{ID: deploys, Name: "deploys"})
	return fake
}

// botAPI is slack-go's Web API client with the bot token, as the adapter
// makes it.
func botAPI(fake *slacktest.Fake, opts ...slack.Option) *slack.Client {
	opts = append([]slack.Option{
		slack.OptionAPIURL(fake.URL() + "/api/"),
		slack.OptionAppLevelToken(slacktest.AppToken),
	}, opts...)
	return slack.New(slacktest.BotToken, opts...)
}

// slackError is the error code of a Slack error answer, "" for nil.
func slackError(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var resp slack.SlackErrorResponse
	if !errors.As(err, &resp) {
		t.Fatalf("want a Slack error answer, got %T: %v", err, err)
	}
	return resp.Err
}

func TestTokens(t *testing.T) {
	fake := newFake(t)
	for _, tc := range []struct {
		name, token, want string
	}{
		{"bot token", slacktest.BotToken, ""},
		{"app token", slacktest.AppToken, "not_allowed_token_type"},
		{"unknown token", "xoxb-1-2-wrong", "invalid_auth"},
		{"no token", "", "not_authed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := slack.New(tc.token, slack.OptionAPIURL(fake.URL()+"/api/"))
			resp, err := api.AuthTest()
			if got := slackError(t, err); got != tc.want {
				t.Fatalf("auth.test with %s: error %q, want %q", tc.name, got, tc.want)
			}
			if err == nil && (resp.UserID != slacktest.BotUserID || resp.BotID != slacktest.BotID || resp.TeamID != slacktest.TeamID) {
				t.Errorf("auth.test = %+v, want the bot %s of team %s", resp, slacktest.BotUserID, slacktest.TeamID)
			}
		})
	}

	t.Run("apps.connections.open", func(t *testing.T) {
		for token, want := range map[string]string{
			slacktest.AppToken: "",
			slacktest.BotToken: "not_allowed_token_type",
			"xapp-1-wrong":     "invalid_auth",
		} {
			api := slack.New(slacktest.BotToken, slack.OptionAPIURL(fake.URL()+"/api/"), slack.OptionAppLevelToken(token))
			_, u, err := api.StartSocketModeContext(t.Context())
			if got := slackError(t, err); got != want {
				t.Errorf("apps.connections.open with %q: error %q, want %q", token, got, want)
			}
			if err == nil && !strings.HasPrefix(u, "ws://127.0.0.1:") {
				t.Errorf("apps.connections.open URL %q, want ws://127.0.0.1:PORT/...", u)
			}
		}
	})

	for _, c := range fake.Calls("") {
		for k, v := range c.Params {
			if k == "token" || strings.Contains(strings.Join(v, ""), "slacktest") {
				t.Errorf("call %s recorded the token in %s=%v", c.Method, k, v)
			}
		}
	}
}

func TestThreadsAndEdits(t *testing.T) {
	fake := newFake(t)
	api := botAPI(fake)

	approve := slack.NewButtonBlockElement("approve", "pipeline-42", slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false))
	approve.Style = slack.StylePrimary
	ch, parent, err := api.PostMessage("#deploys",
		slack.MsgOptionText("backend 3f2a9c1: running", false),
		slack.MsgOptionBlocks(
			slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*backend* `3f2a9c1`", false, false), nil, nil),
			slack.NewActionBlock("decision", approve),
		))
	if err != nil {
		t.Fatal(err)
	}
	if ch != deploys || parent != "1700000000.000100" {
		t.Fatalf("posted to %s at %s, want %s at 1700000000.000100", ch, parent, deploys)
	}
	_, reply, err := api.PostMessage(deploys, slack.MsgOptionText("tests failed", false), slack.MsgOptionTS(parent), slack.MsgOptionBroadcast())
	if err != nil {
		t.Fatal(err)
	}
	_, second, err := api.PostMessage(deploys, slack.MsgOptionText("log tail", false), slack.MsgOptionTS(reply))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := api.UpdateMessage(deploys, parent, slack.MsgOptionText("backend 3f2a9c1: failed", false)); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := api.UpdateMessage(deploys, parent); slackError(t, err) != "no_text" {
		t.Errorf("an update with nothing: %v, want no_text", err)
	}
	// slack-go cannot send an empty blocks array, which removes the blocks.
	if answer := postForm(t, fake, "chat.update", url.Values{"channel": {deploys}, "ts": {parent}, "blocks": {"[]"}, "text": {"backend 3f2a9c1: failed, see thread"}}); answer["ok"] != true {
		t.Fatalf("chat.update answered %v", answer)
	}
	if !(parent < reply && reply < second) {
		t.Errorf("timestamps %s, %s, %s do not increase", parent, reply, second)
	}

	msgs := fake.Messages(deploys)
	if len(msgs) != 1 {
		t.Fatalf("channel has %d top-level messages, want 1: %+v", len(msgs), msgs)
	}
	m := msgs[0]
	if m.Text != "backend 3f2a9c1: failed, see thread" || m.Blocks != nil || m.User != slacktest.BotUserID {
		t.Errorf("parent is %q with blocks %s by %s, want the last edit without blocks by the bot", m.Text, m.Blocks, m.User)
	}
	if len(m.Edits) != 2 || m.Edits[0].Text != "backend 3f2a9c1: running" || m.Edits[1].Text != "backend 3f2a9c1: failed" {
		t.Fatalf("edits %+v, want the first text then the second", m.Edits)
	}
	if !cmp.Equal(m.Edits[0].Blocks, m.Edits[1].Blocks) {
		t.Errorf("an update with text only changed the blocks: %s, then %s", m.Edits[0].Blocks, m.Edits[1].Blocks)
	}
	if got := m.Edits[0].Blocks; !strings.Contains(string(got), `"block_id":"decision"`) || !strings.Contains(string(got), `"action_id":"approve"`) {
		t.Errorf("first version's blocks %s, want the actions block", got)
	}
	if strings.Count(string(m.Edits[0].Blocks), `"block_id"`) != 2 {
		t.Errorf("blocks %s: Slack gives every block a block_id", m.Edits[0].Blocks)
	}
	var replies []string
	for _, r := range m.Replies {
		replies = append(replies, fmt.Sprintf("%s %s broadcast=%v", r.ThreadTS, r.Text, r.Broadcast))
	}
	want := []string{parent + " tests failed broadcast=true", parent + " log tail broadcast=false"}
	if diff := cmp.Diff(want, replies); diff != "" {
		t.Errorf("replies (-want +got):\n%s", diff)
	}
	thread := fake.Thread("deploys", second)
	if len(thread) != 3 || thread[0].TS != parent || thread[2].TS != second {
		t.Errorf("Thread(%s) = %+v, want the parent and two replies", second, thread)
	}
	if got, ok := fake.Message(deploys, reply); !ok || got.Text != "tests failed" {
		t.Errorf("Message(%s) = %+v, %v", reply, got, ok)
	}

	posts := fake.Calls("chat.postMessage")
	if len(posts) != 3 || posts[1].Params.Get("thread_ts") != parent || posts[1].Params.Get("reply_broadcast") != "true" {
		t.Errorf("chat.postMessage calls %+v, want the reply's thread_ts and reply_broadcast recorded", posts)
	}
}

func TestMessageRefusals(t *testing.T) {
	fake := newFake(t)
	fake.AddChannel(slacktest.Channel{ID: "C0OLD", Name: "old", Archived: true})
	api := botAPI(fake)
	section := func(n int) slack.Block {
		return slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, strings.Repeat("x", n), false, false), nil, nil)
	}
	many := make([]slack.Block, slacktest.MaxBlocks+1)
	for i := range many {
		many[i] = section(1)
	}
	button := slack.NewButtonBlockElement("approve", "v", slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false))
	longButton := slack.NewButtonBlockElement("approve", "v", slack.NewTextBlockObject(slack.PlainTextType, strings.Repeat("b", 76), false, false))

	for _, tc := range []struct {
		name    string
		channel string
		opts    []slack.MsgOption
		want    string
		detail  string
	}{
		{"unknown channel", "C0NOPE", []slack.MsgOption{slack.MsgOptionText("hi", false)}, "channel_not_found", ""},
		{"archived channel", "C0OLD", []slack.MsgOption{slack.MsgOptionText("hi", false)}, "is_archived", ""},
		{"no text", deploys, nil, "no_text", ""},
		{"text too long", deploys, []slack.MsgOption{slack.MsgOptionText(strings.Repeat("é", slacktest.MaxTextLen+1), false)}, "msg_too_long", ""},
		{"unknown thread", deploys, []slack.MsgOption{slack.MsgOptionText("hi", false), slack.MsgOptionTS("1600000000.000100")}, "thread_not_found", ""},
		{"51 blocks", deploys, []slack.MsgOption{slack.MsgOptionBlocks(many...)}, "invalid_blocks",
			"no more than 50 items allowed [json-pointer:/blocks]"},
		{"section text over 3000", deploys, []slack.MsgOption{slack.MsgOptionBlocks(section(3000), section(3001))}, "invalid_blocks",
			"must be less than 3001 characters [json-pointer:/blocks/1/text/text]"},
		{"button text over 75", deploys, []slack.MsgOption{slack.MsgOptionBlocks(slack.NewActionBlock("", longButton))}, "invalid_blocks",
			"must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]"},
		{"duplicate block_id", deploys, []slack.MsgOption{slack.MsgOptionBlocks(slack.NewDividerBlock(), slack.NewActionBlock("a", button), slack.NewActionBlock("a", button))}, "invalid_blocks",
			`duplicate block_id "a" [json-pointer:/blocks/2/block_id]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := api.PostMessage(tc.channel, tc.opts...)
			if got := slackError(t, err); got != tc.want {
				t.Fatalf("error %q (%v), want %q", got, err, tc.want)
			}
			var resp slack.SlackErrorResponse
			errors.As(err, &resp)
			if tc.detail != "" && !slices.Contains(resp.ResponseMetadata.Messages, "[ERROR] "+tc.detail) {
				t.Errorf("details %q, want %q among them", resp.ResponseMetadata.Messages, tc.detail)
			}
		})
	}

	t.Run("blocks not JSON", func(t *testing.T) {
		answer := postForm(t, fake, "chat.postMessage", url.Values{"channel": {deploys}, "blocks": {`[{"type":`}})
		if answer["error"] != "invalid_blocks_format" {
			t.Errorf("answer %v, want invalid_blocks_format", answer)
		}
	})

	if msgs := fake.Messages(deploys); len(msgs) != 0 {
		t.Errorf("refused posts left messages: %+v", msgs)
	}
	if n := len(fake.Calls("chat.postMessage")); n != 10 {
		t.Errorf("%d chat.postMessage calls recorded, want 10", n)
	}

	t.Run("update of an unknown message", func(t *testing.T) {
		_, _, _, err := api.UpdateMessage(deploys, "1700000000.999900", slack.MsgOptionText("x", false))
		if got := slackError(t, err); got != "message_not_found" {
			t.Errorf("error %q, want message_not_found", got)
		}
	})
}

// postForm calls a method with a form as slack-go would, for arguments
// slack-go cannot send (malformed ones).
func postForm(t *testing.T, fake *slacktest.Fake, method string, form url.Values) map[string]any {
	t.Helper()
	form.Set("token", slacktest.BotToken)
	resp, err := http.PostForm(fake.URL()+"/api/"+method, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatal(err)
	}
	return answer
}

func TestJSONBody(t *testing.T) {
	fake := newFake(t)
	body := `{"channel":"C0DEPLOYS","text":"hi","blocks":[{"type":"divider"}],"unfurl_links":false}`
	req, err := http.NewRequest(http.MethodPost, fake.URL()+"/api/chat.postMessage", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", "Bearer "+slacktest.BotToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	calls := fake.Calls("chat.postMessage")
	if len(calls) != 1 || calls[0].Error != "" {
		t.Fatalf("calls %+v, want one ok", calls)
	}
	want := url.Values{"channel": {deploys}, "text": {"hi"}, "blocks": {`[{"type":"divider"}]`}, "unfurl_links": {"false"}}
	if diff := cmp.Diff(want, calls[0].Params); diff != "" {
		t.Errorf("params (-want +got):\n%s", diff)
	}
	if msgs := fake.Messages(deploys); len(msgs) != 1 || msgs[0].Text != "hi" {
		t.Errorf("messages %+v", msgs)
	}
}

func TestEphemeral(t *testing.T) {
	fake := newFake(t)
	fake.AddChannel(slacktest.Channel{ID: "C0PRIVATE", Name: "private", Members: []string{alice}})
	api := botAPI(fake)

	ts, err := api.PostEphemeral(deploys, alice, slack.MsgOptionText("only you can see this", false))
	if err != nil || ts == "" {
		t.Fatalf("PostEphemeral = %q, %v", ts, err)
	}
	for _, tc := range []struct{ channel, user, want string }{
		{deploys, "U0NOBODY", "user_not_found"},
		{"C0PRIVATE", bob, "user_not_in_channel"},
		{"C0NOPE", alice, "channel_not_found"},
	} {
		_, err := api.PostEphemeral(tc.channel, tc.user, slack.MsgOptionText("x", false))
		if got := slackError(t, err); got != tc.want {
			t.Errorf("ephemeral to %s in %s: error %q, want %q", tc.user, tc.channel, got, tc.want)
		}
	}
	got := fake.Ephemerals(alice)
	if len(got) != 1 || got[0].Text != "only you can see this" || got[0].Channel != deploys || got[0].TS != ts {
		t.Errorf("Ephemerals(alice) = %+v", got)
	}
	if len(fake.Ephemerals(bob)) != 0 || len(fake.Messages(deploys)) != 0 {
		t.Error("an ephemeral message reached someone else or the channel")
	}
}

func TestDirectory(t *testing.T) {
	fake := newFake(t)
	fake.AddUserGroup(slacktest.UserGroup{ID: "S0RELEASE", Handle: "release-managers", Members: []string{alice, bob}})
	api := botAPI(fake)

	u, err := api.GetUserByEmail("Alice@Example.com")
	if err != nil || u.ID != alice || u.Profile.Email != "alice@example.com" || u.RealName != "Alice Liddell" {
		t.Errorf("GetUserByEmail = %+v, %v", u, err)
	}
	if _, err := api.GetUserByEmail("carol@example.com"); slackError(t, err) != "users_not_found" {
		t.Errorf("unknown email: %v, want users_not_found", err)
	}
	u, err = api.GetUserInfo(bob)
	if err != nil || u.Name != "bob" || u.TeamID != slacktest.TeamID {
		t.Errorf("GetUserInfo = %+v, %v", u, err)
	}
	if _, err := api.GetUserInfo("U0NOBODY"); slackError(t, err) != "user_not_found" {
		t.Errorf("unknown user: %v, want user_not_found", err)
	}
	members, err := api.GetUserGroupMembers("S0RELEASE")
	if err != nil || !cmp.Equal(members, []string{alice, bob}) {
		t.Errorf("GetUserGroupMembers = %v, %v", members, err)
	}
	if _, err := api.GetUserGroupMembers("S0NOPE"); slackError(t, err) != "no_such_subteam" {
		t.Errorf("unknown group: %v, want no_such_subteam", err)
	}
	ch, err := api.GetConversationInfo(&slack.GetConversationInfoInput{ChannelID: deploys})
	if err != nil || ch.Name != "deploys" || !ch.IsMember {
		t.Errorf("GetConversationInfo = %+v, %v", ch, err)
	}
	if _, err := api.GetConversationInfo(&slack.GetConversationInfoInput{ChannelID: "C0NOPE"}); slackError(t, err) != "channel_not_found" {
		t.Errorf("unknown channel: %v, want channel_not_found", err)
	}
}

func TestUnknownMethod(t *testing.T) {
	fake := newFake(t)
	answer := postForm(t, fake, "chat.scheduleMessage", url.Values{"channel": {deploys}, "text": {"later"}})
	if answer["ok"] != false || answer["error"] != "unknown_method" {
		t.Errorf("answer %v, want unknown_method", answer)
	}
}
