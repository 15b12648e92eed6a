package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// jobUser is the user jobs run as when slipway runs as root.
type jobUser struct {
	uid, gid int
	groups   []int  // supplementary groups, gid among them
	name     string // "" for a uid the user database does not know
}

// lookupUser resolves Options.User: a user name, or "uid" or "uid:gid".
// A uid the user database does not know needs its gid.
func lookupUser(spec string) (*jobUser, error) {
	uidText, gidText, hasGid := strings.Cut(spec, ":")
	var u *user.User
	var err error
	if isNumber(uidText) {
		u, err = user.LookupId(uidText)
		var unknown user.UnknownUserIdError
		if errors.As(err, &unknown) {
			u, err = nil, nil
		}
	} else if !hasGid {
		u, err = user.Lookup(spec)
	} else {
		return nil, fmt.Errorf("user %q: give a name, or uid[:gid]", spec)
	}
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", spec, err)
	}
	ju := &jobUser{}
	switch {
	case u != nil:
		ju.name = u.Username
		ju.uid, _ = strconv.Atoi(u.Uid)
		ju.gid, _ = strconv.Atoi(u.Gid)
		ids, err := u.GroupIds()
		if err != nil {
			return nil, fmt.Errorf("user %q: groups: %w", spec, err)
		}
		for _, id := range ids {
			if g, err := strconv.Atoi(id); err == nil && !slices.Contains(ju.groups, g) {
				ju.groups = append(ju.groups, g)
			}
		}
	case !hasGid:
		return nil, fmt.Errorf("user %q is not in the user database: give its group too, as uid:gid", spec)
	default:
		ju.uid, _ = strconv.Atoi(uidText)
	}
	if hasGid {
		if !isNumber(gidText) {
			return nil, fmt.Errorf("user %q: the group must be a number", spec)
		}
		ju.gid, _ = strconv.Atoi(gidText)
	}
	if !slices.Contains(ju.groups, ju.gid) {
		ju.groups = append(ju.groups, ju.gid)
	}
	if ju.uid == 0 {
		return nil, fmt.Errorf("user %q is root: name an unprivileged user, or set AllowRoot", spec)
	}
	return ju, nil
}

func (u *jobUser) String() string {
	if u.name != "" {
		return fmt.Sprintf("%s (%d:%d)", u.name, u.uid, u.gid)
	}
	return fmt.Sprintf("%d:%d", u.uid, u.gid)
}

// credential is what a job's processes are started with; nil, for a nil
// user, starts them as this process's user.
func (u *jobUser) credential() *syscall.Credential {
	if u == nil {
		return nil
	}
	groups := make([]uint32, len(u.groups))
	for i, g := range u.groups {
		groups[i] = uint32(g)
	}
	return &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: groups}
}

// do runs f with the user's file system identity, so that what the
// executor does in a job's folders on its behalf (unpack a cache or a
// workspace, archive artifacts, make a working directory) reads and
// writes only what the job itself may: a symbolic link that a job
// planted, say from its cached folder to /etc, cannot make root write
// through it. f runs on an OS thread of its own whose fsuid, fsgid and
// supplementary groups are the user's (Linux keeps them per thread, and
// an fsuid other than 0 drops the file capabilities); the thread ends
// with f, so no other goroutine ever runs with them. f must do its file
// work on its own goroutine. A nil user runs f as it is.
func (u *jobUser) do(f func() error) error {
	if u == nil {
		return f()
	}
	errc := make(chan error, 1)
	onThreadOfItsOwn(func() {
		if err := u.become(); err != nil {
			errc <- err
			return
		}
		errc <- f()
	})
	return <-errc
}

// become gives the calling thread the user's file system identity.
func (u *jobUser) become() error {
	// unix.Setgroups is the raw system call, which changes this thread
	// only (syscall.Setgroups changes every thread).
	if err := unix.Setgroups(u.groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	unix.Setfsgid(u.gid)
	unix.Setfsuid(u.uid)
	// setfsuid and setfsgid say nothing when they fail; asking again
	// returns the current value.
	if got, _ := unix.SetfsgidRetGid(u.gid); got != u.gid {
		return fmt.Errorf("setfsgid(%d) left %d", u.gid, got)
	}
	if got, _ := unix.SetfsuidRetUid(u.uid); got != u.uid {
		return fmt.Errorf("setfsuid(%d) left %d", u.uid, got)
	}
	return nil
}

// checkReach makes sure the user can reach dir, the attempts folder:
// every folder above it must let it through.
func (u *jobUser) checkReach(dir string) error {
	return u.do(func() error {
		if err := unix.Faccessat(unix.AT_FDCWD, dir, unix.X_OK, unix.AT_EACCESS); err != nil {
			return fmt.Errorf("jobs' user %s cannot reach %s (%w): let it through every folder above", u, dir, err)
		}
		return nil
	})
}

// chown gives path to the user; nothing for a nil user.
func (u *jobUser) chown(path string) error {
	if u == nil {
		return nil
	}
	return os.Lchown(path, u.uid, u.gid)
}

// users hands out the users jobs run as: one for every attempt
// (Options.User), or one per running attempt (Options.Users).
type users struct {
	all []*jobUser
	// dir holds a lock file per user of Options.Users, locked (flock) by
	// the process whose attempt has the user: the kernel drops a dead
	// process's locks, so no claim outlives its process.
	dir string

	mu    sync.Mutex
	held  map[int]*os.File // this process's claims, by uid
	freed chan struct{}    // closed when a claim of this process ends
}

// newUsers resolves specs, one user shared by all attempts or several
// users for one attempt each (perAttempt), whose claims are kept in dir.
func newUsers(specs []string, perAttempt bool, dir string) (*users, error) {
	us := &users{held: map[int]*os.File{}, freed: make(chan struct{})}
	if perAttempt {
		us.dir = dir
	}
	for _, spec := range specs {
		u, err := lookupUser(spec)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(us.all, func(o *jobUser) bool { return o.uid == u.uid }) {
			return nil, fmt.Errorf("user %q: uid %d is named twice", spec, u.uid)
		}
		us.all = append(us.all, u)
	}
	return us, nil
}

// take returns the user an attempt runs as and what ends its claim on
// it, waiting (and saying so on log) while every user has an attempt.
func (us *users) take(ctx context.Context, log io.Writer) (*jobUser, func(), error) {
	if us.dir == "" {
		return us.all[0], func() {}, nil
	}
	said := false
	for {
		us.mu.Lock()
		freed := us.freed
		for _, u := range us.all {
			if us.held[u.uid] != nil {
				continue
			}
			f, err := claim(us.dir, u.uid)
			if err != nil {
				us.mu.Unlock()
				return nil, nil, err
			}
			if f != nil {
				us.held[u.uid] = f
				us.mu.Unlock()
				return u, func() { us.release(u.uid) }, nil
			}
		}
		us.mu.Unlock()
		if !said {
			fmt.Fprintf(log, "Waiting for one of the %d users jobs run as to be free\n", len(us.all))
			said = true
		}
		// Another process's claims end without a word: look again now
		// and then.
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-freed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// claim locks uid's file in dir, returning nil when another process
// holds it.
func claim(dir string, uid int) (*os.File, error) {
	path := filepath.Join(dir, strconv.Itoa(uid))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o700); err == nil {
			f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("claiming a user: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("claiming a user: %w", err)
	}
	return f, nil
}

func (us *users) release(uid int) {
	us.mu.Lock()
	defer us.mu.Unlock()
	if f := us.held[uid]; f != nil {
		f.Close() // and the lock goes with it
		delete(us.held, uid)
		close(us.freed)
		us.freed = make(chan struct{})
	}
}
