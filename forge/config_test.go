package forge_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/slipway-ci/slipway/forge"
	"github.com/slipway-ci/slipway/forge/forgetest"
	"github.com/slipway-ci/slipway/workflows"
)

// withOrbs is the tree of a repository whose config uses the orbs it
// vendors (testdata/orbs, a packed orb and an unpacked src/ one).
func withOrbs(t *testing.T) forgetest.Commit {
	t.Helper()
	orbs := forgetest.ReadTree(t, "../testdata/orbs")
	c := forgetest.Commit{Message: "Vendor orbs", Files: map[string]string{
		".circleci/config.yml": readFile(t, "../testdata/configs/orbs.yml"),
	}}
	for p, data := range orbs.Files {
		c.Files[".circleci/orbs/"+p] = data
	}
	return c
}

func TestConfig(t *testing.T) {
	seed := forgetest.ReadTree(t, "../testdata/seed")
	// A config of 1.5 MB (a long comment): the contents API leaves its
	// content out, the blobs API has it.
	// GitHub's contents API leaves out the content of files over 1 MB
	// (10^6 bytes): they come through the blobs API, up to the 1 MiB the
	// config language reads of one file.
	big := forgetest.Commit{Files: map[string]string{".circleci/config.yml": "#" + strings.Repeat("x", 1_020_000) + "\n" +
		seed.Files[".circleci/config.yml"]}}
	huge := forgetest.Commit{Files: map[string]string{".circleci/config.yml": strings.Repeat("# padding\n", 1<<19)}}
	noOrb := forgetest.Commit{Files: map[string]string{".circleci/config.yml": readFile(t, "../testdata/configs/orbs.yml")}}
	badOrb := withOrbs(t)
	badOrb.Files[".circleci/orbs/circleci/aws-cli.yml"] = "commands:\n  install: [\n"
	many := forgetest.Commit{Files: map[string]string{".circleci/config.yml": seed.Files[".circleci/config.yml"]}}
	for i := range 501 {
		many.Files[fmt.Sprintf(".circleci/orbs/acme/f%03d.yml", i)] = "commands: {}\n"
	}
	other := forgetest.Commit{Files: map[string]string{"ci/pipeline.yml": seed.Files[".circleci/config.yml"]}}

	tests := []struct {
		name      string
		commit    forgetest.Commit
		path      string
		workflows []string // of the config loaded
		err       string   // the *workflows.Error's text, or a part of the ErrorList's
		list      bool
	}{
		{name: "present", commit: seed, workflows: []string{"build-test-deploy", "deploy"}},
		{name: "vendored orbs", commit: withOrbs(t), workflows: []string{"release"}},
		{name: "other path", commit: other, path: "ci/pipeline.yml", workflows: []string{"build-test-deploy", "deploy"}},
		{name: "large, through the blobs API", commit: big, workflows: []string{"build-test-deploy", "deploy"}},
		{name: "missing", commit: forgetest.Commit{Files: map[string]string{"README": "x"}},
			err: ".circleci/config.yml: no config at .circleci/config.yml in acme/backend@SHA7"},
		{name: "a folder", commit: forgetest.Commit{Files: map[string]string{".circleci/config.yml/x": "x"}},
			err: ".circleci/config.yml: .circleci/config.yml in acme/backend@SHA7: is a folder, not a file"},
		{name: "huge", commit: huge,
			err: ".circleci/config.yml: .circleci/config.yml in acme/backend@SHA7: is 5.0 MB; slipway reads files of up to 1.0 MB"},
		{name: "path outside", commit: seed, path: "../x.yml", err: "../x.yml: not a path inside the repository"},
		{name: "orb not vendored", commit: noOrb, list: true,
			err: "save its packed YAML as .circleci/orbs/circleci/aws-cli.yml"},
		{name: "too many vendored files", commit: many,
			err: ".circleci/orbs: more than 500 vendored orb files; slipway reads at most 500"},
		{name: "broken vendored orb", commit: badOrb, list: true, err: ".circleci/orbs/circleci/aws-cli.yml:2:1: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gh, c := setup(t)
			sha := gh.AddCommit(repo, "main", tt.commit)
			cfg, err := c.Config(repo, sha, tt.path, workflows.LoadOptions{}).LoadConfig(context.Background())
			if tt.err == "" {
				if err != nil {
					t.Fatalf("LoadConfig: %v", err)
				}
				if diff := cmp.Diff(tt.workflows, cfg.WorkflowNames()); diff != "" {
					t.Errorf("workflows (-want +got):\n%s", diff)
				}
				return
			}
			want := strings.ReplaceAll(tt.err, "SHA7", sha[:7])
			var one *workflows.Error
			var list workflows.ErrorList
			switch {
			case tt.list && errors.As(err, &list):
				if !strings.Contains(err.Error(), want) {
					t.Errorf("LoadConfig: %q, want it to contain %q", err, want)
				}
			case !tt.list && errors.As(err, &one):
				if !strings.HasPrefix(err.Error(), want) {
					t.Errorf("LoadConfig: %q, want %q", err, want)
				}
			default:
				t.Fatalf("LoadConfig: %T %v, want a config problem", err, err)
			}
			if strings.Contains(err.Error(), os.TempDir()) || strings.Contains(err.Error(), "/orbs/acme/") {
				t.Errorf("LoadConfig: %q names the cache folder", err)
			}
		})
	}
}

func TestConfigCachesOrbs(t *testing.T) {
	gh := forgetest.New(t)
	dir := t.TempDir()
	c := newClient(t, gh, forge.Options{DataDir: dir})
	sha := gh.AddCommit(repo, "main", withOrbs(t))
	load := func() {
		t.Helper()
		if _, err := c.Config(repo, sha, "", workflows.LoadOptions{}).LoadConfig(context.Background()); err != nil {
			t.Fatalf("LoadConfig: %v", err)
		}
	}
	load()
	orbCalls := len(gh.CallsTo("GET", "/repos/acme/backend/contents/.circleci/orbs*")) +
		len(gh.CallsTo("GET", "/repos/acme/backend/contents/.circleci/orbs/*/*")) +
		len(gh.CallsTo("GET", "/repos/acme/backend/contents/.circleci/orbs/*/*/*/*")) +
		len(gh.CallsTo("GET", "/repos/acme/backend/contents/.circleci/orbs/*/*/*/*/*"))
	if orbCalls == 0 {
		t.Fatal("no orb was fetched")
	}
	cached := filepath.Join(dir, "orbs", "acme", "backend", sha, ".circleci", "orbs", "circleci", "github-cli", "src", "@orb.yml")
	if _, err := os.Stat(cached); err != nil {
		t.Errorf("the unpacked orb is not cached: %v", err)
	}
	before := len(gh.Calls())
	load()
	// The second load reads the config again, and nothing else.
	var again []string
	for _, call := range gh.Calls()[before:] {
		again = append(again, call.Method+" "+call.Path)
	}
	if diff := cmp.Diff([]string{"GET /repos/acme/backend/contents/.circleci/config.yml"}, again); diff != "" {
		t.Errorf("requests of the second load (-want +got):\n%s", diff)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "orbs", "acme", "backend", ".*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary folders left: %v", leftovers)
	}
}

func TestConfigUnreachable(t *testing.T) {
	tests := []struct {
		name  string
		fault forgetest.Fault
	}{
		{"config 5xx", forgetest.Fault{Path: "/repos/acme/backend/contents/.circleci/config.yml", Status: 503}},
		{"orb listing 5xx", forgetest.Fault{Path: "/repos/acme/backend/contents/.circleci/orbs", Status: 500}},
		{"orb file 5xx", forgetest.Fault{Path: "/repos/acme/backend/contents/.circleci/orbs/circleci/aws-cli.yml", Status: 502}},
		{"rate limited", forgetest.Fault{Path: "/repos/acme/backend/contents/.circleci/config.yml", Status: 403,
			Header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "4102444800"},
			Body:   `{"message":"API rate limit exceeded"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gh := forgetest.New(t)
			dir := t.TempDir()
			c := newClient(t, gh, forge.Options{DataDir: dir})
			sha := gh.AddCommit(repo, "main", withOrbs(t))
			f := tt.fault
			f.Times = 1
			gh.Inject(f)
			_, err := c.Config(repo, sha, "", workflows.LoadOptions{}).LoadConfig(context.Background())
			var one *workflows.Error
			var list workflows.ErrorList
			if err == nil || errors.As(err, &one) || errors.As(err, &list) {
				t.Fatalf("LoadConfig: %v, want a plain error (try again)", err)
			}
			if !errors.Is(err, forge.ErrUnreachable) {
				t.Errorf("LoadConfig: %v, want ErrUnreachable", err)
			}
			if _, serr := os.Stat(filepath.Join(dir, "orbs", "acme", "backend", sha)); serr == nil {
				t.Errorf("a half-fetched orb folder was cached")
			}
			if tt.name == "rate limited" {
				return // go-github holds requests back until the reset
			}
			if _, err := c.Config(repo, sha, "", workflows.LoadOptions{}).LoadConfig(context.Background()); err != nil {
				t.Errorf("LoadConfig once GitHub is back: %v", err)
			}
		})
	}
}
