package local

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slipway-ci/slipway/executors"
)

// Each attempt's processes live in a cgroup of their own where the host
// lets this process make one: a process cannot leave its cgroup (only
// root can move it, and jobs do not run as root where slipway does), so
// the attempt's end finds every process it started however it detached
// (setsid, a double fork, an environment emptied of SLIPWAY_ATTEMPT),
// and kills them all at once. The cgroup also carries the attempt's
// limits.
//
// Where the cgroups go:
//
//   - cgroup v2 (a unified hierarchy, alone or beside v1 ones): the
//     attempt's cgroup is made under this process's own, entered at the
//     clone (CLONE_INTO_CGROUP), and killed by writing cgroup.kill (Linux
//     5.14), which the kernel carries out against forks in flight.
//   - cgroup v1 only: the freezer hierarchy tracks. A process is started
//     from an OS thread moved into the attempt's freezer cgroup for the
//     fork (see startJoined), so that it is in from its first
//     instruction; a kill freezes the cgroup, SIGKILLs every member while
//     none can fork, and thaws it.
//
// Limits go where their controller is: in the v2 cgroup when the
// controller is enabled for this process's children there, else in a v1
// hierarchy of that controller (on a hybrid host: v2 tracks, v1 limits),
// joined the same way as the v1 freezer; but the v1 memory cgroup by PID
// right after the start, and then whatever the process forked meanwhile
// (see enterAll): an OOM kill in it could pick slipway's thread.
//
// Without either tracking hierarchy writable (not root, a container
// without its cgroup delegated, an old kernel), jobs fall back to process
// groups and the attempt's marker (see killAttempt), which a process that
// empties its environment and leaves its session escapes.
type cgroups struct {
	track hierarchy
	// limits maps a controller ("pids", "memory", "cpu") to the hierarchy
	// its limits are written in; a missing one is not available.
	limits map[string]hierarchy
	// seq numbers the cgroups this process makes.
	mu  sync.Mutex
	seq int
	// pool holds, where v2 tracks, the cgroups of finished attempts that
	// had no memory or CPU limit, for the next such attempt (see take).
	pool []*attemptCgroup
}

// maxPool bounds the cgroups kept for reuse; past it, a finished
// attempt's go.
const maxPool = 64

// hierarchy is this process's cgroup in one mounted hierarchy, where the
// attempts' cgroups are made.
type hierarchy struct {
	dir string
	v2  bool
}

// limitControllers are the controllers whose limits attempts get.
var limitControllers = []string{"pids", "memory", "cpu"}

var (
	hostCgroupsOnce sync.Once
	hostCgroups     *cgroups
	hostCgroupsWhy  string // why there are none, when there are none
)

// findCgroups returns where this process makes attempts' cgroups, or nil
// and the reason when it cannot; it looks once per process.
func findCgroups() (*cgroups, string) {
	hostCgroupsOnce.Do(func() {
		hostCgroups, hostCgroupsWhy = detectCgroups("/proc/self/cgroup", "/proc/self/mountinfo", false)
		if hostCgroups != nil {
			hostCgroups.sweep()
		}
	})
	return hostCgroups, hostCgroupsWhy
}

// sweep kills what is left in the cgroups that slipway processes now gone
// made beside this one's, found by their names (slipway-<pid>-<n>), and
// removes them in the background (a goroutine that ends once they are
// gone, or after a minute). Records name the cgroups of running
// attempts; kept ones (see pooled) no record names. One with this
// process's PID made before this process made any is an earlier
// process's.
func (c *cgroups) sweep() {
	c.mu.Lock()
	made := c.seq > 0
	c.mu.Unlock()
	gone := func(pid int) bool {
		if pid == os.Getpid() {
			return !made
		}
		return executors.ProcessGone(pid)
	}
	var dirs []string
	seen := map[string]bool{}
	for _, h := range append([]hierarchy{c.track}, slices.Collect(maps.Values(c.limits))...) {
		if seen[h.dir] {
			continue
		}
		seen[h.dir] = true
		entries, err := os.ReadDir(h.dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			rest, ok := strings.CutPrefix(e.Name(), "slipway-")
			pid, n, ok2 := strings.Cut(rest, "-")
			id, err := strconv.Atoi(pid)
			if !ok || !ok2 || !isNumber(n) || err != nil || !gone(id) {
				continue
			}
			dir := filepath.Join(h.dir, e.Name())
			if exists(filepath.Join(dir, "cgroup.kill")) || exists(filepath.Join(dir, "freezer.state")) {
				_ = killCgroup(dir)
			}
			dirs = append(dirs, dir)
		}
	}
	if len(dirs) > 0 {
		go removeCgroups(dirs, time.Minute)
	}
}

// detectCgroups reads this process's cgroups and the mounted hierarchies
// and tries each candidate by making (and removing) a cgroup in it.
// forceV1 ignores the v2 hierarchy, for tests of the freezer's way.
func detectCgroups(cgroupFile, mountinfo string, forceV1 bool) (*cgroups, string) {
	own, err := readOwnCgroups(cgroupFile)
	if err != nil {
		return nil, err.Error()
	}
	mounts, err := readCgroupMounts(mountinfo)
	if err != nil {
		return nil, err.Error()
	}
	dirOf := func(key string) (string, bool) {
		m, ok := mounts[key]
		if !ok {
			return "", false
		}
		p, ok := own[key]
		if !ok {
			return "", false
		}
		rel, err := filepath.Rel(m.root, p)
		if err != nil || !filepath.IsLocal(rel) && rel != "." {
			return "", false
		}
		return filepath.Join(m.dir, rel), true
	}
	c := &cgroups{limits: map[string]hierarchy{}}
	var why []string
	if dir, ok := dirOf(""); ok && !forceV1 {
		switch made, kill := probe(dir, "cgroup.kill"); {
		case !made:
			why = append(why, "cannot make a cgroup in "+dir)
		case !kill:
			why = append(why, "cgroup v2 has no cgroup.kill (Linux before 5.14)")
		default:
			c.track = hierarchy{dir: dir, v2: true}
			for _, ctl := range enableControllers(dir, limitControllers) {
				c.limits[ctl] = c.track
			}
		}
	}
	if c.track.dir == "" {
		if dir, ok := dirOf("freezer"); !ok {
			why = append(why, "no cgroup v1 freezer hierarchy")
		} else if made, _ := probe(dir, ""); !made {
			why = append(why, "cannot make a cgroup in "+dir)
		} else {
			c.track = hierarchy{dir: dir}
		}
	}
	if c.track.dir == "" {
		return nil, strings.Join(why, "; ")
	}
	for _, ctl := range limitControllers {
		if _, ok := c.limits[ctl]; ok {
			continue
		}
		if dir, ok := dirOf(ctl); ok {
			if made, _ := probe(dir, ""); !made {
				continue
			}
			c.limits[ctl] = hierarchy{dir: dir}
		}
	}
	return c, ""
}

// describe says where attempts' cgroups go, for the log.
func (c *cgroups) describe() []any {
	version := "v1 freezer"
	if c.track.v2 {
		version = "v2"
	}
	var limits []string
	for _, ctl := range limitControllers {
		if h, ok := c.limits[ctl]; ok {
			v := "v1"
			if h.v2 {
				v = "v2"
			}
			limits = append(limits, ctl+" ("+v+")")
		} else {
			limits = append(limits, ctl+" (unavailable)")
		}
	}
	return []any{"cgroup", version, "under", c.track.dir, "limits", strings.Join(limits, ", ")}
}

// readOwnCgroups maps each hierarchy of /proc/self/cgroup to this
// process's path in it: "" for v2, each controller's name for v1 (a
// joint "cpu,cpuacct" line gives both).
func readOwnCgroups(file string) (map[string]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	own := map[string]string{}
	for line := range strings.Lines(string(data)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			own[""] = parts[2]
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			own[ctl] = parts[2]
		}
	}
	return own, nil
}

// cgroupMount is where a hierarchy is mounted, and which of its cgroups
// is the mount's root (not "/" inside some containers).
type cgroupMount struct{ dir, root string }

// readCgroupMounts maps each mounted hierarchy ("" for v2, controller
// names for v1) to its first mount in /proc/self/mountinfo.
func readCgroupMounts(file string) (map[string]cgroupMount, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	mounts := map[string]cgroupMount{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, after := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(after) < 3 {
			continue
		}
		m := cgroupMount{dir: unescapeMount(fields[4]), root: unescapeMount(fields[3])}
		switch after[0] {
		case "cgroup2":
			if _, ok := mounts[""]; !ok {
				mounts[""] = m
			}
		case "cgroup":
			for _, opt := range strings.Split(after[2], ",") {
				if _, ok := mounts[opt]; !ok && slices.Contains([]string{"freezer", "pids", "memory", "cpu"}, opt) {
					mounts[opt] = m
				}
			}
		}
	}
	return mounts, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// probe reports whether this process may make cgroups under dir, and
// whether one made there has the file named (the root cgroup lacks some).
func probe(dir, file string) (made, has bool) {
	p := filepath.Join(dir, fmt.Sprintf("slipway-probe-%d", os.Getpid()))
	if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return false, false
	}
	has = file != "" && exists(filepath.Join(p, file))
	return os.Remove(p) == nil, has
}

// enableControllers enables for dir's children, in the v2 hierarchy, the
// controllers of want that dir has, and returns those enabled. It fails
// (and limits come from v1, or not at all) where dir holds processes
// itself and is not the root: cgroup v2 lets a cgroup with processes
// hand no controller to its children.
func enableControllers(dir string, want []string) []string {
	var enabled []string
	available, _ := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	for _, ctl := range want {
		if !slices.Contains(strings.Fields(string(available)), ctl) {
			continue
		}
		current, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		if !slices.Contains(strings.Fields(string(current)), ctl) {
			if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+ctl), 0); err != nil {
				continue
			}
		}
		enabled = append(enabled, ctl)
	}
	return enabled
}

// limits are what an attempt's cgroup holds it to; zero means none.
type limits struct {
	pids   int
	memory int64   // bytes
	cpus   float64 // CPUs' worth of time per period
}

// attemptCgroup is one attempt's cgroup in each hierarchy used.
type attemptCgroup struct {
	track string // the tracking cgroup
	v2    bool
	fd    int // v2: the tracking cgroup, open for CLONE_INTO_CGROUP
	// join lists the tasks files of the attempt's v1 cgroups but memory,
	// which the thread that starts a process joins; own, those of this
	// process's cgroups in the same hierarchies, where it goes back.
	join, own []string
	// enter lists the cgroup.procs files of the attempt's v1 memory
	// cgroup, which a started process joins by PID (see enterAll).
	enter []string
	// dirs is every cgroup made, the tracking one last, as they are
	// removed.
	dirs []string
	// pooled cgroups are kept from attempt to attempt (see take), with a
	// resident thread in their v1 cgroups that starts their processes.
	pooled   bool
	pids     int // the pids limit written
	resident *launcher
}

// name is the name of a new attempt cgroup: the process's ID and a
// sequence number, so that two processes never pick the same one.
func (c *cgroups) name() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return fmt.Sprintf("slipway-%d-%d", os.Getpid(), c.seq)
}

// dirs lists the cgroups an attempt named name gets, the tracking one
// last: what the attempt's record lists before they are made.
func (c *cgroups) dirs(name string, lim limits) []string {
	var dirs []string
	for _, ctl := range limitControllers {
		h, ok := c.limits[ctl]
		if !ok || h == c.track || !lim.wants(ctl) {
			continue
		}
		d := filepath.Join(h.dir, name)
		if !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return append(dirs, filepath.Join(c.track.dir, name))
}

func (l limits) wants(ctl string) bool {
	switch ctl {
	case "pids":
		return l.pids > 0
	case "memory":
		return l.memory > 0
	case "cpu":
		return l.cpus > 0
	}
	return false
}

// create makes the cgroups dirs named (see dirs) and sets their limits.
// On error, what was made is removed.
func (c *cgroups) create(dirs []string, lim limits) (_ *attemptCgroup, err error) {
	made := &attemptCgroup{track: dirs[len(dirs)-1], v2: c.track.v2, fd: -1, pooled: c.pooled(lim), pids: lim.pids}
	defer func() {
		if err != nil {
			made.close()
			made.remove()
		}
	}()
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		made.dirs = append(made.dirs, d)
	}
	if !made.v2 {
		made.join = append(made.join, filepath.Join(made.track, "tasks"))
		made.own = append(made.own, filepath.Join(c.track.dir, "tasks"))
	}
	for _, ctl := range limitControllers {
		h, ok := c.limits[ctl]
		if !ok || !lim.wants(ctl) {
			continue
		}
		dir := filepath.Join(h.dir, filepath.Base(made.track))
		if err := setLimit(dir, ctl, h.v2, lim); err != nil {
			return nil, err
		}
		switch {
		case h.v2 || dir == made.track:
		case ctl == "memory":
			made.enter = append(made.enter, filepath.Join(dir, "cgroup.procs"))
		default:
			if tasks := filepath.Join(dir, "tasks"); !slices.Contains(made.join, tasks) {
				made.join = append(made.join, tasks)
				made.own = append(made.own, filepath.Join(h.dir, "tasks"))
			}
		}
	}
	if made.v2 {
		made.fd, err = unix.Open(made.track, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
	}
	if made.pooled && len(made.join) > 0 {
		if made.resident, err = startLauncher(made.join); err != nil {
			return nil, err
		}
	}
	return made, nil
}

// pooled says whether an attempt with these limits gets a cgroup kept
// for reuse: where v2 tracks, and none but the pids limit applies.
// Making and removing an attempt's cgroups, and joining a v1 pids cgroup
// for each fork, cost 0.2 ms a one-step job on this VM, doubling the
// executor's overhead: moving a thread or process between v1 cgroups
// waits for an RCU grace period (cgroup_threadgroup_rwsem) and slows
// every fork of the host meanwhile. A kept cgroup has a thread of its
// own that forks its processes (see launcher): nothing moves.
func (c *cgroups) pooled(lim limits) bool {
	return c.track.v2 && lim.memory == 0 && lim.cpus == 0
}

// take returns a kept cgroup, its pids limit set to lim's, or nil. A
// cgroup is kept only when its attempt left no process in it (see kill),
// and nothing enters a v2 cgroup but what is cloned into it.
func (c *cgroups) take(lim limits) *attemptCgroup {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, cg := range c.pool {
		if cg.pids != lim.pids {
			h := c.limits["pids"]
			if lim.pids <= 0 || setLimit(filepath.Join(h.dir, filepath.Base(cg.track)), "pids", h.v2, lim) != nil {
				continue
			}
			cg.pids = lim.pids
		}
		c.pool = slices.Delete(c.pool, i, i+1)
		return cg
	}
	return nil
}

// put keeps cg for another attempt, once the attempt it held is over:
// its processes killed and its record blank. It says false when the pool
// is full; the caller removes cg.
func (c *cgroups) put(cg *attemptCgroup) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pool) >= maxPool {
		return false
	}
	c.pool = append(c.pool, cg)
	return true
}

// drain removes the kept cgroups that no attempt uses, waiting up to d
// for killed processes to leave them.
func (c *cgroups) drain(d time.Duration) error {
	c.mu.Lock()
	pool := c.pool
	c.pool = nil
	c.mu.Unlock()
	var errs []error
	for _, cg := range pool {
		cg.close()
		errs = append(errs, removeCgroups(cg.dirs, d))
	}
	return errors.Join(errs...)
}

// populated reports whether the v2 cgroup dir holds a process (a zombie
// included).
func populated(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	return err != nil || bytes.Contains(data, []byte("populated 1"))
}

// cpuPeriod is the CFS period CPU limits are expressed in (the kernel's
// default), in microseconds.
const cpuPeriod = 100000

func setLimit(dir, ctl string, v2 bool, lim limits) error {
	var file, value string
	switch {
	case ctl == "pids":
		file, value = "pids.max", strconv.Itoa(lim.pids)
	case ctl == "memory" && v2:
		file, value = "memory.max", strconv.FormatInt(lim.memory, 10)
	case ctl == "memory":
		file, value = "memory.limit_in_bytes", strconv.FormatInt(lim.memory, 10)
	case ctl == "cpu" && v2:
		file, value = "cpu.max", fmt.Sprintf("%d %d", int64(lim.cpus*cpuPeriod), cpuPeriod)
	case ctl == "cpu":
		if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte(strconv.Itoa(cpuPeriod)), 0); err != nil {
			return fmt.Errorf("cgroup: cpu limit: %w", err)
		}
		file, value = "cpu.cfs_quota_us", strconv.FormatInt(int64(lim.cpus*cpuPeriod), 10)
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil {
		return fmt.Errorf("cgroup: %s limit: %w", ctl, err)
	}
	return nil
}

// start starts cmd, whose SysProcAttr is set, with its process in the
// attempt's cgroups.
func (cg *attemptCgroup) start(cmd *exec.Cmd) error {
	if cg.v2 {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, cg.fd
	}
	var err error
	switch {
	case cg.resident != nil:
		err = cg.resident.start(cmd)
	case len(cg.join) > 0:
		err = cg.startJoined(cmd)
	default:
		err = cmd.Start()
	}
	if err != nil {
		return err
	}
	for _, procs := range cg.enter {
		cg.enterAll(procs, cmd.Process.Pid)
	}
	return nil
}

// startJoined starts cmd from an OS thread that joins the attempt's v1
// cgroups (the v1 tracking one, pids, cpu) for the fork and goes back,
// so that the process is in them from its first instruction: a process
// is born in the v1 cgroups of the thread that forked it. A process
// moved in by its PID after its start is in them only later, once its
// shell may have forked: in tests, bash had often run its first command
// by then. Kept cgroups have a thread that stays in them instead (see
// launcher); for the others, a thread made per attempt cost 90 µs on
// this VM, against 30 µs a step to join and go back. The memory cgroup
// is never joined this way: an OOM kill there could pick slipway.
//
// Should the thread fail to go back, its goroutine ends locked to it and
// the runtime ends the thread, rather than let slipway's goroutines run
// in the job's cgroups (the main thread it parks for good instead).
func (cg *attemptCgroup) startJoined(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		tid := []byte(strconv.Itoa(unix.Gettid()))
		back := func(n int) bool {
			ok := true
			for _, tasks := range cg.own[:n] {
				ok = os.WriteFile(tasks, tid, 0) == nil && ok
			}
			return ok
		}
		var err error
		joined := 0
		for _, tasks := range cg.join {
			if err = os.WriteFile(tasks, tid, 0); err != nil {
				err = fmt.Errorf("cgroup: %w", err)
				break
			}
			joined++
		}
		if err == nil {
			err = cmd.Start()
		}
		if back(joined) {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// enterAll moves pid, a process just started, into the v1 cgroup whose
// cgroup.procs file is procs, and then every process of the attempt not
// in it yet, until a pass finds none: processes pid forked before it was
// moved, and theirs. Once every process of the attempt is in, what they
// fork is born in. (Memory they took before stays charged where it was.)
func (cg *attemptCgroup) enterAll(procs string, pid int) {
	// A process already gone cannot join: nothing to limit.
	_ = os.WriteFile(procs, []byte(strconv.Itoa(pid)), 0)
	for pass := 0; pass < 20; pass++ {
		all, err1 := cgroupProcs(cg.track)
		in, err2 := cgroupProcs(filepath.Dir(procs))
		if err1 != nil || err2 != nil {
			return
		}
		moved := false
		for _, p := range all {
			if p != os.Getpid() && !slices.Contains(in, p) {
				moved = os.WriteFile(procs, []byte(strconv.Itoa(p)), 0) == nil || moved
			}
		}
		if !moved {
			return
		}
	}
}

// launcher starts the processes of a kept cgroup from an OS thread of
// its own that stays in the cgroup's v1 cgroups (pids), so that each
// process it forks is in them from its first instruction, and nothing
// moves between cgroups per attempt (see pooled). The thread counts as
// one of the cgroup's processes. It never goes back: its goroutine ends
// locked to it when the cgroup goes, and the runtime ends the thread with
// it, so no other goroutine ever runs in the job's cgroups. (The runtime
// makes new threads from a template thread, not from a locked one.)
type launcher struct {
	tid   int
	first string // the first tasks file joined
	reqs  chan *exec.Cmd
	errs  chan error
	done  chan struct{}
}

// startLauncher starts a launcher whose thread joins the v1 cgroups of the
// tasks files join.
func startLauncher(join []string) (*launcher, error) {
	l := &launcher{first: join[0], reqs: make(chan *exec.Cmd), errs: make(chan error), done: make(chan struct{})}
	ready := make(chan error)
	onThreadOfItsOwn(func() {
		defer close(l.done)
		l.tid = unix.Gettid()
		tid := []byte(strconv.Itoa(l.tid))
		for _, tasks := range join {
			if err := os.WriteFile(tasks, tid, 0); err != nil {
				ready <- fmt.Errorf("cgroup: %w", err)
				return
			}
		}
		ready <- nil
		for cmd := range l.reqs {
			l.errs <- cmd.Start()
		}
	})
	if err := <-ready; err != nil {
		<-l.done
		return nil, err
	}
	return l, nil
}

func (l *launcher) start(cmd *exec.Cmd) error {
	l.reqs <- cmd
	return <-l.errs
}

// stop ends the launcher's thread and waits, a bounded while, until it
// has left its cgroups, which cannot be removed before.
func (l *launcher) stop() {
	close(l.reqs)
	<-l.done
	tid := strconv.Itoa(l.tid)
	for i := 0; i < 1000; i++ {
		data, err := os.ReadFile(l.first)
		if err != nil || !slices.Contains(strings.Fields(string(data)), tid) {
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// close releases the tracking cgroup's descriptor and ends the resident
// thread: the cgroup can then only be removed.
func (cg *attemptCgroup) close() {
	if cg.fd >= 0 {
		unix.Close(cg.fd)
		cg.fd = -1
	}
	if cg.resident != nil {
		cg.resident.stop()
		cg.resident = nil
	}
}

// kill kills every process in the cgroup tracking dir. A v2 cgroup is
// killed by the kernel, forks in flight included; a v1 freezer cgroup is
// frozen first, so that none of its processes forks between the reading
// of its members and their SIGKILL.
func killCgroup(dir string) error {
	if exists(filepath.Join(dir, "cgroup.kill")) {
		return killV2(dir)
	}
	state := filepath.Join(dir, "freezer.state")
	if !exists(state) {
		if !exists(filepath.Join(dir, "cgroup.procs")) {
			// Gone, or going: another process's sweep is removing
			// it, which it does only once it is empty.
			return nil
		}
		return fmt.Errorf("cgroup %s: neither cgroup.kill nor freezer.state", dir)
	}
	for pass := 0; ; pass++ {
		pids, err := cgroupProcs(dir)
		pids = slices.DeleteFunc(pids, func(pid int) bool { return pid == os.Getpid() || !running(pid) })
		if err != nil || len(pids) == 0 {
			return err
		}
		if pass == 10 {
			return fmt.Errorf("cgroup %s: %d processes survive", dir, len(pids))
		}
		if err := os.WriteFile(state, []byte("FROZEN"), 0); removed(err) {
			return nil
		} else if err != nil {
			return err
		}
		// A process in an uninterruptible sleep delays freezing; it is
		// killed anyway and the next pass sees whether it went.
		for i := 0; i < 200; i++ {
			if s, err := os.ReadFile(state); err != nil || string(bytes.TrimSpace(s)) == "FROZEN" {
				break
			}
			time.Sleep(time.Millisecond)
		}
		pids, _ = cgroupProcs(dir)
		for _, pid := range pids {
			// A v1 cgroup lists the process of each thread in it:
			// slipway's own, should a thread that started a process
			// have failed to go back.
			if pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if err := os.WriteFile(state, []byte("THAWED"), 0); removed(err) {
			return nil
		} else if err != nil {
			return err
		}
		waitCgroupEmpty(dir, 50*time.Millisecond)
	}
}

// killV2 kills every process in the v2 cgroup dir.
func killV2(dir string) error {
	err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	if removed(err) {
		return nil
	}
	return err
}

// removed reports whether err says a cgroup is gone, or being removed
// (ENODEV), by another process's sweep say: then it is empty.
func removed(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV)
}

// kill kills every process in the attempt's cgroups. A v2 cgroup that
// had to be killed is not kept for reuse: on this VM's kernel (6.18) a
// process cloned into a cgroup ever killed through cgroup.kill was
// SIGKILLed at birth. Most attempts leave nothing running, and their
// cgroup is not killed.
func (cg *attemptCgroup) kill() error {
	if !cg.v2 {
		return killCgroup(cg.track)
	}
	if !populated(cg.track) {
		return nil
	}
	cg.pooled = false
	return killV2(cg.track)
}

// running reports whether pid is a process that can still run: not a
// zombie, which stays in its cgroup until its parent (init, for an
// orphan) reaps it.
func running(pid int) bool {
	st, ok := readStat(pid)
	return ok && st.state != 'Z'
}

// cgroupProcs lists the processes in the cgroup dir.
func cgroupProcs(dir string) ([]int, error) {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if removed(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// waitCgroupEmpty waits, up to d, for the cgroup dir to hold no process.
func waitCgroupEmpty(dir string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for wait := 100 * time.Microsecond; ; wait = min(2*wait, 20*time.Millisecond) {
		if pids, err := cgroupProcs(dir); err == nil && len(pids) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(wait)
	}
}

// remove removes the attempt's cgroups, once their killed processes are
// gone.
func (cg *attemptCgroup) remove() error {
	return removeCgroups(cg.dirs, 10*time.Second)
}

// removeCgroups removes the cgroups dirs, waiting up to d for processes
// still exiting to leave them. One already gone is not an error.
func removeCgroups(dirs []string, d time.Duration) error {
	var errs []error
	deadline := time.Now().Add(d)
	for _, dir := range dirs {
		// rmdir fails with EBUSY while the cgroup has a process: cheaper
		// to try than to read its members first.
		err := os.Remove(dir)
		for wait := 100 * time.Microsecond; errors.Is(err, syscall.EBUSY) && time.Now().Before(deadline); wait = min(2*wait, 50*time.Millisecond) {
			time.Sleep(wait)
			err = os.Remove(dir)
		}
		if err != nil && !removed(err) {
			errs = append(errs, fmt.Errorf("cgroup: %w", err))
		}
	}
	return errors.Join(errs...)
}

// isAttemptCgroup reports whether dir can be a cgroup that this package
// made: a directory named slipway-<pid>-<n> on a cgroup file system. A
// record's lines are checked against it before anything is killed or
// removed.
func isAttemptCgroup(dir string) bool {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return false
	}
	rest, ok := strings.CutPrefix(filepath.Base(dir), "slipway-")
	pid, n, ok2 := strings.Cut(rest, "-")
	if !ok || !ok2 || !isNumber(pid) || !isNumber(n) {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(dir), &st); err != nil {
		return false
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC || st.Type == unix.CGROUP_SUPER_MAGIC
}

func isNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}
