package main

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// A run killed with SIGKILL cannot remove its folder; the next run does,
// and leaves alone the folders of runs still going.
func TestRunDirSweepsWhatDeadRunsLeft(t *testing.T) {
	parent := t.TempDir()
	mk := func(name string, lock bool, age time.Duration) string {
		d := filepath.Join(parent, name)
		if err := os.MkdirAll(filepath.Join(d, "attempts", "x"), 0o755); err != nil {
			t.Fatal(err)
		}
		if lock {
			if err := os.WriteFile(filepath.Join(d, runLock), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		old := time.Now().Add(-age)
		os.Chtimes(d, old, old)
		return d
	}
	dead := mk(runDirPrefix+"dead", true, 0)
	live := mk(runDirPrefix+"live", true, 0)
	f, err := os.Open(filepath.Join(live, runLock))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	young := mk(runDirPrefix+"young-without-lock", false, time.Minute)
	ancient := mk(runDirPrefix+"ancient-without-lock", false, 2*time.Hour)
	other := mk("not-slipway", true, 0)

	dir, release, err := runDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dead, ancient} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s was not swept", filepath.Base(d))
		}
	}
	for _, d := range []string{live, young, other, dir} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed: %v", filepath.Base(d), err)
		}
	}
	// This run's own folder is locked while it runs.
	second, release2, err := runDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil || second == dir {
		t.Errorf("a second run took or swept the first's folder")
	}
	release()
	release2()
}

// A run's folder is one of this user's reusable folders, emptied of what
// the run kept there when it ends (and of what a run that died left, when
// the next takes it), keeping what the next reuses, emptied.
func TestRunDirIsReusedEmptied(t *testing.T) {
	parent := t.TempDir()
	dir, release, err := runDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(parent, "slipway-"+strconv.Itoa(os.Geteuid()), "run-0"); dir != want {
		t.Fatalf("run folder %s, want %s", dir, want)
	}
	files := map[string]string{
		"slipway.db": "store", "slipway.db-wal": "wal", "slipway.db-shm": "shm", "logs/a1.log": "log",
		"data/workspaces/w/f": "workspace", "data/attempts/.steps/1-1": "kept", "attempts/.trash/1-1/project/f": "kept",
		"other/f": "junk",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	release()
	var left []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !d.IsDir() {
			b, _ := os.ReadFile(p)
			rel += "=" + string(b)
		}
		left = append(left, rel)
		return nil
	})
	want := []string{".owner.lock=", "attempts", "attempts/.trash", "attempts/.trash/1-1", "attempts/.trash/1-1/project",
		"attempts/.trash/1-1/project/f=kept", "data", "data/attempts", "data/attempts/.steps", "data/attempts/.steps/1-1=kept",
		"logs", "slipway.db=", "slipway.db-shm=", "slipway.db-wal="}
	if diff := cmp.Diff(want, left); diff != "" {
		t.Errorf("what a run leaves (-want +got):\n%s", diff)
	}
	again, release, err := runDir(parent)
	if err != nil || again != dir {
		t.Fatalf("the next run got %s, %v; want %s again", again, err, dir)
	}
	release()
}

// A reusable folder that is not this user's alone is not used: the run
// gets a temporary folder of its own, removed when it ends.
func TestRunDirOfAnotherIsNotUsed(t *testing.T) {
	parent := t.TempDir()
	if err := os.Mkdir(filepath.Join(parent, "slipway-"+strconv.Itoa(os.Geteuid())), 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(parent, "slipway-"+strconv.Itoa(os.Geteuid())), 0o777)
	dir, release, err := runDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(dir), runDirPrefix) {
		t.Fatalf("the run got %s in a folder others may write", dir)
	}
	release()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("release left %s", dir)
	}
}

// A `slipway run` after another makes no file or folder: it reuses the
// first's run folder, store files, and its executor's home, step file
// and record, emptied. Each run is a process of its own, as a user's.
// (One job: in a chain, whether a job finds its predecessor's home
// emptied yet is a race the background emptying may lose.)
func TestRunMakesNoFileTheSecondTime(t *testing.T) {
	tmp := t.TempDir()
	config := filepath.Join(t.TempDir(), "one.yml")
	if err := os.WriteFile(config, []byte(`version: 2.1
jobs:
  t:
    machine: true
    steps: [{run: "echo > ~/project/out; touch ~/.dot"}]
workflows:
  w:
    jobs: [t]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func() {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "XDG_CACHE_HOME="+filepath.Join(tmp, "cache"),
			"SLIPWAY_TEST_ARGS="+strings.Join([]string{"run", config, "--allow-machine", "--branch", "main", "--repo", tmp}, "\n"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("slipway run: %v\n%s", err, out)
		}
	}
	runs := filepath.Join(tmp, "slipway-"+strconv.Itoa(os.Geteuid()))
	// A file is its inode and when that was made (ext4 gives a new file
	// a recently freed inode when all others of its group are).
	type file struct {
		ino   uint64
		birth unix.StatxTimestamp
	}
	inodes := func() map[file]string {
		t.Helper()
		found := map[file]string{}
		err := filepath.WalkDir(runs, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			var st unix.Statx_t
			if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_INO|unix.STATX_BTIME, &st); err != nil {
				return err
			}
			found[file{st.Ino, st.Btime}] = p
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return found
	}
	run()
	first := inodes()
	run()
	for ino, p := range inodes() {
		if _, ok := first[ino]; !ok {
			t.Errorf("the second run made %s", p)
		}
	}
}
