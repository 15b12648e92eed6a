package config

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/slipway-ci/slipway/orbregistry"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// Defaults of the keys that have one.
const (
	DefaultAddr           = ":8080"
	DefaultParallelism    = 4
	DefaultShutdownGrace  = 30 * time.Second
	DefaultGitHubAPIURL   = "https://api.github.com/"
	DefaultSlackAPIURL    = "https://slack.com/api/"
	DefaultConfigPath     = ".circleci/config.yml"
	DefaultDeployWorkflow = "deploy"
	DefaultStoreFile      = "slipway.db" // in the data directory
	DefaultLinkTTL        = 30 * 24 * time.Hour
	DefaultOrbRegistry    = orbregistry.DefaultURL
)

// Config is a slipway.yml, checked and with its defaults applied.
type Config struct {
	HTTP  HTTP
	Store Store
	// DataDir holds workspaces, caches, job logs and source tarballs.
	// It is required; a relative path is relative to the config file.
	DataDir string
	// Executor runs jobs: "docker", "local", or "" for the caller to
	// choose (docker when an engine answers, else local).
	Executor string
	// Parallelism is how many jobs run at once, 1 to 256.
	Parallelism int
	// ShutdownGrace is how long serve lets running jobs finish once asked
	// to stop, before it cancels them.
	ShutdownGrace time.Duration
	GitHub        GitHub
	// Slack is nil when the file has no slack section: slipway then runs
	// without chat.
	Slack *Slack
	// Contexts are the server's CircleCI contexts, by name.
	Contexts map[string]*Context
	// Users maps GitHub logins, lowercased, to Slack user IDs, for the
	// people whom Slack's lookup by email does not find.
	Users map[string]string
	// Apps are the apps slipway deploys, by name.
	Apps map[string]*App
	// Limits bound what planning one pushed config may cost; zero fields
	// take workflows' defaults.
	Limits workflows.Limits
	// Local configures the local executor.
	Local Local
	Orbs  Orbs
	Log   Log

	byRepo map[string]*App // by repository, lowercased
}

// HTTP is slipway's one listener: webhooks, health, metrics, dashboard.
type HTTP struct {
	// Addr is the address listened on, host:port; the host may be empty.
	Addr string
	// PublicURL is the base of the links slipway posts, without a
	// trailing slash; by default http://Addr, with localhost for an empty
	// or unspecified host.
	PublicURL string
	// LinkKey signs the dashboard links slipway posts; empty: a key made
	// at random and kept in the store.
	LinkKey Secret
	// LinkTTL is how long a posted link opens its page; default 30 days.
	LinkTTL time.Duration
	// Auth says who may use the dashboard beyond posted links.
	Auth Auth
}

// Auth is who may sign in to the dashboard.
type Auth struct {
	// Users sign in with HTTP Basic authentication, by name.
	Users map[string]DashboardUser
	// TrustedHeader is the header an authenticating proxy puts the
	// user's name in, believed only from TrustedProxies.
	TrustedHeader  string
	TrustedProxies []netip.Prefix
	// HeaderUsers maps the names the proxy sends to Slack user IDs: who
	// they act as. Names not listed may only view.
	HeaderUsers map[string]string
}

// DashboardUser is a user who signs in with a password.
type DashboardUser struct {
	// PasswordHash is a bcrypt hash (htpasswd -nBC 10 NAME).
	PasswordHash Secret
	// ChatID is the Slack user the user acts as; empty: view only.
	ChatID string
}

// Local is who the local executor's jobs run as, and their limits.
type Local struct {
	// User is who jobs run as when slipway runs as root: a user name, or
	// uid[:gid]. Users, instead, gives each running job a user of its
	// own among several.
	User  string
	Users []string
	// AllowRoot lets jobs run as root when slipway does and names no
	// user: for a machine whose only jobs are its owner's.
	AllowRoot bool
	// MaxProcesses bounds one job's processes; 0: the executor's default
	// (4096), -1: no limit.
	MaxProcesses int
}

// Orbs is where the orbs a config uses come from when it does not vendor
// them.
type Orbs struct {
	// Registry is the GraphQL endpoint of CircleCI's orb registry;
	// default orbregistry.DefaultURL.
	Registry string
	// Token reads private orbs (a CircleCI personal API token).
	Token Secret
	// Offline: vendored orbs only, the registry never asked.
	Offline bool
}

// Log is how slipway logs.
type Log struct {
	// Format is "text" (the default) or "json".
	Format string
	// Level is "debug", "info" (the default), "warn" or "error".
	Level slog.Level
}

// Store is slipway's SQLite database.
type Store struct {
	// Path is the database file; by default slipway.db in DataDir.
	Path string
}

// GitHub is how slipway reaches GitHub: with a token, or as a GitHub
// App (AppID, PrivateKey and InstallationID), never both.
type GitHub struct {
	Token Secret
	// AppID, PrivateKeyPath and InstallationID are a GitHub App's
	// credentials; PrivateKey is the key read from PrivateKeyPath at load.
	AppID          int64
	PrivateKeyPath string
	PrivateKey     Secret
	InstallationID int64
	// WebhookSecret is the secret GitHub signs its webhooks with. It is
	// required: slipway does not accept unsigned webhooks.
	WebhookSecret Secret
	// APIURL is GitHub's REST API, ending in a slash; a GitHub
	// Enterprise Server's is https://HOST/api/v3/.
	APIURL string
}

// UsesApp reports whether slipway signs in as a GitHub App rather than
// with a token.
func (g *GitHub) UsesApp() bool { return g.AppID != 0 }

// Slack is how slipway reaches Slack: Socket Mode with the app-level
// token, the Web API with the bot token.
type Slack struct {
	AppToken Secret // xapp-...
	BotToken Secret // xoxb-...
	// APIURL is Slack's Web API, ending in a slash.
	APIURL string
}

// Context is a server context: variables and secrets given to jobs that
// name it.
type Context struct {
	Name    string
	Env     map[string]string
	Secrets map[string]Secret
}

// App is a deployable application: a repository, the Slack channel of its
// threads, and the environments it ships to.
type App struct {
	Name string
	// Repo is the app's GitHub repository, "owner/name".
	Repo string
	// Channel is the ID of the Slack channel of the app's threads. It is
	// required when the config has a slack section.
	Channel string
	// ConfigPath is the CircleCI config's path in the repository.
	ConfigPath string
	// DeployWorkflow is the workflow /deploy and /rollback run.
	DeployWorkflow string
	// CancelSuperseded cancels a branch's running pipelines when a newer
	// push to that branch arrives.
	CancelSuperseded bool
	// LockAfterRollback locks an environment after a rollback to it, so
	// that the next push does not undo the rollback.
	LockAfterRollback bool
	// Environments are where the app is deployed, by name. Each is also a
	// context of the app's jobs.
	Environments map[string]*Environment
}

// Environment is where an app is deployed, who may deploy and approve
// there, and the variables and secrets of its jobs. Where a server
// context has the same name, a job gets both, the environment's values
// winning.
type Environment struct {
	Name string
	// Deployers may start a deploy here from chat (/deploy, /rollback)
	// and lock or unlock the environment: Slack user IDs (U…, W…) or user
	// group IDs (S…). Empty means anyone. It never skips an approval.
	Deployers []string
	// Approvers may approve a deploy here. An environment with approvers
	// is protected: every deploy to it waits for one of them. Empty: not
	// protected.
	Approvers []string
	// SelfApproval lets the author of a change approve its deploy.
	SelfApproval bool
	Env          map[string]string
	Secrets      map[string]Secret
}

// Load reads the config file at path, taking ${VAR}s from the process's
// environment. A file with problems is a workflows.ErrorList of them all.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	// One byte more than allowed, so that Parse sees a file too large.
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data, os.LookupEnv, dir)
}

// Parse reads a config from data, named name in errors. lookupEnv gives
// the values of ${VAR}s (nil: none is set); relative paths in the config
// are relative to dir. A config with problems is a workflows.ErrorList of
// them all, in file order.
func Parse(name string, data []byte, lookupEnv func(string) (string, bool), dir string) (*Config, error) {
	d := &decoder{file: name, dir: dir, lookup: lookupEnv, seen: map[string]bool{}, budget: maxValues}
	c := &Config{ShutdownGrace: DefaultShutdownGrace}
	if top := d.parseYAML(data); top != nil {
		d.config(top, c)
	}
	if err := d.result(); err != nil {
		return nil, err
	}
	c.setDefaults(dir)
	return c, nil
}

func (d *decoder) config(top *yaml.Node, c *Config) {
	top = d.resolve(top)
	if top == nil {
		return
	}
	if top.Kind != yaml.MappingNode {
		if isNull(top) {
			d.errorf(nil, "config is empty")
		} else {
			d.errorf(top, "a slipway.yml is a map of keys (http, github, apps...), got %s", describe(top))
		}
		return
	}
	noChannel := map[string]*yaml.Node{} // apps without a channel key
	keys, _ := d.object(top, "", fields{
		"http": func(_, v *yaml.Node, path string) {
			d.object(v, path, fields{
				"addr":       d.str(&c.HTTP.Addr, checkAddr),
				"public_url": d.str(&c.HTTP.PublicURL, checkURL),
				"link_key":   d.req((*string)(&c.HTTP.LinkKey), checkLinkKey),
				"link_ttl":   d.duration(&c.HTTP.LinkTTL),
				"auth": func(_, v *yaml.Node, path string) {
					d.auth(v, path, &c.HTTP.Auth)
				},
			})
		},
		"local": func(_, v *yaml.Node, path string) {
			keys, ok := d.object(v, path, fields{
				"user": d.str(&c.Local.User, checkJobUser),
				"users": func(_, v *yaml.Node, path string) {
					items, _ := d.list(v, path)
					for i, it := range items {
						var u string
						d.req(&u, checkJobUser)(nil, it, fmt.Sprintf("%s[%d]", path, i))
						c.Local.Users = append(c.Local.Users, u)
					}
				},
				"allow_root":    d.boolean(&c.Local.AllowRoot),
				"max_processes": intField(d, &c.Local.MaxProcesses, -1, 1_000_000),
			})
			if ok && keys["user"] != nil && keys["users"] != nil {
				d.fail(keys["users"], path, "user and users are two ways to name who jobs run as; keep one")
			}
		},
		"orbs": func(_, v *yaml.Node, path string) {
			d.object(v, path, fields{
				"registry": d.str(&c.Orbs.Registry, checkURL),
				"token":    d.req((*string)(&c.Orbs.Token), nil),
				"offline":  d.boolean(&c.Orbs.Offline),
			})
		},
		"log": func(_, v *yaml.Node, path string) {
			d.object(v, path, fields{
				"format": d.str(&c.Log.Format, checkLogFormat),
				"level":  d.logLevel(&c.Log.Level),
			})
		},
		"store": func(_, v *yaml.Node, path string) {
			d.object(v, path, fields{
				"path": d.str(&c.Store.Path, nil),
			})
		},
		"data_dir":       d.req(&c.DataDir, nil),
		"executor":       d.str(&c.Executor, checkExecutor),
		"parallelism":    intField(d, &c.Parallelism, 1, 256),
		"shutdown_grace": d.duration(&c.ShutdownGrace),
		"github": func(k, v *yaml.Node, path string) {
			d.github(k, v, path, &c.GitHub)
		},
		"slack": func(k, v *yaml.Node, path string) {
			c.Slack = d.slack(k, v, path)
		},
		"contexts": func(_, v *yaml.Node, path string) {
			c.Contexts = d.contexts(v, path)
		},
		"users": func(_, v *yaml.Node, path string) {
			c.Users = d.users(v, path)
		},
		"apps": func(_, v *yaml.Node, path string) {
			c.Apps = d.apps(v, path, noChannel)
		},
		"limits": func(_, v *yaml.Node, path string) {
			d.object(v, path, fields{
				"max_jobs":     intField(d, &c.Limits.MaxJobs, 1, 10_000_000),
				"max_steps":    intField(d, &c.Limits.MaxSteps, 1, 100_000_000),
				"max_requires": intField(d, &c.Limits.MaxRequires, 1, 100_000_000),
				"max_bytes":    intField(d, &c.Limits.MaxBytes, 1<<20, 1<<40),
			})
		},
	})
	if keys["data_dir"] == nil {
		d.errorf(top, "missing data_dir (where slipway keeps workspaces, caches and logs)")
	}
	if keys["github"] == nil {
		d.errorf(top, "missing github (its webhook_secret, and a token or a GitHub App's keys)")
	}
	if c.Slack != nil {
		for name, k := range noChannel {
			d.fail(k, "apps."+name, "missing channel (the Slack channel ID of the app's threads)")
		}
	}
}

func (d *decoder) github(key, v *yaml.Node, path string, g *GitHub) {
	keys, ok := d.object(v, path, fields{
		"token":            d.req((*string)(&g.Token), nil),
		"app_id":           intField(d, &g.AppID, 1, math.MaxInt64),
		"private_key_path": d.privateKey(g),
		"installation_id":  intField(d, &g.InstallationID, 1, math.MaxInt64),
		"webhook_secret":   d.req((*string)(&g.WebhookSecret), nil),
		"api_url":          d.str(&g.APIURL, checkURL),
	})
	if !ok {
		return
	}
	if keys["webhook_secret"] == nil {
		d.fail(key, path, "missing webhook_secret (the secret GitHub signs webhooks with)")
	}
	appKeys := []string{"app_id", "private_key_path", "installation_id"}
	var given, missing []string
	for _, k := range appKeys {
		if keys[k] != nil {
			given = append(given, k)
		} else {
			missing = append(missing, k)
		}
	}
	switch {
	case keys["token"] != nil && len(given) > 0:
		d.fail(key, path, "token and %s are two ways to sign in to GitHub; keep one", strings.Join(given, ", "))
	case keys["token"] == nil && len(given) == 0:
		d.fail(key, path, "missing token, or app_id, private_key_path and installation_id (a GitHub App's)")
	case len(given) > 0 && len(missing) > 0:
		d.fail(key, path, "a GitHub App needs app_id, private_key_path and installation_id; missing %s", strings.Join(missing, ", "))
	}
}

// privateKey reads the key a GitHub App signs its requests with, at a
// path relative to the config file's directory.
func (d *decoder) privateKey(g *GitHub) field {
	return func(_, v *yaml.Node, path string) {
		n, file, ok := d.text(v, path, true, nil)
		if !ok {
			return
		}
		if !filepath.IsAbs(file) {
			file = filepath.Join(d.dir, file)
		}
		key, msg := readPrivateKey(file)
		if msg != "" {
			d.fail(n, path, "%s", msg)
			return
		}
		g.PrivateKeyPath, g.PrivateKey = file, Secret(key)
	}
}

func (d *decoder) slack(key, v *yaml.Node, path string) *Slack {
	if r := d.resolve(v); r == nil || isNull(r) {
		// An empty slack section, its keys commented out, is no chat.
		return nil
	}
	s := &Slack{}
	keys, ok := d.object(v, path, fields{
		"app_token": d.req((*string)(&s.AppToken), checkPrefix("xapp-")),
		"bot_token": d.req((*string)(&s.BotToken), checkPrefix("xoxb-")),
		"api_url":   d.str(&s.APIURL, checkURL),
	})
	if !ok {
		return nil
	}
	for _, k := range []string{"app_token", "bot_token"} {
		if keys[k] == nil {
			d.fail(key, path, "missing %s", k)
		}
	}
	return s
}

func (d *decoder) contexts(v *yaml.Node, path string) map[string]*Context {
	out := map[string]*Context{}
	d.each(v, path, checkContextName, func(name string, _, v *yaml.Node, path string) {
		c := &Context{Name: name}
		d.variables(v, path, &c.Env, &c.Secrets)
		out[name] = c
	})
	return out
}

// variables decodes the env and secrets of a context or an environment.
func (d *decoder) variables(v *yaml.Node, path string, env *map[string]string, secrets *map[string]Secret, more ...fields) {
	*env, *secrets = map[string]string{}, map[string]Secret{}
	envKeys := map[string]bool{}
	fs := fields{
		"env": func(_, v *yaml.Node, path string) {
			d.each(v, path, checkEnvName, func(name string, _, v *yaml.Node, path string) {
				// A value is taken as written: PORT: 8080 is "8080",
				// VERSION: 1.10 is "1.10", and nothing is "".
				n, s, ok := d.scalar(v, path)
				if n == nil || (!ok && !isNull(n)) {
					return
				}
				(*env)[name] = s
				envKeys[name] = true
			})
		},
		"secrets": func(_, v *yaml.Node, path string) {
			d.each(v, path, checkEnvName, func(name string, k, v *yaml.Node, path string) {
				var s Secret
				d.req((*string)(&s), nil)(k, v, path)
				if s != "" {
					(*secrets)[name] = s
				}
				if envKeys[name] {
					d.fail(k, path, "also in env; a variable is either plain or secret")
				}
			})
		},
	}
	for _, m := range more {
		for k, f := range m {
			fs[k] = f
		}
	}
	d.object(v, path, fs)
}

func (d *decoder) users(v *yaml.Node, path string) map[string]string {
	out := map[string]string{}
	d.each(v, path, checkLogin, func(login string, k, v *yaml.Node, path string) {
		lower := strings.ToLower(login)
		if _, dup := out[lower]; dup {
			d.fail(k, path, "mapped twice (GitHub logins ignore case)")
			return
		}
		var id string
		d.req(&id, checkSlackUser)(k, v, path)
		out[lower] = id
	})
	return out
}

// auth decodes who may sign in to the dashboard.
func (d *decoder) auth(v *yaml.Node, path string, a *Auth) {
	keys, ok := d.object(v, path, fields{
		"users": func(_, v *yaml.Node, path string) {
			a.Users = map[string]DashboardUser{}
			d.each(v, path, checkDashboardUser, func(name string, _, v *yaml.Node, path string) {
				var u DashboardUser
				keys, ok := d.object(v, path, fields{
					"password_hash": d.req((*string)(&u.PasswordHash), checkBcrypt),
					"chat_id":       d.str(&u.ChatID, checkSlackUser),
				})
				if ok && keys["password_hash"] == nil {
					d.fail(v, path, "missing password_hash (a bcrypt hash: htpasswd -nBC 10 %s)", name)
				}
				a.Users[name] = u
			})
		},
		"trusted_header": d.str(&a.TrustedHeader, checkHeaderName),
		"trusted_proxies": func(_, v *yaml.Node, path string) {
			items, _ := d.list(v, path)
			for i, it := range items {
				ipath := fmt.Sprintf("%s[%d]", path, i)
				n, s, ok := d.text(it, ipath, true, nil)
				if !ok {
					continue
				}
				if p, err := netip.ParsePrefix(s); err == nil {
					a.TrustedProxies = append(a.TrustedProxies, p.Masked())
				} else if ip, err := netip.ParseAddr(s); err == nil {
					a.TrustedProxies = append(a.TrustedProxies, netip.PrefixFrom(ip, ip.BitLen()))
				} else {
					d.fail(n, ipath, "want an IP address or a CIDR prefix (10.0.0.0/8), got %q", s)
				}
			}
		},
		"header_users": func(_, v *yaml.Node, path string) {
			a.HeaderUsers = map[string]string{}
			d.each(v, path, checkNotEmpty, func(name string, k, v *yaml.Node, path string) {
				var id string
				d.req(&id, checkSlackUser)(k, v, path)
				a.HeaderUsers[name] = id
			})
		},
	})
	if !ok {
		return
	}
	switch {
	case keys["trusted_header"] != nil && keys["trusted_proxies"] == nil:
		d.fail(keys["trusted_header"], path, "trusted_header needs trusted_proxies: the addresses of the proxy that sets it, so that nobody else can claim a name")
	case keys["trusted_header"] == nil && keys["trusted_proxies"] != nil:
		d.fail(keys["trusted_proxies"], path, "trusted_proxies without trusted_header: name the header the proxy sets")
	case keys["trusted_header"] == nil && keys["header_users"] != nil:
		d.fail(keys["header_users"], path, "header_users without trusted_header: name the header the proxy sets")
	}
}

// logLevel decodes a log level.
func (d *decoder) logLevel(dst *slog.Level) field {
	return func(_, v *yaml.Node, path string) {
		n, s, ok := d.text(v, path, true, nil)
		if !ok {
			return
		}
		switch s {
		case "debug", "info", "warn", "error":
			dst.UnmarshalText([]byte(s))
		default:
			d.fail(n, path, "want debug, info, warn or error, got %q", s)
		}
	}
}

// apps decodes the apps, noting in noChannel those without a channel:
// whether they need one depends on the slack section, which may come
// later in the file.
func (d *decoder) apps(v *yaml.Node, path string, noChannel map[string]*yaml.Node) map[string]*App {
	out := map[string]*App{}
	repos := map[string]string{} // lowercased repo -> app
	d.each(v, path, checkAppName, func(name string, k, v *yaml.Node, path string) {
		a := &App{Name: name, LockAfterRollback: true, Environments: map[string]*Environment{}}
		out[name] = a
		fs, ok := d.object(v, path, fields{
			"repo": func(k, v *yaml.Node, path string) {
				d.req(&a.Repo, checkRepo)(k, v, path)
				if a.Repo == "" {
					return
				}
				lower := strings.ToLower(a.Repo)
				if other, dup := repos[lower]; dup {
					d.fail(d.resolve(v), path, "%s is already the repo of app %s; an app has a repo of its own", a.Repo, other)
					return
				}
				repos[lower] = name
			},
			"channel":             d.str(&a.Channel, checkChannel),
			"config_path":         d.str(&a.ConfigPath, checkConfigPath),
			"deploy_workflow":     d.str(&a.DeployWorkflow, nil),
			"cancel_superseded":   d.boolean(&a.CancelSuperseded),
			"lock_after_rollback": d.boolean(&a.LockAfterRollback),
			"environments": func(_, v *yaml.Node, path string) {
				d.each(v, path, checkContextName, func(env string, _, v *yaml.Node, path string) {
					a.Environments[env] = d.environment(env, v, path)
				})
			},
		})
		if ok && fs["repo"] == nil {
			d.fail(k, path, "missing repo (owner/name on GitHub)")
		}
		if ok && fs["channel"] == nil {
			noChannel[name] = k
		}
	})
	return out
}

func (d *decoder) environment(name string, v *yaml.Node, path string) *Environment {
	e := &Environment{Name: name}
	d.variables(v, path, &e.Env, &e.Secrets, fields{
		"deployers":     d.who(&e.Deployers),
		"approvers":     d.who(&e.Approvers),
		"self_approval": d.boolean(&e.SelfApproval),
	})
	return e
}

// who decodes deployers or approvers: a list of Slack user and user group
// IDs. A key with nothing after it is refused, not read as "anyone": a
// list of approvers commented out by mistake must not open production.
func (d *decoder) who(dst *[]string) field {
	return func(k, v *yaml.Node, path string) {
		if r := d.resolve(v); r != nil && isNull(r) {
			d.fail(k, path, "no one listed: list Slack user or user group IDs, or write [] to allow anyone")
			return
		}
		items, _ := d.list(v, path)
		ids := []string{}
		for i, it := range items {
			var id string
			d.req(&id, checkSlackUserOrGroup)(nil, it, fmt.Sprintf("%s[%d]", path, i))
			if id != "" {
				ids = append(ids, id)
			}
		}
		*dst = ids
	}
}

// each decodes a map whose keys are names (apps, contexts, variables...),
// checking each name with check.
func (d *decoder) each(v *yaml.Node, path string, check func(string) string, fn func(name string, k, v *yaml.Node, path string)) {
	ps, _ := d.entries(v, path)
	for _, p := range ps {
		if msg := check(p.key.Value); msg != "" {
			d.fail(p.key, path, "%s", msg)
			continue
		}
		fn(p.key.Value, p.key, p.val, join(path, p.key.Value))
	}
}

// setDefaults fills in what the file left out, once it is known valid.
func (c *Config) setDefaults(dir string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	if c.HTTP.Addr == "" {
		c.HTTP.Addr = DefaultAddr
	}
	if c.HTTP.PublicURL == "" {
		host, port, _ := net.SplitHostPort(c.HTTP.Addr)
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "localhost"
		}
		c.HTTP.PublicURL = "http://" + net.JoinHostPort(host, port)
	}
	c.HTTP.PublicURL = strings.TrimRight(c.HTTP.PublicURL, "/")
	if c.HTTP.LinkTTL == 0 {
		c.HTTP.LinkTTL = DefaultLinkTTL
	}
	if c.Orbs.Registry == "" {
		c.Orbs.Registry = DefaultOrbRegistry
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	c.DataDir = abs(c.DataDir)
	if c.Store.Path == "" {
		c.Store.Path = filepath.Join(c.DataDir, DefaultStoreFile)
	}
	c.Store.Path = abs(c.Store.Path)
	if c.Parallelism == 0 {
		c.Parallelism = DefaultParallelism
	}
	c.GitHub.APIURL = withSlash(c.GitHub.APIURL, DefaultGitHubAPIURL)
	if c.Slack != nil {
		c.Slack.APIURL = withSlash(c.Slack.APIURL, DefaultSlackAPIURL)
	}
	if c.Contexts == nil {
		c.Contexts = map[string]*Context{}
	}
	if c.Users == nil {
		c.Users = map[string]string{}
	}
	if c.Apps == nil {
		c.Apps = map[string]*App{}
	}
	c.byRepo = map[string]*App{}
	for _, a := range c.Apps {
		if a.ConfigPath == "" {
			a.ConfigPath = DefaultConfigPath
		}
		if a.DeployWorkflow == "" {
			a.DeployWorkflow = DefaultDeployWorkflow
		}
		c.byRepo[strings.ToLower(a.Repo)] = a
	}
}

func withSlash(u, def string) string {
	if u == "" {
		return def
	}
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	return u
}

// AppForRepo returns the app of a GitHub repository, "owner/name" in any
// case (GitHub's names ignore case), or nil.
func (c *Config) AppForRepo(repo string) *App {
	return c.byRepo[strings.ToLower(repo)]
}

// SlackUser returns the Slack user ID mapped to a GitHub login, in any
// case.
func (c *Config) SlackUser(login string) (string, bool) {
	id, ok := c.Users[strings.ToLower(login)]
	return id, ok
}

// EngineApps returns the apps as the engine sees them: each environment
// a context of its app, with who may deploy and approve there. The maps
// and lists are copies.
func (c *Config) EngineApps() map[string]*engine.App {
	out := make(map[string]*engine.App, len(c.Apps))
	for name, a := range c.Apps {
		ea := &engine.App{Name: name, Repo: a.Repo, LockAfterRollback: a.LockAfterRollback,
			Environments: make(map[string]*engine.Environment, len(a.Environments))}
		for en, e := range a.Environments {
			ea.Environments[en] = &engine.Environment{
				Name:              en,
				Context:           engineContext(en, e.Env, e.Secrets),
				Approvers:         slices.Clone(e.Approvers),
				AllowSelfApproval: e.SelfApproval,
				Deployers:         slices.Clone(e.Deployers),
			}
		}
		out[name] = ea
	}
	return out
}

// EngineContexts returns the server's contexts as the engine sees them.
func (c *Config) EngineContexts() map[string]*engine.Context {
	out := make(map[string]*engine.Context, len(c.Contexts))
	for name, ctx := range c.Contexts {
		ec := engineContext(name, ctx.Env, ctx.Secrets)
		out[name] = &ec
	}
	return out
}

func engineContext(name string, env map[string]string, secrets map[string]Secret) engine.Context {
	ec := engine.Context{Name: name, Env: make(map[string]string, len(env)), Secrets: make(map[string]string, len(secrets))}
	for k, v := range env {
		ec.Env[k] = v
	}
	for k, v := range secrets {
		ec.Secrets[k] = string(v)
	}
	return ec
}

// Secrets returns every secret value of the config, sorted and each once,
// for the log masker: GitHub's token, webhook secret and App key, Slack's
// tokens, and the secrets of every context and environment.
func (c *Config) Secrets() []string {
	var out []string
	add := func(s Secret) {
		if s != "" {
			out = append(out, string(s))
		}
	}
	add(c.GitHub.Token)
	add(c.GitHub.WebhookSecret)
	add(c.GitHub.PrivateKey)
	add(c.HTTP.LinkKey)
	add(c.Orbs.Token)
	for _, u := range c.HTTP.Auth.Users {
		add(u.PasswordHash)
	}
	if c.Slack != nil {
		add(c.Slack.AppToken)
		add(c.Slack.BotToken)
	}
	for _, ctx := range c.Contexts {
		for _, s := range ctx.Secrets {
			add(s)
		}
	}
	for _, a := range c.Apps {
		for _, e := range a.Environments {
			for _, s := range e.Secrets {
				add(s)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
