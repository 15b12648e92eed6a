package local

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Protect makes this process non-dumpable (prctl PR_SET_DUMPABLE 0): its
// /proc/<pid>/environ, where the server's tokens are, and its memory,
// maps and open files can then be read only by root (CAP_SYS_PTRACE),
// not by other processes of its user, which jobs are when slipway is not
// root. (/proc/<pid>/cmdline stays readable by all: slipway takes no
// secret on its command line.) It also keeps slipway's memory out of core
// dumps. Call it first in main, before any secret is read; New calls it
// too. It is one system call and safe to repeat. Jobs start dumpable
// again: an exec resets the flag.
func Protect() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("local: prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	return nil
}
