package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slipway-ci/slipway/workflows"
)

func TestLookupUser(t *testing.T) {
	tests := []struct {
		spec    string
		want    jobUser
		wantErr string
	}{
		{spec: "nobody", want: jobUser{uid: 65534, gid: 65534, groups: []int{65534}, name: "nobody"}},
		{spec: "65534", want: jobUser{uid: 65534, gid: 65534, groups: []int{65534}, name: "nobody"}},
		{spec: "65534:100", want: jobUser{uid: 65534, gid: 100, groups: []int{65534, 100}, name: "nobody"}},
		{spec: "54321:54321", want: jobUser{uid: 54321, gid: 54321, groups: []int{54321}}},
		{spec: "54321", wantErr: "give its group too"},
		{spec: "no-such-user-here", wantErr: "unknown user"},
		{spec: "nobody:100", wantErr: "give a name, or uid[:gid]"},
		{spec: "65534:users", wantErr: "must be a number"},
		{spec: "root", wantErr: "is root"},
		{spec: "0:0", wantErr: "is root"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			u, err := lookupUser(tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("lookupUser(%q) = %+v, %v; want an error with %q", tt.spec, u, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, *u, cmp.AllowUnexported(jobUser{})); d != "" {
				t.Errorf("lookupUser(%q) (-want +got):\n%s", tt.spec, d)
			}
		})
	}
}

// As root, the executor runs jobs as the user named, and refuses to run
// them as root unless told.
func TestRootNeedsAUser(t *testing.T) {
	requireRoot(t)
	if _, err := New(Options{Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "Options.User") {
		t.Errorf("New as root with no user: %v", err)
	}
	// t.TempDir is root's alone: nobody cannot reach attempts in it.
	if _, err := New(Options{Dir: filepath.Join(t.TempDir(), "attempts"), User: nobody}); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("New with a folder the user cannot reach: %v", err)
	}
}

// newUserExecutor returns an executor that runs jobs as nobody.
func newUserExecutor(t *testing.T) *Executor {
	t.Helper()
	requireRoot(t)
	return newExecutorWith(t, Options{Dir: filepath.Join(reachableTempDir(t), "attempts"), User: nobody})
}

func TestJobsRunAsTheUser(t *testing.T) {
	e := newUserExecutor(t)
	job := newJob(t, newShared(t),
		run(`echo "ids=$(id -u):$(id -g) groups=$(id -G) user=$USER home=$HOME"
touch ~/made && test -O ~/made && test -O . && test -w .
test "$(stat -c %a ~)" = 700`),
		workflows.Step{Run: &workflows.RunStep{Command: `test -O . && pwd`, WorkingDirectory: "deeper/down"}},
	)
	job.Spec.WorkingDirectory = "~/app/src"
	res, log := runJob(t, e, job)
	if res.Status != workflows.StatusSuccess {
		t.Fatalf("status %s; log:\n%s", res.Status, log)
	}
	home := filepath.Join(e.opts.Dir, job.ID)
	for _, want := range []string{"ids=65534:65534 groups=65534 user=nobody home=" + home + "\n", home + "/app/src/deeper/down\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// What the executor does in a job's folders on its behalf, it does with
// the job's rights: a restore through a symbolic link the job planted
// cannot write where the job could not, nor an artifact read what the
// job could not.
func TestExecutorWorksInJobFoldersAsTheUser(t *testing.T) {
	e := newUserExecutor(t)
	// shared is the jobs' user's; private is root's alone, with a secret.
	shared, private := reachableTempDir(t), t.TempDir()
	if err := os.Chown(shared, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(private, "secret"), []byte("root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sh := newShared(t)
	planted := filepath.Join(shared, "d", "planted")
	save := newJob(t, sh,
		run(`mkdir -p "$(dirname "$P")" && echo planted > "$P"`),
		workflows.Step{SaveCache: &workflows.SaveCacheStep{Key: "k", Paths: []string{planted}}},
	)
	save.Spec.Environment = map[string]string{"P": planted}
	if res, log := runJob(t, e, save); res.Status != workflows.StatusSuccess {
		t.Fatalf("saving: %s; log:\n%s", res.Status, log)
	}

	restore := newJob(t, sh,
		// The cached folder becomes a link to root's, relative: the
		// unpacking's os.Root refuses absolute links anyway.
		run(`rm -r "$D" && ln -s "$(realpath -s --relative-to="$(dirname "$D")" "$PRIVATE")" "$D" && ln -s "$PRIVATE" ~/project/link`),
		workflows.Step{RestoreCache: &workflows.RestoreCacheStep{Keys: []string{"k"}}},
		runWhen(`true`, workflows.WhenAlways),
		workflows.Step{StoreArtifacts: &workflows.StoreArtifactsStep{Path: "link/secret"}},
	)
	restore.Spec.Environment = map[string]string{"D": filepath.Dir(planted), "PRIVATE": private}
	res, log := runJob(t, e, restore)
	if d := cmp.Diff([]string{"success", "failed", "success", "failed"}, statuses(res)); d != "" {
		t.Errorf("step statuses (-want +got):\n%s\nlog:\n%s", d, log)
	}
	if !strings.Contains(log, "permission denied") {
		t.Errorf("the restore did not fail for want of permission:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(private, "planted")); err == nil {
		t.Error("the restore wrote through the planted link into root's folder")
	}
	if _, err := os.Stat(filepath.Join(restore.OutputDir, "artifacts", "link", "secret")); err == nil {
		t.Error("store_artifacts read root's secret through the planted link")
	}
}

// checkout writes the job's copy as the job's user: a hook planted in it
// runs as that user, not as root.
func TestCheckoutAsTheUser(t *testing.T) {
	e := newUserExecutor(t)
	repo, _ := gitRepo(t)
	for d := repo; d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	job := newJob(t, newShared(t),
		run(`mkdir -p .git/hooks && printf '#!/bin/sh\nid -u > ~/hook\n' > .git/hooks/post-checkout && chmod +x .git/hooks/post-checkout`),
		workflows.Step{Checkout: &workflows.CheckoutStep{}},
		run(`test "$(cat version)" = v2 && test -O version && git log --oneline | wc -l && echo "hook=$(cat ~/hook)"`),
	)
	job.Source.GitDir, job.Source.Revision = repo, "main"
	res, log := runJob(t, e, job)
	if res.Status != workflows.StatusSuccess || !strings.Contains(log, "\n2\nhook=65534\n") {
		t.Fatalf("status %s; log:\n%s", res.Status, log)
	}

	// A tarball is the engine's, which the job's user need not read.
	tarball := filepath.Join(t.TempDir(), "src.tar.gz")
	writeTarball(t, tarball, "owner-repo-abc123/", map[string]string{"version": "tarball\n"})
	job = newJob(t, newShared(t), workflows.Step{Checkout: &workflows.CheckoutStep{}}, run(`test "$(cat version)" = tarball && test -O version`))
	job.Source.Tarball = tarball
	if res, log := runJob(t, e, job); res.Status != workflows.StatusSuccess {
		t.Fatalf("tarball: status %s; log:\n%s", res.Status, log)
	}
}

// Jobs running at the same time cannot read each other's secrets from
// /proc/PID/environ, nor each other's homes, when each has a user of its
// own (Users); when they share one (User), they can: the limit that
// Options.User documents.
func TestConcurrentJobsCannotReadEachOther(t *testing.T) {
	requireRoot(t)
	const secret = "ctx-secret-of-job-a"
	for _, tt := range []struct {
		name  string
		opts  Options
		reads bool
	}{
		{"a user each", Options{Users: []string{nobody, "65533:65533"}}, false},
		{"one shared user", Options{User: nobody}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Dir = filepath.Join(reachableTempDir(t), "attempts")
			e := newExecutorWith(t, tt.opts)
			out := reachableTempDir(t)
			if err := os.Chmod(out, 0o777); err != nil {
				t.Fatal(err)
			}
			a := newJob(t, newShared(t), run(`echo "$HOME" > "$OUT/home.tmp" && mv "$OUT/home.tmp" "$OUT/home"
i=0; while [ ! -f "$OUT/done" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done`))
			a.Env["DEPLOY_TOKEN"] = secret // as a context gives it
			a.Spec.Environment = map[string]string{"OUT": out}
			done := make(chan string, 1)
			go func() {
				_, log := runJob(t, e, a)
				done <- log
			}()
			home := filepath.Join(out, "home")
			readPath(t, home)
			b := newJob(t, newShared(t), run(`n=$(for f in /proc/[0-9]*/environ; do tr '\0' '\n' 2>/dev/null < "$f"; done 2>/dev/null | grep -c "^$WANT" || true)
echo "found=$n"
ls "$(cat "$OUT/home")" >/dev/null 2>&1 && echo home-readable || echo home-closed`))
			b.Spec.Environment = map[string]string{"OUT": out, "WANT": "DEPLOY_TOKEN=" + secret}
			res, log := runJob(t, e, b)
			if err := os.WriteFile(filepath.Join(out, "done"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if res.Status != workflows.StatusSuccess {
				t.Fatalf("status %s; log:\n%s", res.Status, log)
			}
			// b's own environment holds the secret in WANT=, not at the
			// start of a line: a count above 0 is a's processes.
			leaked := !strings.Contains(log, "found=0\n")
			if leaked != tt.reads {
				t.Errorf("job b read job a's secret: %v, want %v; log:\n%s", leaked, tt.reads, log)
			}
			if got := strings.Contains(log, "home-readable"); got != tt.reads {
				t.Errorf("job b read job a's home: %v, want %v; log:\n%s", got, tt.reads, log)
			}
			<-done
		})
	}
}

// readPath waits for a file to appear.
func readPath(t *testing.T, path string) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %s", path)
}
