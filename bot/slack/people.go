package slack

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/slipway-ci/slipway/bot"
)

// How long what Slack said about people is believed. A group's members
// are read again after a minute, so that someone taken out of the
// approvers cannot approve for longer than that. Whom an email address
// belongs to changes rarely; someone who just joined Slack is looked for
// again after ten minutes.
const (
	groupsTTL     = time.Minute
	personTTL     = time.Hour
	noPersonTTL   = 10 * time.Minute
	maxPeopleHeld = 10000
)

// groupCache is every user group's members, as one usergroups.list said.
type groupCache struct {
	mu     sync.Mutex
	at     time.Time
	byUser map[string][]string
}

// Groups returns the user groups (S...) user is in, for the bot's who
// may. One usergroups.list call (with its members) answers for everyone
// for a minute; it needs the scope usergroups:read. When Slack cannot be
// asked and the minute is over, it fails rather than answer from what may
// no longer be true.
func (a *Adapter) Groups(ctx context.Context, user string) ([]string, error) {
	g := &a.groups
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byUser == nil || time.Since(g.at) >= groupsTTL {
		groups, err := a.api.GetUserGroupsContext(ctx, slackapi.GetUserGroupsOptionIncludeUsers(true))
		if err != nil {
			return nil, a.classify("usergroups.list", err)
		}
		byUser := map[string][]string{}
		for _, grp := range groups {
			if grp.DateDelete != 0 {
				continue // disabled
			}
			for _, u := range grp.Users {
				byUser[u] = append(byUser[u], grp.ID)
			}
		}
		g.byUser, g.at = byUser, time.Now()
	}
	return slices.Clone(g.byUser[user]), nil
}

// personCache is who has an email address, as users.lookupByEmail said.
type personCache struct {
	mu sync.Mutex
	m  map[string]person
}

type person struct {
	id string // "" when nobody has the address
	at time.Time
}

// noreplySuffix is the domain of GitHub's private commit emails, which
// no Slack account has.
const noreplySuffix = "@users.noreply.github.com"

// Identify returns the Slack user a GitHub person is, for the GitHub
// intake: the one Options.Users maps the login to, else the one whose
// email address it is (users.lookupByEmail, scopes users:read and
// users:read.email), else "". An error means Slack could not be asked,
// not that nobody matched.
func (a *Adapter) Identify(ctx context.Context, login, email string) (string, error) {
	if id, ok := a.users[strings.ToLower(login)]; ok && login != "" {
		return id, nil
	}
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" || !strings.Contains(email, "@") || strings.HasSuffix(email, noreplySuffix) {
		return "", nil
	}
	c := &a.people
	c.mu.Lock()
	p, ok := c.m[email]
	c.mu.Unlock()
	if ok && (p.id != "" && time.Since(p.at) < personTTL || p.id == "" && time.Since(p.at) < noPersonTTL) {
		return p.id, nil
	}
	u, err := a.api.GetUserByEmailContext(ctx, email)
	switch {
	case slackCode(err) == "users_not_found":
		p = person{at: time.Now()}
	case err != nil:
		return "", a.classify("users.lookupByEmail", err)
	case u.Deleted || u.IsBot:
		// A deactivated account, or an app, is nobody who approves.
		p = person{at: time.Now()}
	default:
		p = person{id: u.ID, at: time.Now()}
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxPeopleHeld {
		c.m = map[string]person{}
	}
	c.m[email] = p
	c.mu.Unlock()
	return p.id, nil
}

var (
	userID    = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	groupID   = regexp.MustCompile(`^S[A-Z0-9]{2,}$`)
	channelID = regexp.MustCompile(`^[CGD][A-Z0-9]{2,}$`)
)

// Words are the bot's words as Slack writes them: users as <@U...>,
// user groups as <!subteam^S...>, channels as <#C...>, so that Slack
// shows names and links. What is no Slack ID (a GitHub login, when an
// author could not be matched) is written as it is.
func Words() bot.Words {
	return bot.Words{
		Mention: func(id string) string {
			switch {
			case userID.MatchString(id):
				return "<@" + id + ">"
			case groupID.MatchString(id):
				return "<!subteam^" + id + ">"
			}
			return id
		},
		Escape: escapeText,
		Channel: func(id string) string {
			if channelID.MatchString(id) {
				return "<#" + id + ">"
			}
			return "#" + id
		},
	}
}

// escapeText escapes what Slack reads as markup in text people wrote
// (its "&", "<" and ">"), so that a commit or a lock reason cannot ping a
// channel or forge a link.
func escapeText(s string) string {
	return textEscaper.Replace(s)
}

var textEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
