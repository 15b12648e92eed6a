// Package slack is package bot's Slack adapter: it takes slash commands
// and button presses over Socket Mode, acknowledging each envelope before
// anything else and keeping it in the store's inbox until the bot has
// answered it, and it shows the bot's messages as Block Kit through the
// Web API, paced as Slack asks. It also tells the bot who is in which
// user group, and the GitHub intake which Slack user a commit author is.
//
// It imports slack-go as slackapi: this package is the one named slack.
package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/slipway-ci/slipway/bot"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// Source is the inbox's name for what comes from Slack.
const Source = "slack"

// DefaultAPIURL is Slack's Web API.
const DefaultAPIURL = "https://slack.com/api/"

// Inbox keeps what Slack sent from its acknowledgement until it is
// handled, deduplicated by envelope ID (store.DB has these methods).
type Inbox interface {
	Receive(ctx context.Context, it engine.InboxItem) (bool, error)
	PendingInbox(ctx context.Context, source string, now time.Time, limit int) ([]engine.InboxItem, error)
	HandledInbox(ctx context.Context, source, id, result string, at time.Time) error
	RetryInbox(ctx context.Context, source, id string, next time.Time, cause string) error
	NextInboxDue(ctx context.Context, source string) (time.Time, error)
}

// Options configure an Adapter.
type Options struct {
	// AppToken (xapp-...) opens Socket Mode connections; it needs the
	// app-level scope connections:write.
	AppToken string
	// BotToken (xoxb-...) makes every Web API call; manifest.yml lists
	// its scopes.
	BotToken string
	// APIURL is the Web API's address, apps.connections.open included;
	// DefaultAPIURL when "".
	APIURL string
	// Bot answers commands and presses; Notifier tells which approval a
	// pressed message asks for. Run needs both; when they are built from
	// the adapter (its Directory, Words and Chat), leave them nil here
	// and hand them over with Attach.
	Bot      *bot.Bot
	Notifier *bot.Notifier
	// Inbox keeps envelopes between their ack and their handling. Run
	// needs it.
	Inbox Inbox
	// Users maps GitHub logins (any case) to Slack user IDs, for
	// Identify: the config's users.
	Users  map[string]string
	Logger *slog.Logger
	// HTTPClient makes the Web API calls; one with a 30s timeout when nil.
	HTTPClient *http.Client
	// PostEvery and PostBurst pace the posts to one channel: Slack takes
	// about one message a second per channel, with short bursts. 1s and 3
	// when zero.
	PostEvery time.Duration
	PostBurst int
	// RetryMin and RetryMax bound the backoff of a request whose handling
	// failed (the store was down); 1s and 1m when zero.
	RetryMin, RetryMax time.Duration
	// RateLimited, if set, is told each time Slack rate-limits a call and
	// how long it asks to wait (the metrics' hook).
	RateLimited func(wait time.Duration)
}

// Adapter is slipway's Slack app: the Socket Mode listener (Run), the
// bot's chat (Post, Update, Find), its directory of user groups (Groups)
// and the intake's people (Identify).
type Adapter struct {
	api      *slackapi.Client
	appToken string
	apiURL   string
	inbox    Inbox
	users    map[string]string
	log      *slog.Logger
	retryMin time.Duration
	retryMax time.Duration
	pace     *pacer
	// rateLimited is Options.RateLimited.
	rateLimited func(wait time.Duration)
	// link is why Socket Mode is not connected; nil once it is.
	link atomic.Pointer[error]

	mu       sync.Mutex
	bot      *bot.Bot
	notifier *bot.Notifier
	self     *Identity // from auth.test, once known

	groups groupCache
	people personCache
}

var (
	_ bot.Chat      = (*Adapter)(nil)
	_ bot.Directory = (*Adapter)(nil)
)

// New checks the options and makes an adapter; it calls nothing.
//
// The tokens' kinds are checked here because Slack cannot be relied on to
// say it plainly later: slack-go's Socket Mode client retries an app
// token refused with not_allowed_token_type (a bot token given as the
// app token) forever.
func New(opts Options) (*Adapter, error) {
	switch {
	case opts.AppToken == "":
		return nil, errors.New("slack: no app token: set slack.app_token to the app-level token (xapp-...) with connections:write")
	case !strings.HasPrefix(opts.AppToken, "xapp-"):
		return nil, fmt.Errorf("slack: slack.app_token must be an app-level token, which starts with xapp-; this one starts with %q", tokenKind(opts.AppToken))
	case opts.BotToken == "":
		return nil, errors.New("slack: no bot token: set slack.bot_token to the bot user OAuth token (xoxb-...)")
	case !strings.HasPrefix(opts.BotToken, "xoxb-"):
		return nil, fmt.Errorf("slack: slack.bot_token must be a bot token, which starts with xoxb-; this one starts with %q", tokenKind(opts.BotToken))
	}
	a := &Adapter{appToken: opts.AppToken, apiURL: opts.APIURL, inbox: opts.Inbox, log: opts.Logger,
		bot: opts.Bot, notifier: opts.Notifier, retryMin: opts.RetryMin, retryMax: opts.RetryMax,
		users: map[string]string{}, pace: newPacer(opts.PostEvery, opts.PostBurst), rateLimited: opts.RateLimited}
	a.setLink(errors.New("Socket Mode not connected yet"))
	if a.apiURL == "" {
		a.apiURL = DefaultAPIURL
	}
	if !strings.HasSuffix(a.apiURL, "/") {
		a.apiURL += "/"
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.retryMin <= 0 {
		a.retryMin = time.Second
	}
	if a.retryMax <= 0 {
		a.retryMax = time.Minute
	}
	for login, id := range opts.Users {
		a.users[strings.ToLower(login)] = id
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	a.api = slackapi.New(opts.BotToken, slackapi.OptionAppLevelToken(opts.AppToken), slackapi.OptionAPIURL(a.apiURL),
		slackapi.OptionHTTPClient(hc))
	return a, nil
}

// tokenKind is what a token starts with, up to its first dash: enough to
// tell the kind, never the secret.
func tokenKind(token string) string {
	kind, _, found := strings.Cut(token, "-")
	if !found || len(kind) > 5 {
		return "no known prefix"
	}
	return kind + "-"
}

// Attach hands the adapter the bot and the notifier Run delivers to, for
// a caller that builds them from the adapter; call it before Run.
func (a *Adapter) Attach(b *bot.Bot, n *bot.Notifier) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.bot, a.notifier = b, n
}

// Identity is who the bot is in Slack, as auth.test says.
type Identity struct {
	UserID string // the bot user, "U..."
	BotID  string // "B..."
	TeamID string
	Team   string
	URL    string // the workspace's address
}

// Check asks Slack who the bot token is (auth.test), so that a wrong
// token is said at start, in words, rather than at the first post.
func (a *Adapter) Check(ctx context.Context) (Identity, error) {
	r, err := a.api.AuthTestContext(ctx)
	if err != nil {
		var se slackapi.SlackErrorResponse
		if errors.As(err, &se) {
			switch se.Err {
			case "invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive":
				return Identity{}, fmt.Errorf("slack: the bot token was refused by Slack: %s — check slack.bot_token", se.Err)
			case "not_allowed_token_type":
				return Identity{}, fmt.Errorf("slack: the bot token was refused by Slack: %s (it is no bot token) — check slack.bot_token", se.Err)
			}
		}
		return Identity{}, fmt.Errorf("slack: auth.test at %s: %w", a.apiURL, err)
	}
	id := Identity{UserID: r.UserID, BotID: r.BotID, TeamID: r.TeamID, Team: r.Team, URL: r.URL}
	a.mu.Lock()
	a.self = &id
	a.mu.Unlock()
	return id, nil
}

// identity is the bot's identity, asked of Slack the first time.
func (a *Adapter) identity(ctx context.Context) (Identity, error) {
	a.mu.Lock()
	self := a.self
	a.mu.Unlock()
	if self != nil {
		return *self, nil
	}
	return a.Check(ctx)
}

// scopes are the bot token scopes each Web API method the adapter calls
// needs. manifest.yml asks for exactly these, plus commands for its slash
// commands; a test holds the manifest, this table and the calls the
// adapter makes to each other. apps.connections.open is left out: it is
// called with the app token, whose scope (connections:write) is given when
// the token is made, not in the manifest.
var scopes = map[string][]string{
	"auth.test":             nil,
	"chat.postMessage":      {"chat:write"},
	"chat.update":           {"chat:write"},
	"chat.postEphemeral":    {"chat:write"},
	"conversations.history": {"channels:history", "groups:history"},
	"conversations.replies": {"channels:history", "groups:history"},
	"usergroups.list":       {"usergroups:read"},
	"users.lookupByEmail":   {"users:read", "users:read.email"},
}

// permanent are Slack's error codes that no retry mends: the outbox parks
// the event rather than trying it for ever.
var permanent = map[string]bool{
	"channel_not_found":       true,
	"not_in_channel":          true,
	"is_archived":             true,
	"invalid_blocks":          true,
	"invalid_blocks_format":   true,
	"invalid_metadata_format": true,
	"msg_too_long":            true,
	"no_text":                 true,
	"message_not_found":       true,
	"cant_update_message":     true,
	"thread_not_found":        true,
	"restricted_action":       true,
	"user_not_found":          true,
	"user_not_in_channel":     true,
}

// Connected says whether the Socket Mode connection is up: nil when it
// is, else why not (for /readyz).
func (a *Adapter) Connected() error {
	if err := a.link.Load(); err != nil {
		return *err
	}
	return nil
}

func (a *Adapter) setLink(err error) {
	if err == nil {
		a.link.Store(nil)
		return
	}
	a.link.Store(&err)
}

// classify is the package's classify, telling Options.RateLimited of
// each rate limit.
func (a *Adapter) classify(method string, err error) error {
	err = classify(method, err)
	var ra *engine.RetryAfterError
	if a.rateLimited != nil && errors.As(err, &ra) {
		a.rateLimited(ra.After)
	}
	return err
}

// classify wraps a Web API error with its method and says what the outbox
// should do with it: engine.RetryAfter for a rate limit (Slack's
// Retry-After), engine.Permanent for what no retry mends, a plain error
// (retried with backoff) for 5xx and the network.
func classify(method string, err error) error {
	if err == nil {
		return nil
	}
	wrapped := fmt.Errorf("slack: %s: %w", method, err)
	var rl *slackapi.RateLimitedError
	if errors.As(err, &rl) {
		return engine.RetryAfter(wrapped, rl.RetryAfter)
	}
	var sc slackapi.StatusCodeError
	if errors.As(err, &sc) && sc.Code == http.StatusTooManyRequests {
		return engine.RetryAfter(wrapped, time.Second) // a 429 without Retry-After
	}
	var se slackapi.SlackErrorResponse
	if errors.As(err, &se) {
		if msgs := se.ResponseMetadata.Messages; len(msgs) > 0 {
			wrapped = fmt.Errorf("slack: %s: %w (%s)", method, err, strings.Join(msgs, "; "))
		}
		switch {
		case se.Err == "ratelimited":
			return engine.RetryAfter(wrapped, time.Second)
		case permanent[se.Err]:
			return engine.Permanent(wrapped)
		}
	}
	return wrapped
}

// slackCode is the Slack error code in err, "" when there is none.
func slackCode(err error) string {
	var se slackapi.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	return ""
}
