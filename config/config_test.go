package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

var update = flag.Bool("update", false, "rewrite golden files")

// exampleEnv are the variables testdata/server/slipway.yml references.
var exampleEnv = map[string]string{
	"GITHUB_TOKEN":          "github_pat_11EXAMPLE",
	"GITHUB_WEBHOOK_SECRET": "webhook-secret-example",
	"SLACK_APP_TOKEN":       "xapp-1-A0EXAMPLE",
	"SLACK_BOT_TOKEN":       "xoxb-0000-EXAMPLE",
	"AWS_ACCESS_KEY_ID":     "AKIAEXAMPLE",
	"AWS_SECRET_ACCESS_KEY": "aws-secret-example",
	"PROD_DB_PASSWORD":      "db-password-example",
	"SLIPWAY_LINK_KEY":      "0123456789abcdef0123456789abcdef-link-key",
	"CIRCLECI_TOKEN":        "circleci-token-example",
}

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// minimal is the least a valid config holds.
const minimal = "data_dir: /data\ngithub:\n  token: t0ken\n  webhook_secret: s3cret\n"

func parse(t *testing.T, src string, env map[string]string) (*Config, error) {
	t.Helper()
	return Parse("c.yml", []byte(src), lookup(env), "/etc/slipway")
}

func mustParse(t *testing.T, src string, env map[string]string) *Config {
	t.Helper()
	c, err := parse(t, src, env)
	if err != nil {
		t.Fatalf("parse:\n%v", err)
	}
	return c
}

func loadExample(t *testing.T) *Config {
	t.Helper()
	src, err := os.ReadFile("../testdata/server/slipway.yml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("slipway.yml", src, lookup(exampleEnv), "/etc/slipway")
	if err != nil {
		t.Fatalf("the example does not validate:\n%v", err)
	}
	return c
}

// TestExample checks that the documented example validates, and pins
// down what it reads, the engine's view of it included.
func TestExample(t *testing.T) {
	c := loadExample(t)
	got := struct {
		Config         *Config
		Secrets        []string
		EngineApps     map[string]*engine.App
		EngineContexts map[string]*engine.Context
	}{c, c.Secrets(), c.EngineApps(), c.EngineContexts()}
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	path := "../testdata/server/slipway.golden.json"
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./config -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(b)); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}

// TestExampleEveryKey checks that the example shows every key the
// decoder knows, so that a key added to the code is documented there.
func TestExampleEveryKey(t *testing.T) {
	src, err := os.ReadFile("../testdata/server/slipway.yml")
	if err != nil {
		t.Fatal(err)
	}
	// The app keys are commented out: they exclude token.
	text := string(src)
	for _, key := range []string{
		"http:", "addr:", "public_url:", "store:", "path:", "data_dir:", "executor:", "parallelism:", "shutdown_grace:",
		"github:", "token:", "app_id:", "private_key_path:", "installation_id:", "webhook_secret:", "api_url:",
		"slack:", "app_token:", "bot_token:", "contexts:", "env:", "secrets:", "users:", "apps:", "repo:", "channel:",
		"config_path:", "deploy_workflow:", "cancel_superseded:", "lock_after_rollback:", "environments:",
		"deployers:", "approvers:", "self_approval:", "link_key:", "link_ttl:", "auth:", "password_hash:",
		"chat_id:", "trusted_header:", "trusted_proxies:", "header_users:", "log:", "format:", "level:", "orbs:", "registry:", "offline:", "local:", "user:", "users:", "allow_root:", "max_processes:",
		"limits:", "max_jobs:", "max_steps:", "max_requires:", "max_bytes:",
	} {
		if !strings.Contains(text, key) {
			t.Errorf("the example has no %s", key)
		}
	}
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, minimal+"apps:\n  web:\n    repo: acme/web\n    environments:\n      prod: {}\n", nil)
	want := &Config{
		HTTP:          HTTP{Addr: ":8080", PublicURL: "http://localhost:8080", LinkTTL: 720 * time.Hour},
		Log:           Log{Format: "text"},
		Orbs:          Orbs{Registry: "https://circleci.com/graphql-unstable"},
		Store:         Store{Path: "/data/slipway.db"},
		DataDir:       "/data",
		Parallelism:   4,
		ShutdownGrace: 30 * time.Second,
		GitHub:        GitHub{Token: "t0ken", WebhookSecret: "s3cret", APIURL: "https://api.github.com/"},
		Contexts:      map[string]*Context{},
		Users:         map[string]string{},
		Apps: map[string]*App{"web": {
			Name: "web", Repo: "acme/web", ConfigPath: ".circleci/config.yml", DeployWorkflow: "deploy",
			LockAfterRollback: true,
			Environments: map[string]*Environment{"prod": {
				Name: "prod", Env: map[string]string{}, Secrets: map[string]Secret{},
			}},
		}},
	}
	if diff := cmp.Diff(want, c, cmpopts.IgnoreUnexported(Config{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDerivedDefaults(t *testing.T) {
	tests := []struct {
		name, src string
		check     func(*Config) (got, want string)
	}{
		{"public_url from a host", "http: {addr: \"10.0.0.5:9000\"}\n",
			func(c *Config) (string, string) { return c.HTTP.PublicURL, "http://10.0.0.5:9000" }},
		{"public_url from 0.0.0.0", "http: {addr: \"0.0.0.0:9000\"}\n",
			func(c *Config) (string, string) { return c.HTTP.PublicURL, "http://localhost:9000" }},
		{"public_url from IPv6", "http: {addr: \"[::1]:9000\"}\n",
			func(c *Config) (string, string) { return c.HTTP.PublicURL, "http://[::1]:9000" }},
		{"public_url loses its trailing slash", "http: {public_url: \"https://x.example/slipway/\"}\n",
			func(c *Config) (string, string) { return c.HTTP.PublicURL, "https://x.example/slipway" }},
		{"store.path relative to the config", "store: {path: db/s.db}\n",
			func(c *Config) (string, string) { return c.Store.Path, "/etc/slipway/db/s.db" }},
		{"api_url gains a slash", "github: {token: t, webhook_secret: s, api_url: \"https://ghe.example.com/api/v3\"}\n",
			func(c *Config) (string, string) { return c.GitHub.APIURL, "https://ghe.example.com/api/v3/" }},
		{"slack api_url default", "slack: {app_token: xapp-1, bot_token: xoxb-1}\n",
			func(c *Config) (string, string) { return c.Slack.APIURL, "https://slack.com/api/" }},
		{"slack api_url gains a slash", "slack: {app_token: xapp-1, bot_token: xoxb-1, api_url: \"http://127.0.0.1:4000/api\"}\n",
			func(c *Config) (string, string) { return c.Slack.APIURL, "http://127.0.0.1:4000/api/" }},
		{"shutdown_grace 0", "shutdown_grace: 0s\n",
			func(c *Config) (string, string) { return c.ShutdownGrace.String(), "0s" }},
		{"executor empty is auto", "executor: ${EXECUTOR:-}\n",
			func(c *Config) (string, string) { return c.Executor, "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src + minimal
			if strings.HasPrefix(tt.src, "github:") {
				src = tt.src + "data_dir: /data\n"
			}
			got, want := tt.check(mustParse(t, src, nil))
			if got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestNoSlack(t *testing.T) {
	for _, src := range []string{minimal, minimal + "slack:\n  # app_token: x\n"} {
		c := mustParse(t, src+"apps:\n  web: {repo: acme/web}\n", nil)
		if c.Slack != nil {
			t.Errorf("%q: Slack = %+v, want nil", src, c.Slack)
		}
	}
}

// TestErrors breaks each rule once and checks the whole error text.
func TestErrors(t *testing.T) {
	const gh = "github:\n  token: t0ken\n  webhook_secret: s3cret\n" // lines 1-3
	const head = "data_dir: /data\n" + gh                            // lines 1-4
	const app = head + "apps:\n  web:\n    repo: acme/web\n"         // lines 1-7
	const env = app + "    environments:\n      prod:\n"             // lines 1-9
	vars := map[string]string{"EMPTY": "", "MANY": "many", "CTX": "aws"}
	tests := []struct {
		name, src, want string
	}{
		// Top level.
		{"unknown top-level key", head + "parralelism: 4\n",
			`c.yml:5:1: unknown top-level key "parralelism" (did you mean "parallelism"?)`},
		{"unknown key without a near one", head + "frobnicate: 4\n",
			`c.yml:5:1: unknown top-level key "frobnicate"`},
		{"missing data_dir", gh,
			`c.yml:1:1: missing data_dir (where slipway keeps workspaces, caches and logs)`},
		{"empty data_dir", "data_dir: \"\"\n" + gh,
			`c.yml:1:11: data_dir: must not be empty`},
		{"missing github", "data_dir: /data\n",
			`c.yml:1:1: missing github (its webhook_secret, and a token or a GitHub App's keys)`},
		{"duplicate key", head + "data_dir: /other\n",
			`c.yml:5:1: key "data_dir" is written twice (first at line 1)`},
		{"section not a map", head + "http: :8080\n",
			`c.yml:5:7: http: want a map, got ":8080"`},

		// http.
		{"addr without port", head + "http:\n  addr: localhost\n",
			`c.yml:6:9: http.addr: "localhost" is not host:port (as in :8080 or 127.0.0.1:8080)`},
		{"addr bad port", head + "http:\n  addr: \":http\"\n",
			`c.yml:6:9: http.addr: ":http" is not host:port: bad port "http" (want 0 to 65535)`},
		{"addr port too large", head + "http:\n  addr: \":65536\"\n",
			`c.yml:6:9: http.addr: ":65536" is not host:port: bad port "65536" (want 0 to 65535)`},
		{"public_url relative", head + "http:\n  public_url: slipway.example.com\n",
			`c.yml:6:15: http.public_url: "slipway.example.com" is not an absolute http(s) URL`},
		{"public_url not http", head + "http:\n  public_url: ftp://x.example\n",
			`c.yml:6:15: http.public_url: "ftp://x.example" is not an absolute http(s) URL`},
		{"public_url with a query", head + "http:\n  public_url: https://x.example/?a=b\n",
			`c.yml:6:15: http.public_url: "https://x.example/?a=b": a base URL has no query or fragment`},
		{"link_key too short", head + "http:\n  link_key: abc\n",
			`c.yml:6:13: http.link_key: want at least 32 characters (openssl rand -hex 32), got 3`},
		{"link_ttl negative", head + "http:\n  link_ttl: -1h\n",
			`c.yml:6:13: http.link_ttl: want a duration of 0 or more, got -1h`},
		{"auth user without a hash", head + "http:\n  auth:\n    users:\n      alice: {chat_id: U0ALICE01}\n",
			`c.yml:8:14: http.auth.users.alice: missing password_hash (a bcrypt hash: htpasswd -nBC 10 alice)`},
		{"auth user's hash not bcrypt", head + "http:\n  auth:\n    users:\n      alice: {password_hash: hunter2}\n",
			`c.yml:8:30: http.auth.users.alice.password_hash: not a bcrypt hash ($2y$10$..., from htpasswd -nBC 10 NAME)`},
		{"auth user name with a colon", head + "http:\n  auth:\n    users:\n      \"a:b\": {password_hash: x}\n",
			`c.yml:8:7: http.auth.users: "a:b" is not a user name (no colon or space, 100 characters at most)`},
		{"auth user's chat_id", head + "http:\n  auth:\n    users:\n      alice: {password_hash: \"$2a$10$e7oVk70JpnXBUiqJUH2Ab.aDakj9UfPdgLrImDF8p1Yw5o/EpYwo6\", chat_id: alice}\n",
			`c.yml:8:103: http.auth.users.alice.chat_id: "alice" is not a Slack user ID: want U… or W… (a profile's "Copy member ID")`},
		{"trusted_header without proxies", head + "http:\n  auth:\n    trusted_header: X-Forwarded-User\n",
			`c.yml:7:5: http.auth: trusted_header needs trusted_proxies: the addresses of the proxy that sets it, so that nobody else can claim a name`},
		{"trusted_proxies bad", head + "http:\n  auth:\n    trusted_header: X-User\n    trusted_proxies: [10.0.0.0/33]\n",
			`c.yml:8:23: http.auth.trusted_proxies[0]: want an IP address or a CIDR prefix (10.0.0.0/8), got "10.0.0.0/33"`},
		{"header_users without trusted_header", head + "http:\n  auth:\n    header_users: {bob: U0BOB0001}\n",
			`c.yml:7:5: http.auth: header_users without trusted_header: name the header the proxy sets`},
		{"trusted_header not a header", head + "http:\n  auth:\n    trusted_header: \"X User\"\n    trusted_proxies: [127.0.0.1]\n",
			`c.yml:7:21: http.auth.trusted_header: "X User" is not a header name (such as X-Forwarded-User)`},
		{"local user and users", head + "local:\n  user: a\n  users: [b]\n",
			`c.yml:7:3: local: user and users are two ways to name who jobs run as; keep one`},
		{"local user with a space", head + "local:\n  users: [\"a b\"]\n",
			`c.yml:6:11: local.users[0]: "a b" is not a user name or uid[:gid]`},
		{"log format", head + "log:\n  format: xml\n",
			`c.yml:6:11: log.format: want text or json, got "xml"`},
		{"log level", head + "log:\n  level: verbose\n",
			`c.yml:6:10: log.level: want debug, info, warn or error, got "verbose"`},
		{"store unknown key", head + "store:\n  file: x.db\n",
			`c.yml:6:3: store: unknown key "file"`},

		// Scalars.
		{"executor", head + "executor: kubernetes\n",
			`c.yml:5:11: executor: want docker or local (or nothing: docker when an engine answers), got "kubernetes"`},
		{"parallelism 0", head + "parallelism: 0\n",
			`c.yml:5:14: parallelism: want a number from 1 to 256, got 0`},
		{"parallelism too large", head + "parallelism: 1000\n",
			`c.yml:5:14: parallelism: want a number from 1 to 256, got 1000`},
		{"parallelism not a number", head + "parallelism: four\n",
			`c.yml:5:14: parallelism: want a whole number, got "four"`},
		{"parallelism a list", head + "parallelism: [4]\n",
			`c.yml:5:14: parallelism: want a single value, got a list`},
		{"parallelism empty", head + "parallelism:\n",
			`c.yml:5:13: parallelism: must not be empty`},
		{"shutdown_grace without unit", head + "shutdown_grace: 30\n",
			`c.yml:5:17: shutdown_grace: want a duration such as 30s or 2m, got "30"`},
		{"shutdown_grace negative", head + "shutdown_grace: -1s\n",
			`c.yml:5:17: shutdown_grace: want a duration of 0 or more, got -1s`},

		// github.
		{"github token and app", "data_dir: /data\ngithub:\n  token: t\n  app_id: 1\n  webhook_secret: s\n",
			`c.yml:2:1: github: token and app_id are two ways to sign in to GitHub; keep one`},
		{"github neither", "data_dir: /data\ngithub:\n  webhook_secret: s\n",
			`c.yml:2:1: github: missing token, or app_id, private_key_path and installation_id (a GitHub App's)`},
		{"github app incomplete", "data_dir: /data\ngithub:\n  app_id: 1\n  webhook_secret: s\n",
			`c.yml:2:1: github: a GitHub App needs app_id, private_key_path and installation_id; missing private_key_path, installation_id`},
		{"github app_id not a number", "data_dir: /data\ngithub:\n  app_id: abc\n  private_key_path: /nonexistent/k.pem\n  installation_id: 0\n  webhook_secret: s\n",
			"c.yml:3:11: github.app_id: want a whole number, got \"abc\"\n" +
				"c.yml:4:21: github.private_key_path: cannot read the key: open /nonexistent/k.pem: no such file or directory\n" +
				"c.yml:5:20: github.installation_id: want a number of 1 or more, got 0"},
		{"github no webhook_secret", "data_dir: /data\ngithub:\n  token: t\n",
			`c.yml:2:1: github: missing webhook_secret (the secret GitHub signs webhooks with)`},
		{"github empty webhook_secret", "data_dir: /data\ngithub:\n  token: t\n  webhook_secret: ${EMPTY}\n",
			`c.yml:4:19: github.webhook_secret: must not be empty`},
		{"github empty token", "data_dir: /data\ngithub:\n  token:\n  webhook_secret: s\n",
			`c.yml:3:9: github.token: must not be empty`},
		{"github api_url", "data_dir: /data\ngithub:\n  token: t\n  webhook_secret: s\n  api_url: ghe.example.com/api/v3\n",
			`c.yml:5:12: github.api_url: "ghe.example.com/api/v3" is not an absolute http(s) URL`},

		// slack.
		{"slack tokens missing", head + "slack:\n  api_url: https://slack.com/api/\n",
			"c.yml:5:1: slack: missing app_token\nc.yml:5:1: slack: missing bot_token"},
		{"slack tokens swapped", head + "slack:\n  app_token: xoxb-1\n  bot_token: xapp-1\n",
			"c.yml:6:14: slack.app_token: want a token starting xapp-\nc.yml:7:14: slack.bot_token: want a token starting xoxb-"},
		{"slack api_url", head + "slack:\n  app_token: xapp-1\n  bot_token: xoxb-1\n  api_url: /api/\n",
			`c.yml:8:12: slack.api_url: "/api/" is not an absolute http(s) URL`},
		{"slack without channel", head + "slack:\n  app_token: xapp-1\n  bot_token: xoxb-1\napps:\n  web:\n    repo: acme/web\n",
			`c.yml:9:3: apps.web: missing channel (the Slack channel ID of the app's threads)`},

		// contexts.
		{"context name", head + "contexts:\n  \"my context\": {}\n",
			`c.yml:6:3: contexts: "my context" is not a context name: want letters, digits, -, _ and ., starting with a letter or digit, at most 100`},
		{"context unknown key", head + "contexts:\n  aws:\n    secret: {A: b}\n",
			`c.yml:7:5: contexts.aws: unknown key "secret" (did you mean "secrets"?)`},
		{"context variable name", head + "contexts:\n  aws:\n    env: {AWS-REGION: x}\n",
			`c.yml:7:11: contexts.aws.env: "AWS-REGION" is not a variable name: want letters, digits and _, not starting with a digit`},
		{"context variable a map", head + "contexts:\n  aws:\n    env:\n      A: {b: c}\n",
			`c.yml:8:10: contexts.aws.env.A: want a single value, got a map`},
		{"context empty secret", head + "contexts:\n  aws:\n    secrets:\n      KEY: \"\"\n",
			`c.yml:8:12: contexts.aws.secrets.KEY: must not be empty`},
		{"context variable in env and secrets", head + "contexts:\n  aws:\n    env: {KEY: a}\n    secrets: {KEY: b}\n",
			`c.yml:8:15: contexts.aws.secrets.KEY: also in env; a variable is either plain or secret`},

		// users.
		{"user login", head + "users:\n  \"@octocat\": U0OCTOCAT\n",
			`c.yml:6:3: users: "@octocat" is not a GitHub login: want letters, digits, - and _`},
		{"user ID", head + "users:\n  octocat: octocat@example.com\n",
			`c.yml:6:12: users.octocat: "octocat@example.com" is not a Slack user ID: want U… or W… (a profile's "Copy member ID")`},
		{"user twice", head + "users:\n  octocat: U1\n  OctoCat: U2\n",
			"c.yml:6:12: users.octocat: \"U1\" is not a Slack user ID: want U… or W… (a profile's \"Copy member ID\")\n" +
				"c.yml:7:3: users.OctoCat: mapped twice (GitHub logins ignore case)"},

		// apps.
		{"app name", head + "apps:\n  Web_App: {repo: acme/web}\n",
			`c.yml:6:3: apps: "Web_App" is not an app name: want lowercase letters, digits and -, starting with a letter or digit, at most 63`},
		{"app without repo", head + "apps:\n  web:\n    channel: C0DEPLOYS\n",
			`c.yml:6:3: apps.web: missing repo (owner/name on GitHub)`},
		{"app repo not owner/name", head + "apps:\n  web:\n    repo: https://github.com/acme/web\n",
			`c.yml:7:11: apps.web.repo: "https://github.com/acme/web" is not a GitHub repository: want owner/name, as in acme/backend`},
		{"app repo twice", app + "  web2:\n    repo: ACME/Web\n",
			`c.yml:9:11: apps.web2.repo: ACME/Web is already the repo of app web; an app has a repo of its own`},
		{"app channel", app + "    channel: \"#deploys\"\n",
			`c.yml:8:14: apps.web.channel: "#deploys" is not a Slack channel ID: want C… or G… (a channel's details, at the bottom)`},
		{"app config_path absolute", app + "    config_path: /etc/config.yml\n",
			`c.yml:8:18: apps.web.config_path: "/etc/config.yml" is not a path inside the repository (relative, with /)`},
		{"app config_path outside", app + "    config_path: ../other/config.yml\n",
			`c.yml:8:18: apps.web.config_path: "../other/config.yml" is not a path inside the repository (relative, with /)`},
		{"app boolean", app + "    cancel_superseded: yes\n",
			`c.yml:8:24: apps.web.cancel_superseded: want true or false, got "yes"`},
		{"app unknown key", app + "    deploy-workflow: ship\n",
			`c.yml:8:5: apps.web: unknown key "deploy-workflow" (did you mean "deploy_workflow"?)`},
		{"environments not a map", app + "    environments: [staging, production]\n",
			`c.yml:8:19: apps.web.environments: want a map, got a list`},
		{"environment name", env + "      prod west: {}\n",
			`c.yml:10:7: apps.web.environments: "prod west" is not a context name: want letters, digits, -, _ and ., starting with a letter or digit, at most 100`},

		// Who may deploy and approve.
		{"approvers typo", env + "        aprovers: [U0RELEASE]\n",
			`c.yml:10:9: apps.web.environments.prod: unknown key "aprovers" (did you mean "approvers"?)`},
		{"approver a name", env + "        approvers: [U0RELEASE, alice]\n",
			`c.yml:10:32: apps.web.environments.prod.approvers[1]: "alice" is not a Slack user or user group ID: want U… or W… for a person (a profile's "Copy member ID") or S… for a user group`},
		{"approver a handle", env + "        approvers:\n          - \"@alice\"\n",
			`c.yml:11:13: apps.web.environments.prod.approvers[0]: "@alice" is not a Slack user or user group ID: want U… or W… for a person (a profile's "Copy member ID") or S… for a user group`},
		{"approver lowercase ID", env + "        approvers: [u0alice]\n",
			`c.yml:10:21: apps.web.environments.prod.approvers[0]: "u0alice" is not a Slack user or user group ID: want U… or W… for a person (a profile's "Copy member ID") or S… for a user group`},
		{"approver a channel", env + "        approvers: [C0DEPLOYS]\n",
			`c.yml:10:21: apps.web.environments.prod.approvers[0]: "C0DEPLOYS" is not a Slack user or user group ID: want U… or W… for a person (a profile's "Copy member ID") or S… for a user group`},
		{"approvers one string", env + "        approvers: U0RELEASE\n",
			`c.yml:10:20: apps.web.environments.prod.approvers: want a list, got "U0RELEASE"`},
		{"approvers left empty", env + "        approvers:\n        # - U0RELEASE\n",
			`c.yml:10:9: apps.web.environments.prod.approvers: no one listed: list Slack user or user group IDs, or write [] to allow anyone`},
		{"deployer a map", env + "        deployers: [{id: U0ALICE}]\n",
			`c.yml:10:21: apps.web.environments.prod.deployers[0]: want a single value, got a map`},
		{"self_approval", env + "        self_approval: no\n",
			`c.yml:10:24: apps.web.environments.prod.self_approval: want true or false, got "no"`},
		{"environment secret name", env + "        secrets: {db-password: x}\n",
			`c.yml:10:19: apps.web.environments.prod.secrets: "db-password" is not a variable name: want letters, digits and _, not starting with a digit`},

		// Environment variables.
		{"unset variable", "data_dir: /data\ngithub:\n  token: ${GITHUB_TOKEN}\n  webhook_secret: s\n",
			`c.yml:3:10: github.token: environment variable GITHUB_TOKEN is not set`},
		{"unset variables in one value", head + "http:\n  public_url: https://${HOST}:${PORT}/\n",
			"c.yml:6:15: http.public_url: environment variable HOST is not set\nc.yml:6:15: http.public_url: environment variable PORT is not set"},
		{"malformed reference", gh + "data_dir: ${DATA DIR}\n",
			`c.yml:4:11: data_dir: "${DATA DIR}" is not a variable reference: want ${NAME} or ${NAME:-default}, NAME of letters, digits and _ (write $${ for a literal ${)`},
		{"shell default without colon", gh + "data_dir: ${DATA-/data}\n",
			`c.yml:4:11: data_dir: "${DATA-/data}" is not a variable reference: want ${NAME} or ${NAME:-default}, NAME of letters, digits and _ (write $${ for a literal ${)`},
		{"unclosed reference", gh + "data_dir: /x/${DATA\n",
			`c.yml:4:11: data_dir: "${DATA" is not closed by } (write $${ for a literal ${)`},
		{"expanded value typed", head + "parallelism: ${MANY}\n",
			`c.yml:5:14: parallelism: want a whole number, got "many"`},
		{"keys are not expanded", head + "contexts:\n  ${CTX}: {}\n",
			`c.yml:6:3: contexts: "${CTX}" is not a context name: want letters, digits, -, _ and ., starting with a letter or digit, at most 100`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.src, vars)
			if err == nil {
				t.Fatalf("no error, want:\n%s", tt.want)
			}
			var list workflows.ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error %T, want a workflows.ErrorList", err)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestAllErrors checks that a config with many problems reports each, in
// file order, whatever order they are found in.
func TestAllErrors(t *testing.T) {
	src := `http:
  addr: nowhere
parallelism: 0
executor: podman
github:
  token: t
  webhook_secret: ${WEBHOOK_SECRET}
slack:
  app_token: xoxb-1
  bot_token: xoxb-2
apps:
  backend:
    repo: acme/backend
    chanel: C0DEPLOYS
    environments:
      production:
        approvers: ["@release"]
        aprovers: [U0RELEASE]
  frontend:
    repo: acme/backend
    channel: deploys
`
	want := `c.yml:1:1: missing data_dir (where slipway keeps workspaces, caches and logs)
c.yml:2:9: http.addr: "nowhere" is not host:port (as in :8080 or 127.0.0.1:8080)
c.yml:3:14: parallelism: want a number from 1 to 256, got 0
c.yml:4:11: executor: want docker or local (or nothing: docker when an engine answers), got "podman"
c.yml:7:19: github.webhook_secret: environment variable WEBHOOK_SECRET is not set
c.yml:9:14: slack.app_token: want a token starting xapp-
c.yml:12:3: apps.backend: missing channel (the Slack channel ID of the app's threads)
c.yml:14:5: apps.backend: unknown key "chanel" (did you mean "channel"?)
c.yml:17:21: apps.backend.environments.production.approvers[0]: "@release" is not a Slack user or user group ID: want U… or W… for a person (a profile's "Copy member ID") or S… for a user group
c.yml:18:9: apps.backend.environments.production: unknown key "aprovers" (did you mean "approvers"?)
c.yml:20:11: apps.frontend.repo: acme/backend is already the repo of app backend; an app has a repo of its own
c.yml:21:14: apps.frontend.channel: "deploys" is not a Slack channel ID: want C… or G… (a channel's details, at the bottom)`
	_, err := parse(t, src, nil)
	if err == nil {
		t.Fatal("no error")
	}
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestExpansion(t *testing.T) {
	env := map[string]string{"N": "8", "EMPTY": "", "HOST": "ci.example.com", "SECRET": "a${b}$c"}
	tests := []struct {
		name, in, want string
	}{
		{"plain", "abc", "abc"},
		{"variable", "${HOST}", "ci.example.com"},
		{"inside text", "https://${HOST}/x", "https://ci.example.com/x"},
		{"two", "${N}${N}", "88"},
		{"default unused", "${N:-4}", "8"},
		{"default of unset", "${NOPE:-4}", "4"},
		{"default of empty", "${EMPTY:-4}", "4"},
		{"empty default", "${NOPE:-}", ""},
		{"default with symbols", "${NOPE:-a:b-c/$d}", "a:b-c/$d"},
		{"empty, set", "x${EMPTY}y", "xy"},
		{"escaped", "$${HOST}", "${HOST}"},
		{"escaped then variable", "$${HOST}${HOST}", "${HOST}ci.example.com"},
		{"lone dollars", "$HOST $ $$ a$", "$HOST $ $$ a$"},
		{"values are not expanded twice", "${SECRET}", "a${b}$c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problems := expand(tt.in, lookup(env))
			if len(problems) > 0 {
				t.Fatalf("problems: %q", problems)
			}
			if got != tt.want {
				t.Errorf("expand(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestExpansionTyped checks that values are expanded before they are
// typed, in every kind of value.
func TestExpansionTyped(t *testing.T) {
	src := `data_dir: ${STATE:-/var/lib/slipway}/data
parallelism: ${N}
shutdown_grace: ${GRACE:-1m}
github:
  token: ${TOKEN}
  webhook_secret: "$${not a reference}"
apps:
  web:
    repo: acme/web
    cancel_superseded: ${CANCEL}
    environments:
      prod:
        approvers: [U0A, "${RELEASE_GROUP}"]
        env: {PORT: 8080, DEBUG: true, VERSION: 1.10, NOTHING: , FROM_ENV: "${N}"}
`
	env := map[string]string{"N": "12", "TOKEN": "ghp_x", "CANCEL": "true", "RELEASE_GROUP": "S0RELEASE"}
	c := mustParse(t, src, env)
	if c.DataDir != "/var/lib/slipway/data" || c.Parallelism != 12 || c.ShutdownGrace != time.Minute {
		t.Errorf("data_dir %q, parallelism %d, shutdown_grace %s", c.DataDir, c.Parallelism, c.ShutdownGrace)
	}
	if c.GitHub.Token != "ghp_x" || c.GitHub.WebhookSecret != "${not a reference}" {
		t.Errorf("token %q, webhook_secret %q", string(c.GitHub.Token), string(c.GitHub.WebhookSecret))
	}
	web := c.Apps["web"]
	if !web.CancelSuperseded {
		t.Error("cancel_superseded: ${CANCEL} = true read as false")
	}
	prod := web.Environments["prod"]
	if diff := cmp.Diff([]string{"U0A", "S0RELEASE"}, prod.Approvers); diff != "" {
		t.Errorf("approvers (-want +got):\n%s", diff)
	}
	wantEnv := map[string]string{"PORT": "8080", "DEBUG": "true", "VERSION": "1.10", "NOTHING": "", "FROM_ENV": "12"}
	if diff := cmp.Diff(wantEnv, prod.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	src := minimal + `x-envs: &envs
apps:
  web:
    repo: acme/web
    environments: &std
      staging: &staging
        deployers: &devs [U0ALICE, S0DEVS]
      production:
        <<: *staging
        approvers: *devs
        self_approval: true
  api:
    repo: acme/api
    environments: *std
`
	_, err := parse(t, src, nil)
	want := `c.yml:5:1: unknown top-level key "x-envs"`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	c := mustParse(t, strings.Replace(src, "x-envs: &envs\n", "", 1), nil)
	for _, app := range []string{"web", "api"} {
		prod := c.Apps[app].Environments["production"]
		want := &Environment{Name: "production", Deployers: []string{"U0ALICE", "S0DEVS"}, Approvers: []string{"U0ALICE", "S0DEVS"},
			SelfApproval: true, Env: map[string]string{}, Secrets: map[string]Secret{}}
		if diff := cmp.Diff(want, prod); diff != "" {
			t.Errorf("%s production (-want +got):\n%s", app, diff)
		}
	}
}

// laughs is a "billion laughs" YAML bomb: nine levels of ten aliases of
// the level below, a billion values once expanded, under keys a to i.
func laughs() string {
	src := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for c := 'b'; c <= 'i'; c++ {
		prev := "*" + string(c-1)
		src += fmt.Sprintf("%c: &%c [%s]\n", c, c, strings.Repeat(prev+", ", 9)+prev)
	}
	return src
}

// multiplied is a config whose aliases multiply the values slipway reads:
// 100 apps of the same 100 environments of the same 100 approvers.
func multiplied() string {
	var b strings.Builder
	b.WriteString(minimal + "apps:\n")
	b.WriteString("  a0:\n    repo: acme/a0\n    environments: &envs\n")
	b.WriteString("      e0: {approvers: &who [" + strings.Repeat("U0A, ", 99) + "U0A]}\n")
	for i := 1; i < 100; i++ {
		fmt.Fprintf(&b, "      e%d: {approvers: *who}\n", i)
	}
	for i := 1; i < 100; i++ {
		fmt.Fprintf(&b, "  a%d: {repo: acme/a%d, environments: *envs}\n", i, i)
	}
	return b.String()
}

// wide is a config whose aliases repeat a map slipway reads without
// descending into it: 100 apps of the same 100 environments, each with the
// same 10,000 unknown keys.
func wide() string {
	var b strings.Builder
	b.WriteString(minimal + "apps:\n  a0:\n    repo: acme/a0\n    environments: &envs\n      e0: &wide\n")
	for i := range 10000 {
		fmt.Fprintf(&b, "        k%d: x\n", i)
	}
	for i := 1; i < 100; i++ {
		fmt.Fprintf(&b, "      e%d: *wide\n", i)
	}
	for i := 1; i < 100; i++ {
		fmt.Fprintf(&b, "  a%d: {repo: acme/a%d, environments: *envs}\n", i, i)
	}
	return b.String()
}

// TestHostile feeds what is not a config: each is a clear error, quickly
// and in bounded memory, never a panic.
func TestHostile(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // the first line of the error
	}{
		{"empty", "", "c.yml: config is empty"},
		{"only a comment", "# nothing yet\n", "c.yml: config is empty"},
		{"null", "~\n", "c.yml: config is empty"},
		{"a list", "- http: {addr: \":8080\"}\n", `c.yml:1:1: a slipway.yml is a map of keys (http, github, apps...), got a list`},
		{"a scalar", "slipway\n", `c.yml:1:1: a slipway.yml is a map of keys (http, github, apps...), got "slipway"`},
		{"two documents", minimal + "---\n" + minimal, "c.yml:5:1: a second YAML document; slipway.yml is one document"},
		{"YAML syntax", "http:\n  addr: [\n", "c.yml:2:1: yaml: did not find expected node content"},
		{"tab indentation", "http:\n\taddr: x\n", "c.yml:2:1: yaml: found character that cannot start any token"},
		{"binary", "\x00\x01\x02\xff\xfe garbage \x7f", "c.yml: yaml: control characters are not allowed"},
		{"invalid UTF-8", "data_dir: \xff\xfe\n", "c.yml: yaml: invalid leading UTF-8 octet"},
		{"huge", "data_dir: " + strings.Repeat("x", maxSize) + "\n", "c.yml: config is too large (over 1048576 bytes)"},
		{"deep", strings.Repeat("[", 20000) + strings.Repeat("]", 20000), "c.yml: yaml: exceeded max depth of 10000"},
		{"billion laughs", laughs(), `c.yml:1:1: unknown top-level key "a"`},
		{"billion laughs as approvers", laughs() + "apps: {web: {repo: acme/web, environments: {p: {approvers: *i}}}}\n",
			`c.yml:1:1: unknown top-level key "a"`},
		{"aliases multiplied", multiplied(), "c.yml:9:23: config too large after expanding aliases (over 100000 values)"},
		{"aliases of a wide map", wide(), `c.yml:10:9: apps.a0.environments.e0: unknown key "k0"`},
		{"unknown alias", "data_dir: *nope\n", `c.yml: yaml: unknown anchor 'nope' referenced`},
		{"merge of a scalar", minimal + "http:\n  <<: x\n", `c.yml:6:7: http: merge key << wants a map or a list of maps, got "x"`},
		{"key a map", minimal + "? {a: b}\n: c\n", `c.yml:5:3: a key must be text, got a map`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := Parse("c.yml", []byte(tt.src), nil, "")
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("no error")
			}
			first, _, _ := strings.Cut(err.Error(), "\n")
			if first != tt.want {
				t.Errorf("got %q\nwant %q", first, tt.want)
			}
			if n := strings.Count(err.Error(), "\n") + 1; n > maxErrors+1 {
				t.Errorf("%d error lines, want at most %d", n, maxErrors+1)
			}
			// Generous bounds: a few times what the largest input needs.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 256<<20 {
				t.Errorf("allocated %d MiB", alloc>>20)
			}
			if elapsed > 10*time.Second {
				t.Errorf("took %s", elapsed)
			}
		})
	}
}
