package local

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Where slipway is not root, its jobs run as its own user: what keeps them
// out of its /proc/PID/environ is that the process is not dumpable.
func TestProtectKeepsSameUserJobsOut(t *testing.T) {
	requireRoot(t) // to run the helper as another user
	// The helper runs as nobody, from a copy of this binary it can read.
	dir := reachableTempDir(t)
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "local.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, protect := range []bool{false, true} {
		h := helperJob{
			Dir: filepath.Join(dir, "attempts"), AttemptID: "same-user-1", NoProtect: !protect,
			Command: `if tr '\0' '\n' < /proc/$PPID/environ | grep -q SLIPWAY_TEST_TOKEN; then echo LEAKED; else echo unreadable; fi`,
		}
		cmd := helperCommand(t, bin, h, "SLIPWAY_TEST_TOKEN=xoxb-not-for-jobs")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, out)
		}
		want := map[bool]string{true: "unreadable\n", false: "LEAKED\n"}[protect]
		if !strings.Contains(string(out), want) {
			t.Errorf("protected %v: the job's log lacks %q:\n%s", protect, want, out)
		}
	}
}

func TestProtect(t *testing.T) {
	if err := Protect(); err != nil {
		t.Fatal(err)
	}
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 0 {
		t.Errorf("dumpable = %d, %v after Protect", d, err)
	}
	// Jobs start dumpable, as any exec'd program.
	out, err := exec.Command("grep", "-c", "^", "/proc/self/environ").CombinedOutput()
	if err != nil {
		t.Errorf("a child cannot read its own environment: %v %s", err, out)
	}
}
