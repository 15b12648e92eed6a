package local

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/slipway-ci/slipway/executors"
)

// folder is what the Executors of this process share in one attempts
// folder: the step files, the trash, the records of running attempts and
// which of them this process runs. Two Executors on one folder share
// them rather than collide.
type folder struct {
	dir     string
	scripts *scripts
	trash   *trash
	records *records // in <dir>/.running
	reaper  *reaper

	mu      sync.Mutex
	running map[string]bool // attempts of this process
}

var folders sync.Map // attempts folder -> *folder

// folderIn returns the shared parts of the attempts folder dir, made on
// first use. The step files and emptied homes that dead processes left
// in .steps and .free become this process's then, and their folders in
// .trash are removed in the background: names there start with the
// process ID that made them,
// and this process has made none yet, so its own ID on a name means an
// earlier process with the same ID (PID 1 of a container restarted on
// the same volume, say). What the attempts of dead processes left
// running is stopped then too (see sweep).
func folderIn(dir string, logger *slog.Logger) (*folder, error) {
	if f, ok := folders.Load(dir); ok {
		return f.(*folder), nil
	}
	// None is an attempt ID: those start with a letter or digit.
	steps, trashDir, freeDir, running := filepath.Join(dir, ".steps"), filepath.Join(dir, ".trash"), filepath.Join(dir, ".free"), filepath.Join(dir, ".running")
	var left [3][]string
	for i, d := range []string{steps, trashDir, freeDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			pid, _, _ := strings.Cut(e.Name(), "-")
			if n, err := strconv.Atoi(pid); err == nil && executors.ProcessGone(n) {
				left[i] = append(left[i], filepath.Join(d, e.Name()))
			}
		}
	}
	if err := os.MkdirAll(running, 0o700); err != nil {
		return nil, err
	}
	f := &folder{
		dir:     dir,
		scripts: &scripts{dir: steps},
		trash:   &trash{dir: trashDir, freeDir: freeDir},
		records: &records{dir: running},
		reaper:  &reaper{logger: logger},
		running: map[string]bool{},
	}
	if prev, loaded := folders.LoadOrStore(dir, f); loaded {
		return prev.(*folder), nil
	}
	// Step files and emptied homes are this process's now, or go: it
	// is about to write files of the same names. Folders in the trash
	// go in the background.
	for _, p := range left[0] {
		if !f.scripts.adopt(p) {
			_ = os.Remove(p)
		}
	}
	f.trash.add(false, left[1]...)
	f.trash.adopt(left[2])
	f.sweep(logger)
	return f, nil
}

// sweep stops what the attempts of processes that are gone left running,
// and removes their cgroups, folders and records.
func (f *folder) sweep(logger *slog.Logger) {
	entries, err := os.ReadDir(f.records.dir)
	if err != nil {
		logger.Warn("reading the records of running attempts", "err", err)
		return
	}
	for _, e := range entries {
		path := filepath.Join(f.records.dir, e.Name())
		r, err := readRecord(path)
		switch {
		case errors.Is(err, errFree):
			// A free record of a live process is its own to reuse; a
			// dead one's is this process's.
			pid, _, _ := strings.Cut(e.Name(), "-")
			if n, err := strconv.Atoi(pid); err == nil && executors.ProcessGone(n) && !f.records.adopt(path) {
				_ = os.Remove(path)
			}
			continue
		case err != nil:
			if !errors.Is(err, fs.ErrNotExist) {
				logger.Warn("left alone: an unreadable record", "record", path, "err", err)
			}
			continue
		case r.owner.alive():
			continue
		}
		// Its cgroups go in the background: its processes, killed,
		// may take init a while to reap.
		if err := f.remove(r, path, false); err != nil {
			logger.Warn("removing what a dead process left of an attempt", "attempt", r.attempt, "err", err)
			continue
		}
		logger.Info("stopped what a dead process left of an attempt", "attempt", r.attempt, "owner", r.owner.pid)
	}
}

// find returns the records of attemptID, with their paths.
func (f *folder) find(attemptID string) (map[string]*record, error) {
	entries, err := os.ReadDir(f.records.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	found := map[string]*record{}
	for _, e := range entries {
		path := filepath.Join(f.records.dir, e.Name())
		r, err := readRecord(path)
		switch {
		case errors.Is(err, errFree), errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, err
		case r.attempt == attemptID:
			found[path] = r
		}
	}
	return found, nil
}

// start marks attemptID as run by this process; false when it already is.
func (f *folder) start(attemptID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running[attemptID] {
		return false
	}
	f.running[attemptID] = true
	return true
}

func (f *folder) done(attemptID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.running, attemptID)
}

func (f *folder) isRunning(attemptID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running[attemptID]
}

// remove stops every process of an attempt that is not running (its
// owner is gone, or is this process and done with it), then removes its
// cgroups, folder and record, whose path is at ("" for an attempt
// without one: made by an older slipway, or never run). The cgroups and
// record go in the background unless wait.
func (f *folder) remove(r *record, at string, wait bool) error {
	var errs []error
	var dirs []string
	for _, d := range r.cgroup {
		if !isAttemptCgroup(d) {
			errs = append(errs, fmt.Errorf("record of %s: %s is not an attempt's cgroup; left alone", r.attempt, d))
			continue
		}
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		// Limit cgroups have neither file; their processes are in the
		// tracking cgroup too.
		if exists(filepath.Join(d, "cgroup.kill")) || exists(filepath.Join(d, "freezer.state")) {
			if err := killCgroup(d); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, g := range r.groups {
		// A group whose leader is no longer the recorded process is
		// left to the marker search below.
		if g.alive() {
			killGroup(g.pid)
		}
	}
	if len(r.cgroup) == 0 {
		killAttempt(r.attempt, nil)
	}
	if err := f.trash.discard(filepath.Join(f.dir, r.attempt), false); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// This process's own records go back to its pool when the reaper is
	// done with them.
	done := func() {}
	if at != "" && r.owner != self() {
		done = func() { _ = os.Remove(at) }
	}
	if !wait {
		f.reaper.add(dirs, done)
		return nil
	}
	if err := removeCgroups(dirs, 10*time.Second); err != nil {
		return err
	}
	done()
	return nil
}

// reaper removes finished attempts' cgroups, then their records, off the
// job's path: their killed processes take a moment to exit, and each
// rmdir costs as much as making the cgroup did. A goroutine lives while
// there is work.
type reaper struct {
	logger *slog.Logger

	mu      sync.Mutex
	queue   []reapJob
	running bool
	idle    sync.Cond // signalled when the queue empties, for tests
}

type reapJob struct {
	cgroups []string
	done    func() // once they are gone: the record goes
}

// add removes cgroups, then calls done.
func (r *reaper) add(cgroups []string, done func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queue = append(r.queue, reapJob{cgroups, done})
	if !r.running {
		r.running = true
		go r.work()
	}
}

func (r *reaper) work() {
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.running = false
			if r.idle.L != nil {
				r.idle.Broadcast()
			}
			r.mu.Unlock()
			return
		}
		job := r.queue[0]
		r.queue = r.queue[1:]
		r.mu.Unlock()
		if err := removeCgroups(job.cgroups, time.Minute); err != nil {
			// The record stays: the next process's sweep tries again.
			r.logger.Warn("removing a finished attempt's cgroups", "err", err)
			continue
		}
		job.done()
	}
}

// wait waits until the reaper has nothing left to do.
func (r *reaper) wait() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.idle.L == nil {
		r.idle.L = &r.mu
	}
	for r.running {
		r.idle.Wait()
	}
}

// trash removes the folders of finished attempts off the job's path: Run
// moves an attempt's folder into .trash, a rename, and a goroutine that
// lives while the trash is not empty deletes it. Deleting even the two
// empty folders of a `true` job took 0.2 ms on the development VM's disk
// (freeing blocks on a file system mounted with discard), a rename 0.03 ms.
//
// Some homes are emptied rather than deleted, moved to .free and given to
// later attempts (reuse): making a folder is what costs on ext4 without a
// journal, which looks for a free inode that was not deleted in the last
// minutes, and took 0.8 to 2.8 ms a folder on the development VM after a
// few hundred jobs. A kept home is one of this process's user's, emptied
// but for an empty project folder; those in .free that a process left
// when it ended are the next one's.
type trash struct {
	dir, freeDir string

	mu      sync.Mutex
	n       int
	queue   []trashed
	free    []string // emptied homes, in freeDir
	running bool
	idle    sync.Cond // signalled when the queue empties
}

// trashed is a folder in the trash, and whether it may be kept as a home.
type trashed struct {
	path string
	keep bool
}

// maxTrash bounds the folders waiting to be deleted; past it, a job's
// end deletes its folder itself, so that the disk keeps up with the jobs.
const maxTrash = 256

// maxFree bounds the emptied homes kept for later attempts.
const maxFree = 16

// discard removes path, an attempt's folder, now or soon; keep lets it
// be emptied and kept for reuse instead, when it is a home as reuse
// wants. Once discard returns, path no longer exists.
func (t *trash) discard(path string, keep bool) error {
	t.mu.Lock()
	t.n++
	dst := filepath.Join(t.dir, fmt.Sprintf("%d-%d", os.Getpid(), t.n))
	full := len(t.queue) >= maxTrash
	t.mu.Unlock()
	if full {
		return os.RemoveAll(path)
	}
	if err := os.Rename(path, dst); err != nil {
		// Nothing to remove, or no trash (someone removed it): what is
		// there goes now.
		return os.RemoveAll(path)
	}
	t.add(keep, dst)
	return nil
}

// reuse moves an emptied home to path, the home of a new attempt: an
// empty folder of this process's user's, mode 0755, holding an empty
// project folder. False when there is none: the caller makes its own.
func (t *trash) reuse(path string) bool {
	for {
		t.mu.Lock()
		if len(t.free) == 0 {
			t.mu.Unlock()
			return false
		}
		home := t.free[len(t.free)-1]
		t.free = t.free[:len(t.free)-1]
		t.mu.Unlock()
		// One an earlier process left may be another user's, if
		// processes of several share the folder.
		if ownFolder(home) && os.Rename(home, path) == nil {
			return true
		}
		t.add(false, home)
	}
}

// adopt takes the emptied homes that earlier processes left in .free, up
// to maxFree of them; the rest go.
func (t *trash) adopt(homes []string) {
	t.mu.Lock()
	n := min(len(homes), maxFree)
	t.free = append(t.free, homes[:n]...)
	t.mu.Unlock()
	t.add(false, homes[n:]...)
}

// add queues folders for deletion, or for keeping if keep, starting the
// goroutine that does it unless it runs.
func (t *trash) add(keep bool, paths ...string) {
	if len(paths) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range paths {
		t.queue = append(t.queue, trashed{p, keep})
	}
	if !t.running {
		t.running = true
		go t.empty()
	}
}

func (t *trash) empty() {
	for {
		t.mu.Lock()
		if len(t.queue) == 0 {
			t.running = false
			if t.idle.L != nil {
				t.idle.Broadcast()
			}
			t.mu.Unlock()
			return
		}
		f := t.queue[0]
		t.queue = t.queue[1:]
		keep := f.keep && len(t.free) < maxFree
		t.n++
		free := filepath.Join(t.freeDir, fmt.Sprintf("%d-%d", os.Getpid(), t.n))
		t.mu.Unlock()
		if keep && emptyHome(f.path) && os.Rename(f.path, free) == nil {
			t.mu.Lock()
			t.free = append(t.free, free)
			t.mu.Unlock()
			continue
		}
		_ = os.RemoveAll(f.path) // what fails here is retried by the next process's sweep
	}
}

// wait waits until the trash has nothing left to do.
func (t *trash) wait() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.idle.L == nil {
		t.idle.L = &t.mu
	}
	for t.running {
		t.idle.Wait()
	}
}

// emptyHome empties a finished attempt's home for another attempt: all
// it holds goes but its project folder, emptied too, and both get back
// the mode a new home has. False, with the home half emptied perhaps,
// when it is not one to reuse: not a folder of this process's user's, or
// one whose project is not such a folder.
func emptyHome(home string) bool {
	if !ownFolder(home) {
		return false
	}
	entries, err := os.ReadDir(home)
	if err != nil {
		return false
	}
	project := false
	for _, e := range entries {
		p := filepath.Join(home, e.Name())
		if e.Name() == "project" && e.IsDir() && ownFolder(p) {
			if !emptyFolder(p) {
				return false
			}
			project = true
			continue
		}
		if os.RemoveAll(p) != nil {
			return false
		}
	}
	return project && os.Chmod(home, 0o755) == nil && os.Chmod(filepath.Join(home, "project"), 0o755) == nil
}

// emptyFolder removes what dir holds.
func emptyFolder(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if os.RemoveAll(filepath.Join(dir, e.Name())) != nil {
			return false
		}
	}
	return true
}

// adoptedName is the name in dir that a file a dead process left at path
// takes on, n counting this process's names there: the file's own if it
// has this process's ID (an earlier process with the same ID made it),
// else the next free one.
func adoptedName(dir, path string, n *int) string {
	prefix := strconv.Itoa(os.Getpid()) + "-"
	if k, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(path), prefix)); err == nil && strings.HasPrefix(filepath.Base(path), prefix) {
		*n = max(*n, k)
		return path
	}
	for {
		*n++
		dst := filepath.Join(dir, prefix+strconv.Itoa(*n))
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			return dst
		}
	}
}

// ownFile says whether path is a regular file of this process's user's,
// not a link, and its size.
func ownFile(path string) (int64, bool) {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return fi.Size(), ok && int(st.Uid) == os.Geteuid() && st.Nlink == 1
}

// ownFolder says whether path is a folder, not a link to one, of this
// process's user's.
func ownFolder(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil || !fi.IsDir() {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}
