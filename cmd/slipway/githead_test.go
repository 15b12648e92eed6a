package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// readHead reads what git rev-parse says, in every form a repository
// keeps it: a loose ref, packed refs, a detached HEAD, a linked
// worktree, from a subfolder; outside a repository it says so, and an
// unborn branch is left to git.
func TestReadHeadAgreesWithGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	for _, k := range []string{"GIT_DIR", "GIT_WORK_TREE", "GIT_CEILING_DIRECTORIES", "GIT_COMMON_DIR"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	root := t.TempDir()
	repo := filepath.Join(root, "repo")
	git := func(dir string, args ...string) string {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=T", "-c", "user.email=t@example.com"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	os.MkdirAll(filepath.Join(repo, "sub"), 0o755)
	git(repo, "init", "-q", "-b", "main")
	if _, _, ok := readHead(repo); ok {
		t.Error("an unborn branch was read, not left to git")
	}
	os.WriteFile(filepath.Join(repo, "sub", "f"), []byte("1"), 0o644)
	git(repo, "add", ".")
	git(repo, "commit", "-q", "-m", "one")
	git(repo, "checkout", "-q", "-b", "feature/x")
	git(repo, "commit", "-q", "--allow-empty", "-m", "two")
	check := func(name, dir string) {
		t.Helper()
		sha, branch, ok := readHead(dir)
		want := strings.Split(git(dir, "rev-parse", "HEAD", "--abbrev-ref", "HEAD"), "\n")
		if !ok || sha != want[0] || branch != want[1] {
			t.Errorf("%s: readHead = %q %q %v, git says %q", name, sha, branch, ok, want)
		}
	}
	check("loose ref", repo)
	check("from a subfolder", filepath.Join(repo, "sub"))
	git(repo, "pack-refs", "--all")
	check("packed refs", repo)
	git(repo, "checkout", "-q", "--detach", "main")
	check("detached", repo)
	wt := filepath.Join(root, "wt")
	git(repo, "worktree", "add", "-q", "-b", "other", wt, "feature/x")
	check("linked worktree", wt)
	outside := t.TempDir()
	if sha, branch, ok := readHead(outside); !ok || sha != "" || branch != "" {
		t.Errorf("outside a repository: %q %q %v", sha, branch, ok)
	}
	if sha, _ := gitHead(context.Background(), outside); sha != "" {
		t.Errorf("gitHead outside a repository: %q", sha)
	}
}
