package main

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// runDirPrefix names the temporary folders of `slipway run`.
const runDirPrefix = "slipway-run-"

// runLock is the file in a run's folder that its process holds locked
// for as long as it lives: the kernel lets go of the lock when the
// process dies, however it dies.
const runLock = ".owner.lock"

// runDir makes a temporary folder under parent for this run, and first
// removes the folders of earlier runs that died without removing theirs
// (SIGKILL, a crash). release removes this run's folder.
func runDir(parent string) (dir string, release func(), err error) {
	sweepRunDirs(parent)
	dir, err = os.MkdirTemp(parent, runDirPrefix)
	if err != nil {
		return "", nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, runLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err == nil {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, func() {
		os.RemoveAll(dir)
		f.Close()
	}, nil
}

// sweepRunDirs removes the run folders under parent whose lock nobody
// holds: their process is gone. A folder without a lock file is one being
// made, or one of a slipway from before the lock; it goes once it is an
// hour old.
func sweepRunDirs(parent string) {
	dirs, _ := filepath.Glob(filepath.Join(parent, runDirPrefix+"*"))
	for _, d := range dirs {
		f, err := os.OpenFile(filepath.Join(d, runLock), os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			if fi, err := os.Stat(d); err == nil && fi.IsDir() && time.Since(fi.ModTime()) > time.Hour {
				os.RemoveAll(d)
			}
			continue
		}
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			os.RemoveAll(d)
		}
		f.Close()
	}
}
