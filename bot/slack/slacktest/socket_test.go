package slacktest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/slipway-ci/slipway/bot/slack/slacktest"
)

// startSocketMode runs slack-go's Socket Mode client against the fake, as
// the adapter does, until the test ends.
func startSocketMode(t *testing.T, fake *slacktest.Fake, opts ...socketmode.Option) *socketmode.Client {
	t.Helper()
	client := socketmode.New(botAPI(fake), opts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		client.RunContext(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("the Socket Mode client did not stop")
		}
	})
	return client
}

// next skips the client's events until one of type typ.
func next(t *testing.T, client *socketmode.Client, typ socketmode.EventType) socketmode.Event {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case evt := <-client.Events:
			if evt.Type == typ {
				return evt
			}
		case <-timeout:
			t.Fatalf("no %s event in 5s", typ)
		}
	}
}

// waitFor waits up to 5s for cond.
func waitFor(t *testing.T, fake *slacktest.Fake, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := fake.WaitFor(ctx, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestSocketModeSession(t *testing.T) {
	fake := newFake(t)
	client := startSocketMode(t, fake)

	hello := next(t, client, socketmode.EventTypeHello)
	if hello.Request.NumConnections != 1 || hello.Request.ConnectionInfo.AppID != slacktest.AppID {
		t.Errorf("hello %+v, want 1 connection of app %s", hello.Request, slacktest.AppID)
	}
	if fake.Connects() != 1 || len(fake.Calls("apps.connections.open")) != 1 {
		t.Errorf("%d connections after %d apps.connections.open, want 1 and 1", fake.Connects(), len(fake.Calls("apps.connections.open")))
	}

	// A slash command, acknowledged with a response for its user.
	id := fake.SendSlashCommand(slacktest.SlashCommand{Command: "/deploy", Text: "backend@v1.4.2 to staging", UserID: alice, ChannelID: deploys})
	evt := next(t, client, socketmode.EventTypeSlashCommand)
	cmd, ok := evt.Data.(slack.SlashCommand)
	if !ok {
		t.Fatalf("slash command event carries %T", evt.Data)
	}
	want := slack.SlashCommand{
		Token: cmd.Token, TeamID: slacktest.TeamID, TeamDomain: slacktest.TeamDomain,
		ChannelID: deploys, ChannelName: "deploys", UserID: alice, UserName: "alice",
		Command: "/deploy", Text: "backend@v1.4.2 to staging",
		ResponseURL: cmd.ResponseURL, TriggerID: cmd.TriggerID, APIAppID: slacktest.AppID,
	}
	if diff := cmp.Diff(want, cmd); diff != "" {
		t.Errorf("slash command (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(cmd.ResponseURL, fake.URL()+"/commands/") || cmd.TriggerID == "" || cmd.Token == "" {
		t.Errorf("response_url %q, trigger_id %q, token %q: want all set, the URL at the fake", cmd.ResponseURL, cmd.TriggerID, cmd.Token)
	}
	if evt.Request.EnvelopeID != id || !evt.Request.AcceptsResponsePayload || evt.Request.RetryAttempt != 0 {
		t.Errorf("request %+v, want envelope %s accepting a response", evt.Request, id)
	}
	if err := client.Ack(*evt.Request, map[string]any{"text": "Deploying backend@v1.4.2 to staging"}); err != nil {
		t.Fatal(err)
	}
	ack, err := fake.WaitAck(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if string(ack.Payload) != `{"text":"Deploying backend@v1.4.2 to staging"}` || ack.Conn != 1 || ack.Rejected != "" {
		t.Errorf("ack %+v", ack)
	}
	env := fake.Envelopes()[0]
	if !env.Acked || env.AckLatency() <= 0 || env.AckLatency() > time.Second || env.Type != "slash_commands" {
		t.Errorf("envelope %+v acked in %v, want acked at once", env, env.AckLatency())
	}
	if e := fake.Ephemerals(alice); len(e) != 1 || e[0].Text != "Deploying backend@v1.4.2 to staging" {
		t.Errorf("the ack's response was not shown to its user: %+v", e)
	}

	// A click on Approve, answered through its response_url.
	approve := slack.NewButtonBlockElement("approve", "pipeline-42", slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false))
	approve.Style = slack.StylePrimary
	_, ts, err := botAPI(fake).PostMessage(deploys,
		slack.MsgOptionText("production deploy is waiting for approval", false),
		slack.MsgOptionBlocks(slack.NewActionBlock("decision", approve)))
	if err != nil {
		t.Fatal(err)
	}
	id = fake.SendBlockAction(bob, deploys, ts, "approve", "")
	evt = next(t, client, socketmode.EventTypeInteractive)
	cb, ok := evt.Data.(slack.InteractionCallback)
	if !ok {
		t.Fatalf("interactive event carries %T", evt.Data)
	}
	if cb.Type != slack.InteractionTypeBlockActions || cb.User.ID != bob || cb.User.Name != "bob" || cb.Channel.ID != deploys ||
		cb.Container.MessageTs != ts || cb.Message.Timestamp != ts || cb.Message.Text != "production deploy is waiting for approval" {
		t.Errorf("callback %+v", cb)
	}
	if len(cb.ActionCallback.BlockActions) != 1 {
		t.Fatalf("actions %+v, want one", cb.ActionCallback)
	}
	action := cb.ActionCallback.BlockActions[0]
	if action.ActionID != "approve" || action.BlockID != "decision" || action.Value != "pipeline-42" || action.Text.Text != "Approve" || action.Type != "button" {
		t.Errorf("action %+v, want the Approve button with its value", action)
	}
	if evt.Request.EnvelopeID != id || evt.Request.AcceptsResponsePayload {
		t.Errorf("request %+v", evt.Request)
	}
	if err := client.Ack(*evt.Request); err != nil {
		t.Fatal(err)
	}
	if _, err := fake.WaitAck(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := botAPI(fake).PostMessage(deploys, slack.MsgOptionReplaceOriginal(cb.ResponseURL), slack.MsgOptionText("Approved by <@U0BOB>", false)); err != nil {
		t.Fatal(err)
	}
	m, _ := fake.Message(deploys, ts)
	if m.Text != "Approved by <@U0BOB>" || m.Blocks != nil || len(m.Edits) != 1 {
		t.Errorf("message after replace_original: %q, blocks %s, %d edits", m.Text, m.Blocks, len(m.Edits))
	}

	for _, e := range fake.Envelopes() {
		if !e.Acked {
			t.Errorf("envelope %s was not acked", e.ID)
		}
	}
}

func TestReconnects(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  func(*slacktest.Fake)
	}{
		{"disconnect refresh_requested", func(f *slacktest.Fake) { f.Disconnect("refresh_requested") }},
		{"disconnect warning", func(f *slacktest.Fake) { f.Disconnect("warning") }},
		{"drop", (*slacktest.Fake).Drop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t)
			client := startSocketMode(t, fake)
			next(t, client, socketmode.EventTypeHello)

			tc.cut(fake)
			// Sent while the app reconnects: it waits for the next connection.
			id := fake.SendSlashCommand(slacktest.SlashCommand{Command: "/slipway", Text: "status", UserID: alice, ChannelID: deploys})
			evt := next(t, client, socketmode.EventTypeSlashCommand)
			if err := client.Ack(*evt.Request); err != nil {
				t.Fatal(err)
			}
			if _, err := fake.WaitAck(t.Context(), id); err != nil {
				t.Fatal(err)
			}
			if got := len(fake.Calls("apps.connections.open")); got != 2 || fake.Connects() != 2 {
				t.Errorf("%d apps.connections.open and %d connections, want 2 and 2", got, fake.Connects())
			}
			if env := fake.Envelopes()[0]; env.Conn != 2 {
				t.Errorf("envelope went out on connection %d, want 2", env.Conn)
			}
		})
	}
}

func TestRetriedEnvelope(t *testing.T) {
	fake := newFake(t)
	client := startSocketMode(t, fake)
	id := fake.SendSlashCommand(slacktest.SlashCommand{Command: "/rollback", Text: "backend production", UserID: alice, ChannelID: deploys})
	first := next(t, client, socketmode.EventTypeSlashCommand)

	// Not acked: Slack sends it again.
	if got := fake.SendSlashCommand(slacktest.SlashCommand{EnvelopeID: id, RetryAttempt: 1, RetryReason: "timeout"}); got != id {
		t.Fatalf("retry sent as %s, want %s", got, id)
	}
	again := next(t, client, socketmode.EventTypeSlashCommand)
	if again.Request.EnvelopeID != id || again.Request.RetryAttempt != 1 || again.Request.RetryReason != "timeout" {
		t.Errorf("retry %+v", again.Request)
	}
	if !cmp.Equal(first.Data, again.Data) {
		t.Errorf("the retry's command %+v differs from the first %+v", again.Data, first.Data)
	}
	if err := client.Ack(*again.Request); err != nil {
		t.Fatal(err)
	}
	waitFor(t, fake, "the retry's ack", func() bool { return len(fake.Acks()) == 1 })
	envs := fake.Envelopes()
	if len(envs) != 2 || envs[0].Acked || !envs[1].Acked || envs[1].RetryAttempt != 1 || envs[1].Payload == nil || string(envs[0].Payload) != string(envs[1].Payload) {
		t.Errorf("deliveries %+v, want the retry acked with the first's payload", envs)
	}
}

func TestMalformedFrames(t *testing.T) {
	fake := newFake(t)
	client := startSocketMode(t, fake)
	next(t, client, socketmode.EventTypeHello)

	fake.SendRaw([]byte(`{not json`))
	next(t, client, socketmode.EventTypeIncomingError)
	fake.SendRaw([]byte(`{"type":"surprise","envelope_id":"raw-1","payload":{}}`))
	bad := next(t, client, socketmode.EventTypeErrorBadMessage)
	if !strings.Contains(string(bad.Data.(*socketmode.ErrorBadMessage).Message), "raw-1") {
		t.Errorf("bad message %s", bad.Data.(*socketmode.ErrorBadMessage).Message)
	}

	// The connection survived.
	fake.SendSlashCommand(slacktest.SlashCommand{Command: "/slipway", Text: "help", UserID: alice, ChannelID: deploys})
	next(t, client, socketmode.EventTypeSlashCommand)
	if fake.Connects() != 1 {
		t.Errorf("%d connections, want 1", fake.Connects())
	}
	envs := fake.Envelopes()
	if len(envs) != 3 || envs[1].ID != "raw-1" || envs[1].Type != "surprise" {
		t.Errorf("envelopes %+v, want the raw frames recorded", envs)
	}
}

func TestStopPings(t *testing.T) {
	fake := newFake(t, slacktest.PingInterval(50*time.Millisecond))
	client := startSocketMode(t, fake, socketmode.OptionPingInterval(300*time.Millisecond))
	next(t, client, socketmode.EventTypeHello)
	time.Sleep(400 * time.Millisecond)
	if fake.Connects() != 1 {
		t.Fatalf("a pinged connection was dropped: %d connections", fake.Connects())
	}
	fake.StopPings()
	waitFor(t, fake, "a new connection after the pings stopped", func() bool { return fake.Connects() == 2 && fake.Connected() == 1 })
}

func TestConnectionsOpenRateLimited(t *testing.T) {
	fake := newFake(t)
	fake.Inject(slacktest.Fault{Method: "apps.connections.open", Status: http.StatusTooManyRequests, Calls: 1})
	client := startSocketMode(t, fake)
	next(t, client, socketmode.EventTypeHello)
	if diff := cmp.Diff([]int{429, 200}, statuses(fake, "apps.connections.open")); diff != "" {
		t.Errorf("apps.connections.open statuses (-want +got):\n%s", diff)
	}
}

func TestTickets(t *testing.T) {
	fake := newFake(t)
	_, u, err := botAPI(fake).StartSocketModeContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.Close()
	for _, bad := range []string{u, strings.Replace(u, "ticket=", "ticket=x", 1)} {
		_, resp, err := websocket.DefaultDialer.Dial(bad, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("dial %s: %v, want 401 for a used or unknown ticket", bad, err)
		}
	}
}

// TestWireShapes compares the fields of the fake's frames with Slack's,
// read off the wire without slack-go, which would forgive a missing one.
func TestWireShapes(t *testing.T) {
	fake := newFake(t)
	_, ts, err := botAPI(fake).PostMessage(deploys, slack.MsgOptionText("production deploy is waiting for approval", false),
		slack.MsgOptionBlocks(slack.NewActionBlock("", slack.NewButtonBlockElement("approve", "pipeline-42", slack.NewTextBlockObject(slack.PlainTextType, "Approve", true, false)).WithStyle(slack.StylePrimary))))
	if err != nil {
		t.Fatal(err)
	}
	_, u, err := botAPI(fake).StartSocketModeContext(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	read := func() []byte {
		t.Helper()
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, frame, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		return frame
	}

	compare := func(fixture string, frame []byte) {
		t.Helper()
		want, err := os.ReadFile(filepath.Join("testdata", fixture))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(fields(t, want), fields(t, frame)); diff != "" {
			t.Errorf("fields of the fake's frame against %s (-Slack's +fake's):\n%s\nframe: %s", fixture, diff, frame)
		}
	}
	compare("hello.json", read())
	fake.SendSlashCommand(slacktest.SlashCommand{Command: "/deploy", Text: "backend@v1.4.2 to staging", UserID: alice, ChannelID: deploys})
	compare("slash_commands.json", read())
	fake.SendBlockAction(bob, deploys, ts, "approve", "")
	frame := read()
	compare("block_actions.json", frame)
	fake.Disconnect("refresh_requested")
	compare("disconnect.json", read())

	// The click's action is the button as posted.
	var env struct {
		Payload struct {
			Actions []map[string]any `json:"actions"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(frame, &env); err != nil {
		t.Fatal(err)
	}
	action := env.Payload.Actions[0]
	if action["style"] != "primary" || action["value"] != "pipeline-42" || action["text"].(map[string]any)["emoji"] != true {
		t.Errorf("action %v, want the button's style, value and text", action)
	}
}

// fields lists the paths of a JSON document's fields ("payload.user.id",
// "payload.actions[].type"). Of the message a payload carries, it lists
// the fields but looks only into the blocks.
func fields(t *testing.T, doc []byte) []string {
	t.Helper()
	var tree any
	if err := json.Unmarshal(doc, &tree); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
	var out []string
	var walk func(string, any)
	walk = func(path string, x any) {
		switch x := x.(type) {
		case map[string]any:
			for k, v := range x {
				p := strings.TrimPrefix(path+"."+k, ".")
				out = append(out, p)
				if path == "payload.message" && k != "blocks" {
					continue
				}
				walk(p, v)
			}
		case []any:
			for _, v := range x {
				walk(path+"[]", v)
			}
		}
	}
	walk("", tree)
	sort.Strings(out)
	return slices.Compact(out)
}

func TestClicks(t *testing.T) {
	fake := newFake(t)
	api := botAPI(fake)
	button := slack.NewButtonBlockElement("reject", "pipeline-42", slack.NewTextBlockObject(slack.PlainTextType, "Reject", false, false))
	_, parent, err := api.PostMessage(deploys, slack.MsgOptionText("backend 3f2a9c1", false))
	if err != nil {
		t.Fatal(err)
	}
	_, reply, err := api.PostMessage(deploys, slack.MsgOptionTS(parent), slack.MsgOptionText("waiting for approval", false),
		slack.MsgOptionBlocks(slack.NewActionBlock("decision", button)))
	if err != nil {
		t.Fatal(err)
	}
	ephemeral, err := api.PostEphemeral(deploys, alice, slack.MsgOptionText("sure?", false),
		slack.MsgOptionBlocks(slack.NewActionBlock("confirm", slack.NewButtonBlockElement("reject", "confirmed", slack.NewTextBlockObject(slack.PlainTextType, "Yes", false, false)))))
	if err != nil {
		t.Fatal(err)
	}
	client := startSocketMode(t, fake)

	for _, tc := range []struct {
		name, user, ts, value string
		want                  func(slack.InteractionCallback) bool
	}{
		{"a button in a thread", bob, reply, "", func(cb slack.InteractionCallback) bool {
			a := cb.ActionCallback.BlockActions[0]
			return cb.Container.ThreadTs == parent && cb.Message.ThreadTimestamp == parent && cb.Message.Timestamp == reply &&
				a.BlockID == "decision" && a.Value == "pipeline-42" && !cb.Container.IsEphemeral
		}},
		{"a value of the test's", bob, reply, "other", func(cb slack.InteractionCallback) bool {
			return cb.ActionCallback.BlockActions[0].Value == "other"
		}},
		{"an ephemeral message", alice, ephemeral, "", func(cb slack.InteractionCallback) bool {
			a := cb.ActionCallback.BlockActions[0]
			return cb.Container.IsEphemeral && cb.Message.Timestamp == "" && a.BlockID == "confirm" && a.Value == "confirmed"
		}},
		{"an unknown message", bob, "1600000000.000100", "v", func(cb slack.InteractionCallback) bool {
			a := cb.ActionCallback.BlockActions[0]
			return cb.Container.MessageTs == "1600000000.000100" && cb.Message.Timestamp == "" && a.ActionID == "reject" && a.BlockID == "" && a.Value == "v"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := fake.SendBlockAction(tc.user, deploys, tc.ts, "reject", tc.value)
			evt := next(t, client, socketmode.EventTypeInteractive)
			client.Ack(*evt.Request)
			cb := evt.Data.(slack.InteractionCallback)
			if evt.Request.EnvelopeID != id || !tc.want(cb) {
				t.Errorf("callback %+v\ncontainer %+v\nactions %+v", cb, cb.Container, cb.ActionCallback.BlockActions[0])
			}
		})
	}
}

func TestResponses(t *testing.T) {
	fake := newFake(t)
	api := botAPI(fake)
	client := startSocketMode(t, fake)

	fake.SendSlashCommand(slacktest.SlashCommand{Command: "/slipway", Text: "status", UserID: alice, ChannelID: deploys})
	cmd := next(t, client, socketmode.EventTypeSlashCommand)
	client.Ack(*cmd.Request)
	url := cmd.Data.(slack.SlashCommand).ResponseURL
	if _, _, err := api.PostMessage("", slack.MsgOptionResponseURL(url, slack.ResponseTypeEphemeral), slack.MsgOptionText("nothing running", false)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.PostMessage("", slack.MsgOptionResponseURL(url, slack.ResponseTypeInChannel), slack.MsgOptionText("all quiet", false)); err != nil {
		t.Fatal(err)
	}
	if e := fake.Ephemerals(alice); len(e) != 1 || e[0].Text != "nothing running" {
		t.Errorf("ephemerals %+v", e)
	}
	if diff := cmp.Diff([]string{"all quiet"}, texts(fake, deploys)); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}

	// A click's response deletes the message clicked.
	ts := fake.Messages(deploys)[0].TS
	fake.SendBlockAction(bob, deploys, ts, "dismiss", "")
	click := next(t, client, socketmode.EventTypeInteractive)
	client.Ack(*click.Request)
	if _, _, err := api.PostMessage("", slack.MsgOptionDeleteOriginal(click.Data.(slack.InteractionCallback).ResponseURL)); err != nil {
		t.Fatal(err)
	}
	if m, _ := fake.Message(deploys, ts); !m.Deleted {
		t.Errorf("message %+v, want it deleted", m)
	}

	_, _, err := api.PostMessage("", slack.MsgOptionResponseURL(fake.URL()+"/commands/T0SLIPWAY/1/nope", slack.ResponseTypeEphemeral), slack.MsgOptionText("x", false))
	var status slack.StatusCodeError
	if !errors.As(err, &status) || status.Code != http.StatusNotFound {
		t.Errorf("a response_url the fake never gave: %v, want 404", err)
	}
	if got := len(fake.Calls("response_url")); got != 4 {
		t.Errorf("%d response_url calls recorded, want 4", got)
	}
}

func TestConcurrentPosts(t *testing.T) {
	fake := newFake(t)
	api := botAPI(fake)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, _, err := api.PostMessage(deploys, slack.MsgOptionText(fmt.Sprint(i), false)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	msgs := fake.Messages(deploys)
	if len(msgs) != 20 {
		t.Fatalf("%d messages, want 20", len(msgs))
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i-1].TS >= msgs[i].TS {
			t.Errorf("timestamps %s then %s", msgs[i-1].TS, msgs[i].TS)
		}
	}
}
