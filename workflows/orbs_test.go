package workflows

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOrbsReadOnceADepth loads a config whose orb references another six
// times, which references another six times, eight deep: read once per
// path to it, that is 6^8 files.
func TestOrbsReadOnceADepth(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
		t.Fatal(err)
	}
	for d := range 9 {
		body := "commands:\n  hi: {steps: [checkout]}\n"
		if d < 8 {
			body += "orbs:\n"
			for i := range 6 {
				body += fmt.Sprintf("  o%d: ns/l%d@1\n", i, d+1)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "ns", fmt.Sprintf("l%d.yml", d)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := "version: 2.1\norbs:\n  a: ns/l0@1\njobs:\n  j: {docker: [{image: x}], steps: [a/hi]}\nworkflows:\n  w: {jobs: [j]}\n"
	var err error
	n := allocated(func() { _, err = Load("c.yml", []byte(src), LoadOptions{OrbDirs: []string{dir}}) })
	if want := "l8.yml:1:1: orbs nested more than 8 deep"; err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("got %v, want %s", err, want)
	}
	if n > 8<<20 {
		t.Errorf("allocated %d MB, want under 8 MB", n>>20)
	}
}
