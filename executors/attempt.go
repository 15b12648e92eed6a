package executors

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"syscall"
)

// attemptIDs are what executors accept as attempt IDs: they become folder
// and file names (the local executor's attempt folder, workspace layers)
// and label values, so they may hold no path and no separator.
var attemptIDs = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// CheckAttemptID returns an error unless id is safe to use as an attempt
// ID in file names and labels.
func CheckAttemptID(id string) error {
	if !attemptIDs.MatchString(id) {
		return fmt.Errorf("bad attempt id %q", id)
	}
	return nil
}

// ProcessGone reports whether the process of this host that left
// something marked with its PID (a file name, a label) is gone: no
// process has that PID, or this process has it, which has left nothing
// yet, so an earlier one with the same PID did (slipway as PID 1 of a
// container restarted on the same volume).
func ProcessGone(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
