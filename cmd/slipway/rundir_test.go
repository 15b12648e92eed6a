package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
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
	runDir(parent)
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("a second run swept the first's folder")
	}
	release()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("release left %s", dir)
	}
}
