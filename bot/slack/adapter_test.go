package slack_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/bot"
	"github.com/slipway-ci/slipway/bot/slack"
	"github.com/slipway-ci/slipway/bot/slack/slacktest"
	"github.com/slipway-ci/slipway/forge"
	"github.com/slipway-ci/slipway/workflows/engine"
)

var _ forge.People = (*slack.Adapter)(nil)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name, app, bot, want string
	}{
		{"both right", slacktest.AppToken, slacktest.BotToken, ""},
		{"no app token", "", slacktest.BotToken, "no app token: set slack.app_token"},
		{"the bot token as the app token", slacktest.BotToken, slacktest.BotToken, `slack.app_token must be an app-level token, which starts with xapp-; this one starts with "xoxb-"`},
		{"a user token as the bot token", slacktest.AppToken, "xoxp-1-2-3", `slack.bot_token must be a bot token, which starts with xoxb-; this one starts with "xoxp-"`},
		{"something else", slacktest.AppToken, "hunter2", `this one starts with "no known prefix"`},
		{"no bot token", slacktest.AppToken, "", "no bot token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := slack.New(slack.Options{AppToken: tc.app, BotToken: tc.bot})
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("New: %v, want %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	fake := newFake(t)
	id, err := newAdapter(t, fake, slack.Options{}).Check(t.Context())
	if err != nil || id != (slack.Identity{UserID: slacktest.BotUserID, BotID: slacktest.BotID, TeamID: slacktest.TeamID,
		Team: slacktest.TeamName, URL: "https://" + slacktest.TeamDomain + ".slack.com/"}) {
		t.Errorf("Check = %+v, %v", id, err)
	}
	_, err = newAdapter(t, fake, slack.Options{BotToken: "xoxb-0-0-revoked"}).Check(t.Context())
	if want := "slack: the bot token was refused by Slack: invalid_auth — check slack.bot_token"; err == nil || err.Error() != want {
		t.Errorf("Check with a wrong token: %v, want %q", err, want)
	}
}

// Slack's refusals become what the outbox does with them.
func TestPostErrors(t *testing.T) {
	fake := newFake(t)
	fake.AddChannel(slacktest.Channel{ID: "C0OLD", Name: "old", Archived: true})
	var limited []time.Duration
	a := newAdapter(t, fake, slack.Options{PostEvery: time.Millisecond, RateLimited: func(d time.Duration) { limited = append(limited, d) }})
	m := bot.Message{Summary: "hello", Title: "hello"}
	for _, tc := range []struct {
		name      string
		channel   string
		fault     *slacktest.Fault
		permanent bool
		after     time.Duration // of a RetryAfter; -1 for none
	}{
		{"no such channel", "C0NOPE", nil, true, -1},
		{"archived", "C0OLD", nil, true, -1},
		{"rate-limited", deploys, &slacktest.Fault{Method: "chat.postMessage", Status: 429, RetryAfter: 3 * time.Second, Calls: 1}, false, 3 * time.Second},
		{"Slack down", web, &slacktest.Fault{Method: "chat.postMessage", Status: 503, Calls: 1}, false, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fault != nil {
				fake.Inject(*tc.fault)
			}
			_, err := a.Post(t.Context(), tc.channel, "", false, m)
			var perm *engine.PermanentError
			var ra *engine.RetryAfterError
			if err == nil || errors.As(err, &perm) != tc.permanent || errors.As(err, &ra) != (tc.after >= 0) || ra != nil && ra.After != tc.after {
				t.Errorf("Post: %v (permanent %v, retry after %v)", err, perm != nil, ra)
			}
		})
	}
	// A channel held by a 429 is not called until its Retry-After is over.
	before := len(fake.Calls("chat.postMessage"))
	_, err := a.Post(t.Context(), deploys, "", false, m)
	var ra *engine.RetryAfterError
	if !errors.As(err, &ra) || ra.After <= 2*time.Second || len(fake.Calls("chat.postMessage")) != before {
		t.Errorf("a post to a held channel: %v, %d calls", err, len(fake.Calls("chat.postMessage"))-before)
	}
	if err := a.Update(t.Context(), web, "1.000001", m); !errors.As(err, new(*engine.PermanentError)) {
		t.Errorf("editing no message: %v", err)
	}
	// The hook heard Slack's one rate limit, not the post held back.
	if len(limited) != 1 || limited[0] != 3*time.Second {
		t.Errorf("RateLimited heard %v, want [3s]", limited)
	}
}

// Posts to a channel go out about once per PostEvery after a burst;
// another channel does not wait for them.
func TestPacing(t *testing.T) {
	fake := newFake(t)
	a := newAdapter(t, fake, slack.Options{PostEvery: 200 * time.Millisecond, PostBurst: 2})
	start := time.Now()
	for i := range 5 {
		if _, err := a.Post(t.Context(), deploys, "", false, bot.Message{Summary: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	if _, err := a.Post(t.Context(), web, "", false, bot.Message{Summary: "other"}); err != nil {
		t.Fatal(err)
	}
	other := time.Since(start) - elapsed
	t.Logf("5 posts in %v; another channel's in %v", elapsed, other)
	if elapsed < 580*time.Millisecond || elapsed > 3*time.Second || other > 150*time.Millisecond {
		t.Errorf("5 posts to a channel in %v, another channel's in %v: want 2 at once then 3 a fifth of a second apart, the other at once", elapsed, other)
	}
	// A deadline the wait would pass is said at once, as a rate limit.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	a.Post(ctx, deploys, "", false, bot.Message{Summary: "x"})
	if _, err := a.Post(ctx, deploys, "", false, bot.Message{Summary: "y"}); !errors.As(err, new(*engine.RetryAfterError)) {
		t.Errorf("a post past its deadline: %v", err)
	}
}

// Find sees a message of the bot's by the key in its metadata: in a
// thread (past its first page) or among the channel's latest 200.
func TestFind(t *testing.T) {
	fake := newFake(t)
	a := newAdapter(t, fake, slack.Options{PostEvery: time.Microsecond, PostBurst: 1000})
	ctx := t.Context()
	post := func(thread, key string) string {
		t.Helper()
		ts, err := a.Post(ctx, deploys, thread, false, bot.Message{Summary: key, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	post("", "old")
	parent := post("", "parent")
	var last string
	for i := range 250 {
		last = post(parent, fmt.Sprint("reply-", i))
	}
	for i := range 210 {
		post("", fmt.Sprint("top-", i))
	}
	for _, tc := range []struct {
		name, thread, key, want string
	}{
		{"a recent top-level message", "", "top-209", "found"},
		{"the thread's parent, from the channel", "", "parent", ""}, // older than the latest 200
		{"a message older than the latest 200", "", "old", ""},
		{"a reply past the first page", parent, "reply-249", last},
		{"a reply, not in the channel", "", "reply-3", ""},
		{"no such key", parent, "nope", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, found, err := a.Find(ctx, deploys, tc.thread, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want == "" && found:
				t.Errorf("found %s", ts)
			case tc.want == "found" && !found, tc.want != "" && tc.want != "found" && ts != tc.want:
				t.Errorf("Find = %q, %v; want %q", ts, found, tc.want)
			}
		})
	}
	if _, _, err := a.Find(ctx, "C0NOPE", "", "x"); !errors.As(err, new(*engine.PermanentError)) {
		t.Errorf("Find in no channel: %v", err)
	}
}

// Groups answers from one usergroups.list a minute; Identify by the
// configured login, else by email, once per address.
func TestPeople(t *testing.T) {
	fake := newFake(t)
	fake.AddUser(slacktest.User{ID: "U0GONE", Name: "gone", Email: "gone@example.com", Deleted: true})
	fake.AddUserGroup(slacktest.UserGroup{ID: "S0RELEASE", Handle: "release", Members: []string{release, sre}})
	a := newAdapter(t, fake, slack.Options{Users: map[string]string{"Octocat": "U0OCTO"}})
	ctx := t.Context()
	for _, tc := range []struct {
		user string
		want string
	}{
		{sre, "S0RELEASE S0SRE"},
		{release, "S0RELEASE"},
		{alice, ""},
	} {
		got, err := a.Groups(ctx, tc.user)
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("Groups(%s) = %v, %v; want %s", tc.user, got, err, tc.want)
		}
	}
	if n := len(fake.Calls("usergroups.list")); n != 1 {
		t.Errorf("%d usergroups.list calls, want 1 for a minute", n)
	}

	for _, tc := range []struct {
		name, login, email, want string
	}{
		{"mapped login, any case", "octocat", "someone@example.com", "U0OCTO"},
		{"by email", "alice-gh", "Alice@Example.com", alice},
		{"the same again, cached", "alice-gh", "alice@example.com", alice},
		{"GitHub's private address", "bob", "12345+bob@users.noreply.github.com", ""},
		{"nobody's address", "carol", "carol@example.com", ""},
		{"nobody's, cached", "carol", "carol@example.com", ""},
		{"a deactivated account", "gone", "gone@example.com", ""},
		{"no address", "dave", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.Identify(ctx, tc.login, tc.email)
			if err != nil || got != tc.want {
				t.Errorf("Identify(%q, %q) = %q, %v; want %q", tc.login, tc.email, got, err, tc.want)
			}
		})
	}
	if n := len(fake.Calls("users.lookupByEmail")); n != 3 {
		t.Errorf("%d users.lookupByEmail calls, want 3 (alice, carol, gone)", n)
	}
	fake.Inject(slacktest.Fault{Method: "users.lookupByEmail", Status: 500, Calls: 1})
	if id, err := a.Identify(ctx, "erin", "erin@example.com"); err == nil || id != "" {
		t.Errorf("Identify while Slack fails: %q, %v; want an error", id, err)
	}
}

func TestWords(t *testing.T) {
	w := slack.Words()
	for _, tc := range []struct{ in, mention, channel string }{
		{"U0ALICE", "<@U0ALICE>", "#U0ALICE"},
		{"W0ENTERPRISE", "<@W0ENTERPRISE>", "#W0ENTERPRISE"},
		{"S0SRE", "<!subteam^S0SRE>", "#S0SRE"},
		{"C0DEPLOYS", "C0DEPLOYS", "<#C0DEPLOYS>"},
		{"octocat", "octocat", "#octocat"},
	} {
		if got := w.Mention(tc.in); got != tc.mention {
			t.Errorf("Mention(%s) = %s, want %s", tc.in, got, tc.mention)
		}
		if got := w.Channel(tc.in); got != tc.channel {
			t.Errorf("Channel(%s) = %s, want %s", tc.in, got, tc.channel)
		}
	}
}
