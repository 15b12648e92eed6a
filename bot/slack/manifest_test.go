package slack_test

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/slipway-ci/slipway/bot"
	"github.com/slipway-ci/slipway/bot/slack"
	"github.com/slipway-ci/slipway/bot/slack/slacktest"
)

// manifest is what the tests read of manifest.yml.
type manifest struct {
	Features struct {
		SlashCommands []struct {
			Command     string `yaml:"command"`
			Description string `yaml:"description"`
			UsageHint   string `yaml:"usage_hint"`
		} `yaml:"slash_commands"`
	} `yaml:"features"`
	OAuthConfig struct {
		Scopes struct {
			Bot []string `yaml:"bot"`
		} `yaml:"scopes"`
	} `yaml:"oauth_config"`
	Settings struct {
		Interactivity struct {
			IsEnabled bool `yaml:"is_enabled"`
		} `yaml:"interactivity"`
		SocketModeEnabled bool `yaml:"socket_mode_enabled"`
	} `yaml:"settings"`
}

// manifest.yml is what the code uses: Socket Mode and interactivity on,
// the commands the bot parses, and the scopes of the methods the adapter
// calls, no more.
func TestManifest(t *testing.T) {
	b, err := os.ReadFile("../../manifest.yml")
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if !m.Settings.SocketModeEnabled || !m.Settings.Interactivity.IsEnabled {
		t.Errorf("settings %+v: want Socket Mode and interactivity on", m.Settings)
	}

	// The commands: those bot.Usage shows, each of which bot.Parse takes.
	var commands []string
	for _, c := range m.Features.SlashCommands {
		commands = append(commands, c.Command)
		if c.Description == "" || c.UsageHint == "" {
			t.Errorf("%s has no description or usage hint", c.Command)
		}
		if _, err := bot.Parse(c.Command, "help"); err != nil && strings.Contains(err.Error(), "does not know the command") {
			t.Errorf("bot.Parse does not take %s", c.Command)
		}
	}
	var usage []string
	for _, sub := range regexp.MustCompile("`(/[a-z]+)").FindAllStringSubmatch(bot.Usage, -1) {
		if !slices.Contains(usage, sub[1]) {
			usage = append(usage, sub[1])
		}
	}
	slices.Sort(commands)
	slices.Sort(usage)
	if diff := cmp.Diff(usage, commands); diff != "" {
		t.Errorf("manifest's commands (-bot.Usage's +manifest's):\n%s", diff)
	}
	if _, err := bot.Parse("/nope", "help"); err == nil || !strings.Contains(err.Error(), "does not know the command") {
		t.Errorf("bot.Parse takes /nope: %v", err)
	}

	// The scopes: those of the adapter's methods, and commands.
	want := []string{"commands"}
	for _, ss := range slack.Scopes {
		for _, s := range ss {
			if !slices.Contains(want, s) {
				want = append(want, s)
			}
		}
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(m.OAuthConfig.Scopes.Bot))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("manifest's bot scopes (-the adapter's +manifest's):\n%s", diff)
	}
}

// called gathers the Web API methods the adapter called in every test,
// from each fake as its test ends.
var called = struct {
	sync.Mutex
	methods map[string]bool
}{methods: map[string]bool{}}

func record(fake *slacktest.Fake) {
	called.Lock()
	defer called.Unlock()
	for _, c := range fake.Calls("") {
		called.methods[c.Method] = true
	}
}

// TestMain checks, once every test ran, that the adapter called no
// method missing from its table of scopes (so from manifest.yml), and,
// when no test was left out, that it called every method of the table.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		code = checkCalled()
	}
	os.Exit(code)
}

func checkCalled() int {
	called.Lock()
	defer called.Unlock()
	var errs []string
	for method := range called.methods {
		switch method {
		case "apps.connections.open", "response_url": // the app token's; no scope
			continue
		}
		if _, ok := slack.Scopes[method]; !ok {
			errs = append(errs, fmt.Sprintf("the adapter calls %s, which its table of scopes lacks", method))
		}
	}
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() == "" && len(called.methods) > 0 {
		for _, method := range slices.Sorted(maps.Keys(slack.Scopes)) {
			if !called.methods[method] {
				errs = append(errs, fmt.Sprintf("the table of scopes has %s, which no test saw the adapter call", method))
			}
		}
	}
	for _, e := range errs {
		fmt.Fprintln(os.Stderr, "FAIL:", e)
	}
	if len(errs) > 0 {
		return 1
	}
	return 0
}
