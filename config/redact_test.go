package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// TestSecret checks that a Secret does not show however it is printed,
// logged or marshaled, alone or inside a value.
func TestSecret(t *testing.T) {
	s := Secret("hunter2-hunter2")
	holder := struct {
		Name  string
		Token Secret
		Map   map[string]Secret
	}{"x", s, map[string]Secret{"K": s}}
	var logs bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&logs, nil))
	l.Info("m", "token", s, "holder", holder)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("m", "token", s, "holder", holder)
	j, err := json.Marshal(holder)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(holder)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{
		fmt.Sprintf("%v %s %q %x %X %d %10s %#v %+v", s, s, s, s, s, s, s, s, s),
		fmt.Sprintf("%v %+v %#v", holder, holder, holder),
		fmt.Sprint(s, []Secret{s}),
		s.String(),
		logs.String(), string(j), string(y),
	} {
		if strings.Contains(out, string(s)) || !strings.Contains(out, redacted) {
			t.Errorf("shows the secret or no %s:\n%s", redacted, out)
		}
	}
	if Secret("").String() != "" {
		t.Error(`Secret("") is not ""`)
	}
}

// TestRedacted prints and logs the example config every way a careless
// caller might, and checks that no secret shows.
func TestRedacted(t *testing.T) {
	c := loadExample(t)
	secrets := c.Secrets()
	if len(secrets) != 10 {
		t.Fatalf("Secrets() = %q, want the example's 10", secrets)
	}
	env := c.Apps["backend"].Environments["production"]
	outputs := map[string]string{
		"String":        c.String(),
		"%v":            fmt.Sprintf("%v", c),
		"%+v":           fmt.Sprintf("%+v", c),
		"%s":            fmt.Sprintf("%s", c),
		"%#v":           fmt.Sprintf("%#v", c),
		"value %v":      fmt.Sprintf("%v", *c),
		"value %+v":     fmt.Sprintf("%+v", *c),
		"value %#v":     fmt.Sprintf("%#v", *c),
		"github %+v":    fmt.Sprintf("%+v", c.GitHub),
		"github %#v":    fmt.Sprintf("%#v", &c.GitHub),
		"slack %+v":     fmt.Sprintf("%+v", c.Slack),
		"slack %#v":     fmt.Sprintf("%#v", *c.Slack),
		"contexts %+v":  fmt.Sprintf("%+v", c.Contexts["aws"]),
		"contexts %#v":  fmt.Sprintf("%#v", *c.Contexts["aws"]),
		"env %+v":       fmt.Sprintf("%+v", env),
		"secret verbs":  fmt.Sprintf("%s %q %x %X %d %10s %#v", c.GitHub.Token, c.GitHub.Token, c.GitHub.Token, c.GitHub.Token, c.GitHub.Token, c.GitHub.Token, c.GitHub.Token),
		"secrets slice": fmt.Sprint([]Secret{c.Slack.AppToken, c.Slack.BotToken}),
	}
	var text, js bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&text, nil), slog.NewJSONHandler(&js, nil)} {
		l := slog.New(h)
		l.Info("loaded", "config", c)
		l.Info("github", "github", c.GitHub, "token", c.GitHub.Token)
		l.Info("env", "env", env, "secrets", env.Secrets)
	}
	outputs["slog text"] = text.String()
	outputs["slog json"] = js.String()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs["json"] = string(b)
	y, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs["yaml"] = string(y)

	for name, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s shows secret %q:\n%s", name, s, out)
			}
		}
		if !strings.Contains(out, redacted) {
			t.Errorf("%s shows no %s:\n%s", name, redacted, out)
		}
	}
	// What is not secret shows.
	for _, want := range []string{"http.addr=:8080", "github.token=[redacted]", "contexts.aws.env.AWS_REGION=us-east-1",
		"apps.backend.environments.production.secrets.DB_PASSWORD=[redacted]", `approvers="[U0RELEASE S0SRE]"`} {
		if !strings.Contains(c.String(), want) {
			t.Errorf("String() has no %s:\n%s", want, c.String())
		}
	}
	if !strings.Contains(text.String(), "config.github.webhook_secret=[redacted]") {
		t.Errorf("slog text:\n%s", text.String())
	}
}

// TestSecretsComplete checks that Secrets lists every Secret the config
// holds, found by walking it, so that a secret key added later cannot be
// forgotten by the masker.
func TestSecretsComplete(t *testing.T) {
	dir := t.TempDir()
	key := writeKey(t, dir)
	app := `data_dir: /d
github:
  app_id: 1
  private_key_path: app.pem
  installation_id: 2
  webhook_secret: hook-secret
slack: {app_token: xapp-token, bot_token: xoxb-token}
contexts:
  a: {secrets: {X: context-secret, Y: shared-secret}}
apps:
  web:
    repo: acme/web
    channel: C0WEB
    environments:
      prod: {secrets: {Z: env-secret, W: shared-secret}}
`
	c, err := Parse("c.yml", []byte(app), nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{key, "context-secret", "env-secret", "hook-secret", "shared-secret", "xapp-token", "xoxb-token"}
	for _, c := range []*Config{c, loadExample(t)} {
		walked := walkSecrets(reflect.ValueOf(c))
		slices.Sort(walked)
		walked = slices.Compact(walked)
		if diff := cmp.Diff(walked, c.Secrets()); diff != "" {
			t.Errorf("Secrets() differs from the secrets the config holds (-held +listed):\n%s", diff)
		}
	}
	if diff := cmp.Diff(want, c.Secrets()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// walkSecrets returns every non-empty Secret reachable from v.
func walkSecrets(v reflect.Value) []string {
	if v.Type() == reflect.TypeFor[Secret]() {
		if v.String() == "" {
			return nil
		}
		return []string{v.String()}
	}
	var out []string
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			out = walkSecrets(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			out = append(out, walkSecrets(v.Field(i))...)
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			out = append(out, walkSecrets(it.Value())...)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			out = append(out, walkSecrets(v.Index(i))...)
		}
	}
	return out
}
