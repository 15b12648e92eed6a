package workflows

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// FuzzPlan feeds arbitrary bytes through parse, compile and plan: whatever
// the input, the result is a plan or an error, never a panic or a hang.
// Seeds: the repository's configs and the shared corpus, plus the
// committed corpus under testdata/fuzz/FuzzPlan.
func FuzzPlan(f *testing.F) {
	for _, pattern := range []string{"../testdata/configs/*.yml", "../testdata/seed/.circleci/*.yml", "../../shared/corpus/circleci/configs/*.yml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			if src, err := os.ReadFile(file); err == nil {
				f.Add(src)
			}
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Load("fuzz.yml", src, LoadOptions{OrbDirs: []string{"../testdata/orbs"}, AllowMachine: true})
		if err != nil {
			return
		}
		_ = c.Validate()
		for _, tr := range []Trigger{{Branch: "main"}, {Tag: "v1.0.0"}} {
			plan, err := c.Plan(tr)
			if err != nil {
				continue
			}
			for _, wf := range plan.Workflows {
				for _, j := range wf.Jobs {
					for r := range j.Requires {
						if !hasJob(wf, r) {
							t.Fatalf("workflow %s: job %s requires %s, which is not planned", wf.Name, j.Name, r)
						}
					}
				}
			}
		}
	})
}

func hasJob(wf *PlannedWorkflow, name string) bool {
	for _, j := range wf.Jobs {
		if j.Name == name {
			return true
		}
	}
	return false
}

// reference is the pattern that references writes out.
var reference = regexp.MustCompile(`<<\s*(parameters|pipeline|matrix)\.([A-Za-z0-9_.\-]+)\s*>>`)

// FuzzReferences checks that references finds what the regexp it
// replaces finds.
func FuzzReferences(f *testing.F) {
	for _, s := range []string{
		"echo << parameters.x >>", "<<parameters.a-b.c>><< pipeline.git.branch\t>>", "<<<< matrix.x >>>>",
		"cat <<EOF\nx\nEOF", "<< parameters. >>", "<< parameters.x >", "<< pipelines.x >>", "<<\n matrix.os\r\n>>x",
		"<< parameters.x y >>", "<<parameters.x>><<parameters.y>>", "<< parameter.x >>", "", "<", "<<",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := reference.FindAllStringSubmatchIndex(s, -1)
		got := references(s, nil)
		if len(got) != len(want) {
			t.Fatalf("%q: got %v, want %v", s, got, want)
		}
		for i := range got {
			if !slices.Equal(got[i][:], want[i]) {
				t.Fatalf("%q: got %v, want %v", s, got, want)
			}
		}
	})
}
