// Package slacktest is a fake Slack for tests of slipway's Slack adapter.
// It speaks Slack's own protocols over loopback — the Web API as slack-go
// calls it, Socket Mode over a real WebSocket — keeps the state Slack
// would keep (messages per channel and thread with their edits, ephemeral
// messages per user), refuses what Slack refuses, and records everything
// for the test to assert on.
//
// One fake serves one test:
//
//	fake := slacktest.New(t)
//	fake.AddChannel(slacktest.Channel{ID: "C0DEPLOYS", Name: "deploys"})
//	api := slack.New(slacktest.BotToken,
//		slack.OptionAPIURL(fake.URL()+"/api/"),
//		slack.OptionAppLevelToken(slacktest.AppToken))
//	client := socketmode.New(api)
//
// The test then plays Slack's side of Socket Mode (SendSlashCommand,
// SendBlockAction, SendRaw, Disconnect, Drop), makes the Web API fail or
// wait (Inject), and reads what the adapter did (Messages, Thread,
// Ephemerals, Calls, Envelopes, Acks), waiting with WaitFor where the
// adapter works in the background. Every method is safe for concurrent use.
package slacktest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slipway-ci/slipway/internal/changes"
)

// The workspace and the app the fake plays. The tokens are the only ones
// it accepts: AppToken for apps.connections.open, BotToken for every other
// method.
const (
	BotToken   = "xoxb-0000000001-0000000002-slacktestbottoken"
	AppToken   = "xapp-1-A0SLIPWAY-0000000003-slacktestapptoken"
	TeamID     = "T0SLIPWAY"
	TeamDomain = "slipway-test"
	TeamName   = "Slipway Test"
	AppID      = "A0SLIPWAY"
	BotID      = "B0SLIPWAY"
	BotUserID  = "U0SLIPWAY"
	BotName    = "slipway"
)

// User is a member of the fake workspace, as users.info and
// users.lookupByEmail find them.
type User struct {
	ID       string
	Name     string // the handle, "alice"
	RealName string
	Email    string
	IsBot    bool
	Deleted  bool
}

// UserGroup is a user group (a "subteam", @release-managers) as
// usergroups.users.list lists it.
type UserGroup struct {
	ID       string // "S0RELEASE"
	Handle   string
	Members  []string // user IDs
	Disabled bool
}

// Channel is a conversation the bot can post to. A channel may be named by
// its ID or its name (with or without '#') wherever Slack allows that.
type Channel struct {
	ID   string
	Name string
	// Members, when set, are the only users chat.postEphemeral may address
	// in the channel (else user_not_in_channel). Nil admits every user.
	Members  []string
	Archived bool // posts are refused with is_archived
	Private  bool
}

// Option configures a Fake.
type Option func(*Fake)

// PingInterval sets how often the fake sends a WebSocket ping on each
// Socket Mode connection (default 5s; one is also sent right after hello).
// slack-go drops a connection that has seen no ping for its own interval
// (socketmode.OptionPingInterval, 30s by default).
func PingInterval(d time.Duration) Option {
	return func(f *Fake) { f.pingInterval = d }
}

// Fake is a fake Slack workspace with the slipway app installed.
type Fake struct {
	tb           testing.TB
	srv          *httptest.Server
	upgrader     websocket.Upgrader
	pingInterval time.Duration

	// wg counts the goroutines of WebSocket connections; Close waits for them.
	wg sync.WaitGroup

	// done is closed by Close, ending the waits of delayed calls.
	done chan struct{}

	mu      sync.Mutex
	closed  bool
	changed changes.Signal // notified at every change of state

	seq     int64 // message timestamps, see nextTS
	counter int   // envelope IDs, tickets, trigger IDs, response URLs

	users    map[string]User
	groups   map[string]UserGroup
	channels []Channel

	messages   map[string][]*message // by channel ID, in the order posted
	ephemerals []Ephemeral
	calls      []Call
	faults     []*fault
	responders map[string]responder // by response_url path

	tickets   map[string]bool // apps.connections.open tickets not yet used
	conns     []*conn         // open Socket Mode connections, oldest first
	connects  int
	envelopes []*delivery
	pending   []*delivery // waiting for a connection
	acks      []Ack
}

// New starts a fake Slack on a loopback port and stops it when tb ends.
// The fake knows its bot user and nothing else: tests add the users,
// groups and channels they need.
func New(tb testing.TB, opts ...Option) *Fake {
	tb.Helper()
	f := &Fake{
		tb:           tb,
		pingInterval: 5 * time.Second,
		done:         make(chan struct{}),
		users:        map[string]User{},
		groups:       map[string]UserGroup{},
		messages:     map[string][]*message{},
		responders:   map[string]responder{},
		tickets:      map[string]bool{},
		upgrader: websocket.Upgrader{
			// slack-go dials with Origin: https://api.slack.com, which is
			// not the fake's origin; Slack accepts it, so must the fake.
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
	for _, opt := range opts {
		opt(f)
	}
	f.users[BotUserID] = User{ID: BotUserID, Name: BotName, RealName: BotName, IsBot: true}

	mux := http.NewServeMux()
	mux.HandleFunc("/api/", f.serveAPI)
	mux.HandleFunc("/link/", f.serveLink)
	mux.HandleFunc("/commands/", f.serveResponseURL)
	mux.HandleFunc("/actions/", f.serveResponseURL)
	f.srv = httptest.NewServer(mux)
	tb.Cleanup(f.Close)
	return f
}

// URL is the fake's base URL, "http://127.0.0.1:PORT". slack-go wants
// URL()+"/api/" as its API URL.
func (f *Fake) URL() string { return f.srv.URL }

// Close closes every Socket Mode connection abruptly and stops the
// server. New arranges for it to be called when the test ends; calling it
// again does nothing.
func (f *Fake) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	close(f.done)
	conns := f.conns
	f.conns = nil
	f.notifyLocked()
	f.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	f.srv.CloseClientConnections()
	f.srv.Close()
	f.wg.Wait()
}

// AddUser adds u to the workspace, or replaces the user with its ID.
func (f *Fake) AddUser(u User) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[u.ID] = u
}

// AddUserGroup adds g to the workspace, or replaces the group with its ID.
func (f *Fake) AddUserGroup(g UserGroup) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g.Members = append([]string(nil), g.Members...)
	f.groups[g.ID] = g
}

// AddChannel adds c to the workspace, or replaces the channel with its ID.
func (f *Fake) AddChannel(c Channel) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.Members = append([]string(nil), c.Members...)
	for i := range f.channels {
		if f.channels[i].ID == c.ID {
			f.channels[i] = c
			return
		}
	}
	f.channels = append(f.channels, c)
}

// WaitFor waits until cond reports true, checking it at once and again
// after every change of the fake's state (a call, a connection, an ack...).
// cond may call the fake's methods. It returns ctx's error if ctx ends
// first.
func (f *Fake) WaitFor(ctx context.Context, cond func() bool) error {
	if err := f.changed.WaitFor(ctx, cond); err != nil {
		return fmt.Errorf("slacktest: waiting for a condition: %w", err)
	}
	return nil
}

// notifyLocked wakes the WaitFor calls. f.mu must be held.
func (f *Fake) notifyLocked() { f.changed.Notify() }

// nextTS returns a message timestamp: unique, increasing, in Slack's
// "seconds.microseconds" form, starting at "1700000000.000100" and 100µs
// apart, so that goldens do not depend on the clock. f.mu must be held.
func (f *Fake) nextTS() string {
	f.seq++
	us := f.seq * 100
	return fmt.Sprintf("%d.%06d", 1700000000+us/1000000, us%1000000)
}

// nextID returns the next number of the fake's other identifiers. f.mu
// must be held.
func (f *Fake) nextID() int {
	f.counter++
	return f.counter
}

// logf logs to the test, whose output shows it when the test fails or
// runs with -v.
func (f *Fake) logf(format string, args ...any) {
	f.tb.Helper()
	f.tb.Logf("slacktest: "+format, args...)
}

// channelLocked finds a channel by ID or by name, with or without '#'.
// f.mu must be held.
func (f *Fake) channelLocked(idOrName string) (Channel, bool) {
	if idOrName == "" {
		return Channel{}, false
	}
	for _, c := range f.channels {
		if c.ID == idOrName || c.Name == idOrName || "#"+c.Name == idOrName {
			return c, true
		}
	}
	return Channel{}, false
}
