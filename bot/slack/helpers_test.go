package slack_test

import (
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway/bot/slack"
	"github.com/slipway-ci/slipway/bot/slack/slacktest"
)

// The workspace of the tests: alice deploys, release and sre (through
// the group S0SRE) approve production, mallory may do nothing.
const (
	alice    = "U0ALICE"
	release  = "U0RELEASE"
	sre      = "U0SRE"
	mallory  = "U0MALLORY"
	deploys  = "C0DEPLOYS" // backend's channel
	web      = "C0WEB"     // frontend's channel
	sreGroup = "S0SRE"
)

// newFake is the fake workspace of the tests.
func newFake(t testing.TB) *slacktest.Fake {
	t.Helper()
	fake := slacktest.New(t)
	for _, u := range []slacktest.User{
		{ID: alice, Name: "alice", Email: "alice@example.com"},
		{ID: release, Name: "rel", Email: "release@example.com"},
		{ID: sre, Name: "sre", Email: "sre@example.com"},
		{ID: mallory, Name: "mallory", Email: "mallory@example.com"},
	} {
		fake.AddUser(u)
	}
	fake.AddUserGroup(slacktest.UserGroup{ID: sreGroup, Handle: "sre", Members: []string{sre}})
	fake.AddChannel(slacktest.Channel{ID: deploys, Name: "deploys"})
	fake.AddChannel(slacktest.Channel{ID: web, Name: "web"})
	t.Cleanup(func() { record(fake) })
	return fake
}

// newAdapter is an adapter of the fake, not running.
func newAdapter(t *testing.T, fake *slacktest.Fake, opts slack.Options) *slack.Adapter {
	t.Helper()
	if opts.AppToken == "" {
		opts.AppToken = slacktest.AppToken
	}
	if opts.BotToken == "" {
		opts.BotToken = slacktest.BotToken
	}
	opts.APIURL = fake.URL() + "/api/"
	opts.Logger = testLogger(t)
	a, err := slack.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// testLogger logs to the test when -v asks, else nowhere; SLIPWAY_LOG=1
// logs to stderr.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SLIPWAY_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// methods lists the methods of calls, in order.
func methods(calls []slacktest.Call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Method)
	}
	return out
}
