package local

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/slipway-ci/slipway/executors"
)

// A running attempt keeps a record on disk of what it holds, so that a
// process started later (a restarted server, the engine's Cleanup) can
// stop what is left of it once the process running it is gone:
//
//	<Dir>/.running/<pid>-<n>
//
//	attempt <attempt ID>
//	owner <boot ID> <pid> <start time>    who runs the attempt
//	cgroup <dir>                          each of its cgroups, the tracking one last
//	group <pgid> <start time>             without cgroups: each step's process group
//
// The record is written before the cgroups are made and blanked after
// they are removed, or kept for the next attempt (see cgroups.pooled):
// a kept cgroup, or one a crash left between the two, no record names,
// and the next process finds it by its name (see cgroups.sweep). Without
// cgroups a line is added per step, the only per-step write.
// Record files are kept by the process that made them (their names start
// with its PID) and reused from attempt to attempt, overwritten in place
// as step files are (see scripts): making a file on this VM's disk cost
// 0.3 ms, overwriting one 4 µs. A blank record (zero bytes) is free.
//
// An owner is gone when the machine rebooted since (the boot ID), or no
// process has its PID, or the process with its PID started at another
// time (from /proc/PID/stat: a recycled PID), or is a zombie. What a live
// owner runs is left alone, be it another server or a `slipway run`
// sharing the folder. The folder is its maker's alone (0700): jobs,
// which do not run as root where slipway does, cannot write records to
// have something else killed, and each line is checked anyway (see
// isAttemptCgroup).
type record struct {
	attempt string
	owner   owner
	cgroup  []string
	groups  []procID
}

// owner identifies a process across PID reuse and reboots.
type owner struct {
	boot string
	pid  int
	// start is the process's start time in clock ticks since boot.
	start uint64
}

// procID is a process, or a process group by its leader, that must still
// be the one that was recorded.
type procID struct {
	pid   int
	start uint64
}

var (
	selfOnce sync.Once
	selfID   owner
)

// self is this process as an owner.
func self() owner {
	selfOnce.Do(func() {
		selfID.pid = os.Getpid()
		selfID.boot = bootID()
		if st, ok := readStat(selfID.pid); ok {
			selfID.start = st.start
		}
	})
	return selfID
}

func bootID() string {
	data, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "unknown"
	}
	return string(bytes.TrimSpace(data))
}

// alive reports whether o still runs.
func (o owner) alive() bool {
	if o.boot != self().boot {
		return false
	}
	return procID{o.pid, o.start}.alive()
}

// alive reports whether the process p was is still running: its PID
// runs, started at the recorded time, and is not a zombie.
func (p procID) alive() bool {
	st, ok := readStat(p.pid)
	return ok && st.start == p.start && st.state != 'Z'
}

// stat is what this package reads from /proc/PID/stat.
type stat struct {
	state byte
	pgrp  int
	start uint64
}

// readStat reads a process's /proc/PID/stat.
func readStat(pid int) (stat, bool) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return stat{}, false
	}
	// "pid (comm) state ppid pgrp ... starttime ...": comm may hold
	// spaces and parentheses, so fields are counted from the last ')'.
	// starttime is field 22, the 20th after comm.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return stat{}, false
	}
	f := bytes.Fields(data[i+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, false
	}
	pgrp, err1 := strconv.Atoi(string(f[2]))
	start, err2 := strconv.ParseUint(string(f[19]), 10, 64)
	if err1 != nil || err2 != nil {
		return stat{}, false
	}
	return stat{state: f[0][0], pgrp: pgrp, start: start}, true
}

func (r *record) encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "attempt %s\n", r.attempt)
	fmt.Fprintf(&b, "owner %s %d %d\n", r.owner.boot, r.owner.pid, r.owner.start)
	for _, d := range r.cgroup {
		fmt.Fprintf(&b, "cgroup %s\n", d)
	}
	for _, g := range r.groups {
		fmt.Fprintf(&b, "group %d %d\n", g.pid, g.start)
	}
	return b.Bytes()
}

// groupLine is a record's line for the process group led by p.
func groupLine(p procID) []byte { return fmt.Appendf(nil, "group %d %d\n", p.pid, p.start) }

// errFree is readRecord's answer for a blank record.
var errFree = errors.New("free record")

// readRecord reads the record at path. A line it does not understand is
// an error: the record is then left, not acted on.
func readRecord(path string) (*record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimRight(data, "\x00")
	if len(data) == 0 {
		return nil, errFree
	}
	r := &record{}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		bad := fmt.Errorf("record %s: bad line %q", path, strings.TrimSpace(line))
		switch {
		case len(f) == 2 && f[0] == "attempt":
			r.attempt = f[1]
		case len(f) == 4 && f[0] == "owner":
			pid, err1 := strconv.Atoi(f[2])
			start, err2 := strconv.ParseUint(f[3], 10, 64)
			if err1 != nil || err2 != nil {
				return nil, bad
			}
			r.owner = owner{boot: f[1], pid: pid, start: start}
		case len(f) == 2 && f[0] == "cgroup":
			r.cgroup = append(r.cgroup, f[1])
		case len(f) == 3 && f[0] == "group":
			pid, err1 := strconv.Atoi(f[1])
			start, err2 := strconv.ParseUint(f[2], 10, 64)
			if err1 != nil || err2 != nil || pid <= 1 {
				return nil, bad
			}
			r.groups = append(r.groups, procID{pid, start})
		default:
			return nil, bad
		}
	}
	if r.owner.pid <= 0 || executors.CheckAttemptID(r.attempt) != nil {
		return nil, fmt.Errorf("record %s: no owner or attempt", path)
	}
	return r, nil
}

// records hands out the files of this process's running attempts'
// records, and takes them back blanked.
type records struct {
	dir  string
	mu   sync.Mutex
	free []*recordFile
	n    int
}

// recordFile is one record file, kept open.
type recordFile struct {
	path string
	f    *os.File
	size int64
}

// take writes r to a record file of its own.
func (rs *records) take(r *record) (*recordFile, error) {
	rs.mu.Lock()
	var rf *recordFile
	if n := len(rs.free); n > 0 {
		rf, rs.free = rs.free[n-1], rs.free[:n-1]
	} else {
		rs.n++
		rf = &recordFile{path: filepath.Join(rs.dir, fmt.Sprintf("%d-%d", os.Getpid(), rs.n))}
	}
	rs.mu.Unlock()
	if rf.f != nil {
		if _, err := os.Stat(rf.path); err != nil {
			// Removed behind the pool's back: written to, it would say
			// nothing to anyone.
			rf.f.Close()
			rf.f = nil
		}
	}
	if rf.f == nil {
		f, err := os.OpenFile(rf.path, os.O_WRONLY|os.O_CREATE, 0o600)
		if errors.Is(err, fs.ErrNotExist) {
			// Someone removed the folder; make it again.
			if err = os.MkdirAll(rs.dir, 0o700); err == nil {
				f, err = os.OpenFile(rf.path, os.O_WRONLY|os.O_CREATE, 0o600)
			}
		}
		if err != nil {
			rs.putBack(rf)
			return nil, err
		}
		rf.f, rf.size = f, 0
		if fi, err := f.Stat(); err == nil {
			rf.size = fi.Size() // an adopted record's: cut off below
		}
	}
	data := r.encode()
	_, err := rf.f.WriteAt(data, 0)
	if err == nil && int64(len(data)) < rf.size {
		err = rf.f.Truncate(int64(len(data)))
	}
	if err != nil {
		// Written over or not, the file is not to be trusted: the
		// next attempt opens it again.
		rf.f.Close()
		rf.f = nil
		rs.putBack(rf)
		return nil, err
	}
	rf.size = int64(len(data))
	return rf, nil
}

// add adds line to the record.
func (rf *recordFile) add(line []byte) error {
	n, err := rf.f.WriteAt(line, rf.size)
	rf.size += int64(n)
	return err
}

// give blanks a record whose attempt left nothing behind, and makes it
// free for another attempt.
func (rs *records) give(rf *recordFile) {
	if _, err := rf.f.WriteAt(make([]byte, rf.size), 0); err != nil {
		rf.f.Close()
		rf.f = nil
	}
	rs.putBack(rf)
}

// adopt makes a free record that a dead process left, at path, one of
// this process's: renamed, not made again (see trash). False when it is
// not a file of this process's user's.
func (rs *records) adopt(path string) bool {
	if _, ok := ownFile(path); !ok {
		return false
	}
	rs.mu.Lock()
	dst := adoptedName(rs.dir, path, &rs.n)
	rs.mu.Unlock()
	if os.Rename(path, dst) != nil {
		return false
	}
	rs.putBack(&recordFile{path: dst})
	return true
}

func (rs *records) putBack(rf *recordFile) {
	rs.mu.Lock()
	rs.free = append(rs.free, rf)
	rs.mu.Unlock()
}
