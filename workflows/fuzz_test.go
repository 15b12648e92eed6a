package workflows

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
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

// budgetConfig writes a config from a few numbers: commands nested depth
// deep, each invoking the next fan times and passing on what leaf says
// (nothing, a string, a steps list or a map, repeated fan times), a job
// that invokes them and has steps more steps, and a workflow of matrices
// matrices of side*side instances, each requiring the one before when
// chained.
func budgetConfig(depth, fan, leaf, side, matrices, steps int, chained bool) string {
	var b strings.Builder
	b.WriteString("version: 2.1\ncommands:\n")
	params := []string{"", "{s: {type: string}}", "{s: {type: steps}}", "{s: {type: executor}}"}[leaf]
	pass := []string{"", `"<< parameters.s >>"`, "{steps: << parameters.s >>}", "<< parameters.s >>"}[leaf]
	for i := range depth {
		calls := make([]string, fan)
		for j := range calls {
			switch leaf {
			case 0:
				calls[j] = fmt.Sprintf("c%d", i+1)
			case 1:
				calls[j] = fmt.Sprintf("{c%d: {s: \"%s\"}}", i+1, strings.Repeat("<< parameters.s >>", fan))
			case 2:
				calls[j] = fmt.Sprintf("{c%d: {s: [%s]}}", i+1, strings.TrimSuffix(strings.Repeat(pass+", ", fan), ", "))
			case 3:
				m := make([]string, fan)
				for k := range m {
					m[k] = fmt.Sprintf("k%d: %s", k, pass)
				}
				calls[j] = fmt.Sprintf("{c%d: {s: {%s}}}", i+1, strings.Join(m, ", "))
			}
		}
		if params != "" {
			fmt.Fprintf(&b, "  c%d:\n    parameters: %s\n    steps: [%s]\n", i, params, strings.Join(calls, ", "))
		} else {
			fmt.Fprintf(&b, "  c%d: {steps: [%s]}\n", i, strings.Join(calls, ", "))
		}
	}
	leafStep := []string{`{run: "true"}`, `{run: "echo << parameters.s >>"}`, "{steps: << parameters.s >>}", `{when: {condition: {equal: [<< parameters.s >>, x]}, steps: [{run: "true"}]}}`}[leaf]
	if params != "" {
		fmt.Fprintf(&b, "  c%d:\n    parameters: %s\n    steps: [%s]\n", depth, params, leafStep)
	} else {
		fmt.Fprintf(&b, "  c%d: {steps: [%s]}\n", depth, leafStep)
	}
	first := []string{"c0", `{c0: {s: abc}}`, `{c0: {s: [{run: "true"}]}}`, "{c0: {s: x}}"}[leaf]
	fmt.Fprintf(&b, "jobs:\n  a:\n    parameters: {x: {type: integer, default: 0}, y: {type: integer, default: 0}}\n    docker: [{image: x}]\n    steps: [%s%s]\n", first, strings.Repeat(`, {run: "make << parameters.x >>"}`, steps))
	b.WriteString("workflows:\n  w:\n    jobs:\n      - a\n")
	values := make([]string, side)
	for i := range values {
		values[i] = fmt.Sprint(i)
	}
	for i := range matrices {
		fmt.Fprintf(&b, "      - a:\n          name: m%d-<< matrix.x >>-<< matrix.y >>\n          matrix: {alias: m%d, parameters: {x: [%s], y: [%s]}}\n", i, i, strings.Join(values, ", "), strings.Join(values, ", "))
		if chained && i > 0 {
			fmt.Fprintf(&b, "          requires: [m%d]\n", i-1)
		}
	}
	return b.String()
}

// FuzzPlanBudget compiles generated configs that expand as the reports of
// configs exhausting memory did, under small limits: whatever the shape,
// each compilation allocates in proportion to the limits (under 32 MB for
// these), and what Validate counts is what its plan holds.
func FuzzPlanBudget(f *testing.F) {
	f.Add(uint8(22), uint8(2), uint8(0), uint8(1), uint8(0), uint8(0), false) // commands invoking the next twice
	f.Add(uint8(24), uint8(2), uint8(1), uint8(1), uint8(0), uint8(0), false) // a string doubled
	f.Add(uint8(22), uint8(2), uint8(2), uint8(1), uint8(0), uint8(0), false) // a steps list doubled
	f.Add(uint8(24), uint8(2), uint8(3), uint8(1), uint8(0), uint8(0), false) // a map doubled into a condition
	f.Add(uint8(0), uint8(1), uint8(0), uint8(99), uint8(2), uint8(0), true)  // a matrix requiring a matrix
	f.Add(uint8(0), uint8(1), uint8(0), uint8(99), uint8(5), uint8(0), false) // many matrices
	f.Add(uint8(3), uint8(3), uint8(1), uint8(10), uint8(3), uint8(10), true) // a bit of everything
	f.Add(uint8(2), uint8(1), uint8(2), uint8(3), uint8(1), uint8(2), false)  // fits
	limits := Limits{MaxJobs: 1000, MaxSteps: 10_000, MaxRequires: 10_000, MaxBytes: 4 << 20}
	f.Fuzz(func(t *testing.T, depth, fan, leaf, side, matrices, steps uint8, chained bool) {
		src := budgetConfig(int(depth%32), int(fan%4)+1, int(leaf%4), int(side%100)+1, int(matrices%6), int(steps%50), chained)
		c, err := Load("c.yml", []byte(src), LoadOptions{Limits: limits})
		if err != nil {
			t.Fatalf("load: %v\n%s", err, src)
		}
		var plan *Plan
		var b *budget
		n := allocated(func() { plan, b, err = c.compile(Trigger{Branch: "main"}, true) })
		if n > 32<<20 {
			t.Errorf("validate allocated %d MB, want under 32 MB (%s)", n>>20, usage(b))
		}
		if err != nil {
			// Past a limit, or commands nested deeper than maxDepth.
			if !strings.Contains(err.Error(), "plan too large") && !strings.Contains(err.Error(), "nested more than") {
				t.Fatalf("validate: %v\n%s", err, src)
			}
			return
		}
		jobs, edges := 0, 0
		for _, w := range plan.Workflows {
			jobs += len(w.Jobs)
			for _, j := range w.Jobs {
				edges += len(j.Requires)
			}
		}
		if jobs != b.jobs || edges > b.requires {
			t.Errorf("plan has %d jobs and %d edges, counted %d and %d", jobs, edges, b.jobs, b.requires)
		}
		if n := allocated(func() { _, err = c.Plan(Trigger{Branch: "main"}) }); n > 32<<20 || err != nil {
			t.Errorf("plan: allocated %d MB, error %v", n>>20, err)
		}
	})
}
