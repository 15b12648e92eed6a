package slacktest

import (
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/slack-go/slack"
)

// The people, groups and channels of the workspace, as the bot looks them
// up to tell who may deploy and approve.

func (f *Fake) usersInfo(p url.Values) (map[string]any, *apiError) {
	u, ok := f.users[p.Get("user")]
	if !ok {
		return nil, errCode("user_not_found")
	}
	return map[string]any{"user": slackUser(u)}, nil
}

func (f *Fake) usersLookupByEmail(p url.Values) (map[string]any, *apiError) {
	email := p.Get("email")
	for _, u := range f.users {
		if email != "" && strings.EqualFold(u.Email, email) {
			return map[string]any{"user": slackUser(u)}, nil
		}
	}
	return nil, errCode("users_not_found")
}

func (f *Fake) usergroupsUsersList(p url.Values) (map[string]any, *apiError) {
	g, ok := f.groups[p.Get("usergroup")]
	if !ok {
		return nil, errCode("no_such_subteam")
	}
	users := g.Members
	if users == nil {
		users = []string{}
	}
	return map[string]any{"users": users}, nil
}

// usergroupsList lists the workspace's groups, in ID order: the enabled
// ones, and the disabled ones with include_disabled; each with its
// members with include_users, and their count with include_count.
func (f *Fake) usergroupsList(p url.Values) (map[string]any, *apiError) {
	ids := slices.Sorted(maps.Keys(f.groups))
	out := []slack.UserGroup{}
	for _, id := range ids {
		g := f.groups[id]
		if g.Disabled && !truthy(p.Get("include_disabled")) {
			continue
		}
		ug := slack.UserGroup{ID: g.ID, TeamID: TeamID, IsUserGroup: true, Name: g.Handle, Handle: g.Handle}
		if g.Disabled {
			ug.DateDelete = slack.JSONTime(1700000000)
		}
		if truthy(p.Get("include_users")) {
			ug.Users = append([]string{}, g.Members...)
		}
		if truthy(p.Get("include_count")) {
			ug.UserCount = len(g.Members)
		}
		out = append(out, ug)
	}
	return map[string]any{"usergroups": out}, nil
}

func (f *Fake) conversationsInfo(p url.Values) (map[string]any, *apiError) {
	c, ok := f.channelLocked(p.Get("channel"))
	if !ok {
		return nil, errCode("channel_not_found")
	}
	var ch slack.Channel
	ch.ID = c.ID
	ch.Name = c.Name
	ch.NameNormalized = c.Name
	ch.IsChannel = true
	ch.IsPrivate = c.Private
	ch.IsArchived = c.Archived
	ch.IsMember = true
	if c.Members != nil {
		ch.NumMembers = len(c.Members)
	}
	return map[string]any{"channel": ch}, nil
}

// slackUser is u as Slack's user object, in slack-go's type.
func slackUser(u User) slack.User {
	su := slack.User{
		ID:       u.ID,
		TeamID:   TeamID,
		Name:     u.Name,
		RealName: u.RealName,
		Deleted:  u.Deleted,
		IsBot:    u.IsBot,
		TZ:       "Etc/UTC",
		Profile: slack.UserProfile{
			RealName:    u.RealName,
			DisplayName: u.Name,
			Email:       u.Email,
			Team:        TeamID,
		},
	}
	if u.ID == BotUserID {
		su.Profile.BotID = BotID
		su.Profile.ApiAppID = AppID
	}
	return su
}
