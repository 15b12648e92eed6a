package forgetest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/slipway-ci/slipway/forge/forgetest"
)

// TestGitSHAs: the fake's commits have the SHAs git gives the same tree,
// author, date and message.
func TestGitSHAs(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed")
	}
	dir := t.TempDir()
	files := map[string]string{"README.md": "hello\n", "src/main.go": "package main\n", "src/a/b.txt": "b", "run.sh": "#!/bin/sh\n"}
	for p, data := range files {
		mode := os.FileMode(0o644)
		if p == "run.sh" {
			mode = 0o755
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(git, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Alice Example", "GIT_AUTHOR_EMAIL=alice@example.com",
			"GIT_COMMITTER_NAME=Alice Example", "GIT_COMMITTER_EMAIL=alice@example.com",
			"GIT_AUTHOR_DATE=2024-03-01T09:01:00Z", "GIT_COMMITTER_DATE=2024-03-01T09:01:00Z",
			"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_SYSTEM=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q", "-b", "main")
	run("add", ".")
	run("commit", "-q", "-m", "First commit")
	want := run("rev-parse", "HEAD")

	gh := forgetest.New(t)
	c := forgetest.ReadTree(t, dir)
	c.Message = "First commit"
	got := gh.AddCommit("acme/backend", "main", c)
	if got != want {
		t.Errorf("the fake's SHA %s, git's %s", got, want)
	}
}

func TestFaults(t *testing.T) {
	gh := forgetest.New(t)
	gh.AddCommit("acme/backend", "main", forgetest.Commit{Files: map[string]string{"README": "x"}})
	gh.Inject(forgetest.Fault{Method: "GET", Path: "/repos/acme/*", Times: 2, Status: 503, Header: map[string]string{"Retry-After": "7"}})
	get := func() (int, string) {
		req, _ := http.NewRequest("GET", gh.URL+"repos/acme/backend", nil)
		req.Header.Set("Authorization", "Bearer "+gh.Token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body map[string]any
		json.NewDecoder(res.Body).Decode(&body)
		return res.StatusCode, res.Header.Get("Retry-After")
	}
	var got [][2]any
	for range 3 {
		code, ra := get()
		got = append(got, [2]any{code, ra})
	}
	want := [][2]any{{503, "7"}, {503, "7"}, {200, ""}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
	if n := len(gh.CallsTo("GET", "/repos/acme/backend")); n != 3 {
		t.Errorf("%d calls recorded, want 3", n)
	}
}

func TestUnauthorized(t *testing.T) {
	gh := forgetest.New(t)
	gh.AddCommit("acme/backend", "main", forgetest.Commit{Files: map[string]string{"README": "x"}})
	for _, auth := range []string{"", "Bearer nope", "token nope"} {
		req, _ := http.NewRequest("GET", gh.URL+"repos/acme/backend", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 401 || !strings.Contains(string(body), "Bad credentials") {
			t.Errorf("%q: %d %s, want 401 Bad credentials", auth, res.StatusCode, body)
		}
	}
}
