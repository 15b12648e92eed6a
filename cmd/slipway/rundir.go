package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// `slipway run` and the console work in a folder of their own under
// $TMPDIR/slipway-<uid>: run-0, run-1 and on, the first that no live run
// holds. The folder outlives its run, emptied of the run's data, so that
// the next run reuses its files and folders (the store's files, the
// executor's homes, step files and records) instead of making them again:
// on ext4 without a journal, which looks for a free inode that was not
// deleted in the last minutes, making a file or folder took 0.8 to 2.8 ms
// on the development VM, and a one-job run made 14. What a run leaves is
// empty folders and files, and its lock.

// runDirPrefix names the temporary folders of older slipway runs, and of
// this one's where the reusable folders cannot be used.
const runDirPrefix = "slipway-run-"

// runLock is the file in a run's folder that its process holds locked
// for as long as it lives: the kernel lets go of the lock when the
// process dies, however it dies.
const runLock = ".owner.lock"

// maxRunDirs bounds the reusable folders of a user: past that many runs
// at once, a run makes a temporary folder of its own.
const maxRunDirs = 64

// runDir takes a folder for this run under parent, its TMPDIR: a reusable
// one, emptied of what an earlier run that died left, or else a new
// temporary one. It first removes the temporary folders of earlier runs
// that died without removing theirs (SIGKILL, a crash). release empties
// or removes this run's folder.
func runDir(parent string) (dir string, release func(), err error) {
	sweepRunDirs(parent)
	if dir, release, err := reusableRunDir(filepath.Join(parent, "slipway-"+strconv.Itoa(os.Geteuid()))); err == nil {
		return dir, release, nil
	}
	dir, err = os.MkdirTemp(parent, runDirPrefix)
	if err != nil {
		return "", nil, err
	}
	f, err := lockRunDir(dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, func() {
		os.RemoveAll(dir)
		f.Close()
	}, nil
}

// reusableRunDir takes the first folder under parent, a folder of this
// user's alone, that no live run holds.
func reusableRunDir(parent string) (dir string, release func(), err error) {
	if err := os.Mkdir(parent, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", nil, err
	}
	// Another user's folder, or one others may write in, would let
	// them into this user's runs.
	fi, err := os.Lstat(parent)
	if err != nil {
		return "", nil, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm() != 0o700 {
		return "", nil, fmt.Errorf("%s is not a folder of this user's alone", parent)
	}
	for n := range maxRunDirs {
		dir := filepath.Join(parent, "run-"+strconv.Itoa(n))
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", nil, err
		}
		f, err := lockRunDir(dir)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			continue // a live run's
		}
		if err != nil {
			return "", nil, err
		}
		if err := emptyRunDir(dir); err != nil {
			f.Close()
			return "", nil, err
		}
		return dir, func() {
			emptyRunDir(dir)
			f.Close()
		}, nil
	}
	return "", nil, fmt.Errorf("%d runs at once", maxRunDirs)
}

// lockRunDir locks the run folder dir for this process, for as long as
// the returned file is open.
func lockRunDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, runLock), os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// emptyRunDir empties a reusable run folder of a run's data, keeping what
// the next run reuses: the store's files, emptied (store.OpenScratch
// starts from empty files too), the logs folder, emptied, and the
// attempts folders, which the local executor keeps emptied itself and
// sweeps of what a dead process left (see local.New).
func emptyRunDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch e.Name() {
		case runLock, "attempts":
		case "slipway.db", "slipway.db-wal", "slipway.db-shm":
			if e.Type().IsRegular() {
				errs = append(errs, os.Truncate(p, 0))
			} else {
				errs = append(errs, os.RemoveAll(p))
			}
		case "logs":
			errs = append(errs, emptyFolder(p, ""))
		case "data":
			// The console's executor keeps its attempts there.
			errs = append(errs, emptyFolder(p, "attempts"))
		default:
			errs = append(errs, os.RemoveAll(p))
		}
	}
	return errors.Join(errs...)
}

// emptyFolder removes what the folder dir holds but keep.
func emptyFolder(dir, keep string) error {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return os.RemoveAll(dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.Name() != keep || !e.IsDir() {
			errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// sweepRunDirs removes the temporary run folders under parent whose lock
// nobody holds: their process is gone. A folder without a lock file is
// one being made, or one of a slipway from before the lock; it goes once
// it is an hour old.
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
