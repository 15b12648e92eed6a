package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway/workflows"
)

// FuzzParse feeds arbitrary bytes to Parse: whatever the input, the result
// is a config or a list of positioned errors, never a panic or a hang.
// Seeds: the example, the hostile inputs of TestHostile, and the committed
// corpus under testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../testdata/server/*.yml")
	for _, file := range files {
		if src, err := os.ReadFile(file); err == nil {
			f.Add(src)
		}
	}
	f.Add([]byte(minimal))
	f.Add([]byte(laughs()))
	f.Add([]byte(minimal + "apps:\n  web:\n    repo: acme/web\n    environments:\n      prod: &p {approvers: [U0A], <<: {env: {A: ${X:-y}}}}\n      dev: *p\n"))
	f.Add([]byte("- a\n"))
	f.Add([]byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Parse("f.yml", src, lookup(exampleEnv), "/nonexistent")
		if err != nil {
			var list workflows.ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %T %v, want a workflows.ErrorList", err, err)
			}
			lines := countLines(src)
			for _, e := range list {
				if e.File != "f.yml" || e.Line < 0 || e.Line > lines || e.Msg == "" {
					t.Fatalf("bad error %q (input of %d lines)", e, lines)
				}
			}
			return
		}
		// A config that parses is whole: what serve relies on is there.
		if c.DataDir == "" || c.Store.Path == "" || c.HTTP.PublicURL == "" || c.GitHub.WebhookSecret == "" || c.Parallelism < 1 {
			t.Fatalf("config missing a required value: %v", c)
		}
		_ = c.String()
		_ = c.EngineApps()
		_ = c.Secrets()
	})
}

// countLines counts lines as YAML does: \n, \r\n, \r, NEL, LS and PS
// each end one.
func countLines(src []byte) int {
	n := 1
	for _, r := range strings.ReplaceAll(string(src), "\r\n", "\n") {
		switch r {
		case '\n', '\r', '\u0085', '\u2028', '\u2029':
			n++
		}
	}
	return n
}
