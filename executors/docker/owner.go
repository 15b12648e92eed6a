package docker

import (
	"os"
	"strconv"
	"strings"

	"github.com/slipway-ci/slipway/executors"
)

// LabelOwner marks everything an executor creates with the process that
// created it, as "host:pid", so that one executor's start-up sweep
// leaves alone what a live slipway beside it (a server and a `slipway
// run`, or two test binaries) is using.
const LabelOwner = "org.slipway.owner"

// owner is this process's LabelOwner value.
var owner = ownerOf(hostname(), os.Getpid())

// Owner is this process's LabelOwner value, "host:pid".
func Owner() string { return owner }

func ownerOf(host string, pid int) string { return host + ":" + strconv.Itoa(pid) }

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}

// orphaned reports whether what carries these labels was left by a
// process that is gone: one of this host whose PID no longer runs, or
// is this process's own (a container restarted with the same hostname,
// slipway its PID 1 again; or another executor of this process, whose
// idle networks it then recreates). What another host's process owns is
// never taken to be orphaned. Objects without the label have no owner
// to ask and are swept.
func orphaned(labels map[string]string) bool {
	v, ok := labels[LabelOwner]
	if !ok {
		return true
	}
	host, pidText, found := strings.Cut(v, ":")
	pid, err := strconv.Atoi(pidText)
	if !found || err != nil || pid <= 0 {
		return true
	}
	if host != hostname() {
		return false
	}
	return executors.ProcessGone(pid)
}
