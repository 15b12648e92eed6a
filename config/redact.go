package config

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Secret is a value that must not be shown: it formats, logs and
// marshals (JSON, YAML, text) as [redacted], however it is printed and
// wherever it sits in a struct, map or slice. string(s) is its value.
type Secret string

const redacted = "[redacted]"

// String returns [redacted], or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// Format prints [redacted] for every verb, %#v and %x included.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue logs [redacted].
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText marshals [redacted], for encoding/json and YAML.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue is the config with its secrets redacted, every key under its
// name in slipway.yml, for a "config loaded" line.
func (c *Config) LogValue() slog.Value {
	if c == nil {
		return slog.StringValue("<nil>")
	}
	g := []slog.Attr{
		slog.Group("http", "addr", c.HTTP.Addr, "public_url", c.HTTP.PublicURL, "link_key", c.HTTP.LinkKey,
			"link_ttl", c.HTTP.LinkTTL.String(), "auth", c.HTTP.Auth.logValue()),
		slog.Group("local", "user", c.Local.User, "users", c.Local.Users, "allow_root", c.Local.AllowRoot, "max_processes", c.Local.MaxProcesses),
		slog.Group("orbs", "registry", c.Orbs.Registry, "token", c.Orbs.Token, "offline", c.Orbs.Offline),
		slog.Group("log", "format", c.Log.Format, "level", c.Log.Level.String()),
		slog.Group("store", "path", c.Store.Path),
		slog.String("data_dir", c.DataDir),
		slog.String("executor", c.Executor),
		slog.Int("parallelism", c.Parallelism),
		slog.String("shutdown_grace", c.ShutdownGrace.String()),
	}
	gh := []any{}
	if c.GitHub.UsesApp() {
		gh = append(gh, "app_id", c.GitHub.AppID, "private_key_path", c.GitHub.PrivateKeyPath,
			"installation_id", c.GitHub.InstallationID)
	} else {
		gh = append(gh, "token", c.GitHub.Token)
	}
	gh = append(gh, "webhook_secret", c.GitHub.WebhookSecret, "api_url", c.GitHub.APIURL)
	g = append(g, slog.Group("github", gh...))
	if c.Slack != nil {
		g = append(g, slog.Group("slack", "app_token", c.Slack.AppToken, "bot_token", c.Slack.BotToken, "api_url", c.Slack.APIURL))
	}
	var ctxs []slog.Attr
	for _, name := range slices.Sorted(maps.Keys(c.Contexts)) {
		ctx := c.Contexts[name]
		ctxs = append(ctxs, slog.Attr{Key: name, Value: variables(ctx.Env, ctx.Secrets)})
	}
	g = append(g, slog.Attr{Key: "contexts", Value: slog.GroupValue(ctxs...)})
	var users []slog.Attr
	for _, login := range slices.Sorted(maps.Keys(c.Users)) {
		users = append(users, slog.String(login, c.Users[login]))
	}
	g = append(g, slog.Attr{Key: "users", Value: slog.GroupValue(users...)})
	var apps []slog.Attr
	for _, name := range slices.Sorted(maps.Keys(c.Apps)) {
		a := c.Apps[name]
		var envs []slog.Attr
		for _, en := range slices.Sorted(maps.Keys(a.Environments)) {
			e := a.Environments[en]
			attrs := []slog.Attr{
				slog.Any("deployers", e.Deployers),
				slog.Any("approvers", e.Approvers),
				slog.Bool("self_approval", e.SelfApproval),
			}
			attrs = append(attrs, variables(e.Env, e.Secrets).Group()...)
			envs = append(envs, slog.Attr{Key: en, Value: slog.GroupValue(attrs...)})
		}
		apps = append(apps, slog.Attr{Key: name, Value: slog.GroupValue(
			slog.String("repo", a.Repo),
			slog.String("channel", a.Channel),
			slog.String("config_path", a.ConfigPath),
			slog.String("deploy_workflow", a.DeployWorkflow),
			slog.Bool("cancel_superseded", a.CancelSuperseded),
			slog.Bool("lock_after_rollback", a.LockAfterRollback),
			slog.Attr{Key: "environments", Value: slog.GroupValue(envs...)},
		)})
	}
	g = append(g, slog.Attr{Key: "apps", Value: slog.GroupValue(apps...)})
	return slog.GroupValue(g...)
}

func variables(env map[string]string, secrets map[string]Secret) slog.Value {
	var e, s []slog.Attr
	for _, k := range slices.Sorted(maps.Keys(env)) {
		e = append(e, slog.String(k, env[k]))
	}
	for _, k := range slices.Sorted(maps.Keys(secrets)) {
		s = append(s, slog.Any(k, secrets[k]))
	}
	return slog.GroupValue(
		slog.Attr{Key: "env", Value: slog.GroupValue(e...)},
		slog.Attr{Key: "secrets", Value: slog.GroupValue(s...)},
	)
}

// String is the config as key=value pairs, dotted as slipway.yml nests
// them, with its secrets redacted.
func (c *Config) String() string {
	var b strings.Builder
	var walk func(prefix string, v slog.Value)
	walk = func(prefix string, v slog.Value) {
		v = v.Resolve()
		if v.Kind() == slog.KindGroup {
			for _, a := range v.Group() {
				walk(join(prefix, a.Key), a.Value)
			}
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		s := v.String()
		if s == "" || strings.ContainsAny(s, " \t\n\"=") {
			s = strconv.Quote(s)
		}
		b.WriteString(prefix + "=" + s)
	}
	walk("", c.LogValue())
	return b.String()
}

func (a Auth) logValue() slog.Value {
	var users []slog.Attr
	for _, name := range slices.Sorted(maps.Keys(a.Users)) {
		u := a.Users[name]
		users = append(users, slog.Group(name, "password_hash", u.PasswordHash, "chat_id", u.ChatID))
	}
	var proxies []string
	for _, p := range a.TrustedProxies {
		proxies = append(proxies, p.String())
	}
	var hu []slog.Attr
	for _, name := range slices.Sorted(maps.Keys(a.HeaderUsers)) {
		hu = append(hu, slog.String(name, a.HeaderUsers[name]))
	}
	return slog.GroupValue(
		slog.Attr{Key: "users", Value: slog.GroupValue(users...)},
		slog.String("trusted_header", a.TrustedHeader),
		slog.Any("trusted_proxies", proxies),
		slog.Attr{Key: "header_users", Value: slog.GroupValue(hu...)},
	)
}
