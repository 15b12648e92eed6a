package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// commitAgain makes another commit in a repository, returning its SHA.
func commitAgain(t *testing.T, dir, msg string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "CHANGES"), []byte(msg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"add", "."}, {"-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-q", "-m", msg}} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return gitOutput(context.Background(), dir, "rev-parse", "HEAD")
}

// A scripted console session on a repository holding the seed pipeline:
// a pushed commit's thread, an approval by someone other than the
// author, a /deploy of an older commit, a /rollback, the environment
// locked after it.
func TestConsoleSession(t *testing.T) {
	repo := seedRepo(t)
	first := gitOutput(context.Background(), repo, "rev-parse", "HEAD")
	second := commitAgain(t, repo, "Fix the login redirect")
	script := strings.Join([]string{
		"push",
		"approve 1", // the author may not
		"as bob",
		"approve 1",
		"/deploy app@" + first[:7] + " production",
		"as carol",
		"approve 2",
		"/rollback app production",
		"as bob",
		"approve 3",
		"/slipway history app production",
		"/deploy app production",
		"nonsense",
	}, "\n")
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := Main(ctx, []string{"console", "--repo", repo, "--executor", "local"}, strings.NewReader(script), &out, &errOut)
	text := out.String()
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut.String(), text)
	}
	for _, want := range []string{
		fmt.Sprintf("Pushed main (%s): pipeline 1.", second[:7]),
		"Fix the login redirect",
		"hold-production waits for approval",
		"[approval 1] type `approve 1` or `reject 1`",
		"You wrote this change, and production needs someone else's approval.",
		"Approved by bob.",
		fmt.Sprintf("Deployed `%s` to production: release #1", second[:7]),
		fmt.Sprintf("bob is deploying app `%s` to production: pipeline 2.", first[:7]),
		fmt.Sprintf("Deployed `%s` to production: release #2", first[:7]),
		fmt.Sprintf("rolling app back in production to release #1 (`%s`): pipeline 3", second[:7]),
		fmt.Sprintf("Rolled production back to `%s`: release #3", second[:7]),
		"(rollback)",
		"app/production is locked by carol",
		"locked after rollback",
		`slipway does not know "nonsense"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the session lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("session:\n%s\n%s", text, errOut.String())
	}
}
