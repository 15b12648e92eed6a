package workflows

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// The generators below write the small configs of the "small configs
// exhaust memory" reports. Each expands to far more than the default
// limits allow; compiling them must be refused at the construct that
// crosses a limit, having allocated little.

// nestedCommands has commands that each invoke the next twice, depth
// deep: 2^depth steps from a few hundred bytes.
func nestedCommands(depth int) string {
	var b strings.Builder
	b.WriteString("version: 2.1\ncommands:\n")
	for i := range depth {
		fmt.Fprintf(&b, "  c%d: {steps: [c%d, c%d]}\n", i, i+1, i+1)
	}
	fmt.Fprintf(&b, "  c%d: {steps: [{run: \"true\"}]}\n", depth)
	b.WriteString("jobs:\n  a: {docker: [{image: x}], steps: [c0]}\nworkflows:\n  w: {jobs: [a]}\n")
	return b.String()
}

// doubledString passes a string parameter down depth commands, each
// doubling it: 16 * 2^depth bytes of text.
func doubledString(depth int) string {
	var b strings.Builder
	b.WriteString("version: 2.1\ncommands:\n")
	for i := range depth {
		fmt.Fprintf(&b, "  c%d:\n    parameters: {s: {type: string}}\n    steps: [{c%d: {s: \"<< parameters.s >><< parameters.s >>\"}}]\n", i, i+1)
	}
	fmt.Fprintf(&b, "  c%d:\n    parameters: {s: {type: string}}\n    steps: [{run: \"echo << parameters.s >>\"}]\n", depth)
	b.WriteString("jobs:\n  a: {docker: [{image: x}], steps: [{c0: {s: 0123456789abcdef}}]}\nworkflows:\n  w: {jobs: [a]}\n")
	return b.String()
}

// doubledSteps passes a steps parameter down depth commands, each
// splicing it twice: 2^depth steps.
func doubledSteps(depth int) string {
	var b strings.Builder
	b.WriteString("version: 2.1\ncommands:\n")
	for i := range depth {
		fmt.Fprintf(&b, "  c%d:\n    parameters: {s: {type: steps}}\n    steps: [{c%d: {s: [{steps: << parameters.s >>}, {steps: << parameters.s >>}]}}]\n", i, i+1)
	}
	fmt.Fprintf(&b, "  c%d:\n    parameters: {s: {type: steps}}\n    steps: [{steps: << parameters.s >>}]\n", depth)
	b.WriteString("jobs:\n  a: {docker: [{image: x}], steps: [{c0: {s: [{run: \"true\"}]}}]}\nworkflows:\n  w: {jobs: [a]}\n")
	return b.String()
}

// matrices has n matrix entries of side*side instances each in one
// workflow; when chained, each matrix requires the one before it, every
// instance of it requiring every instance of the other.
func matrices(n, side int, chained bool) string {
	var b strings.Builder
	b.WriteString("version: 2.1\njobs:\n  a:\n    parameters: {x: {type: integer}, y: {type: integer}}\n    docker: [{image: x}]\n    steps: [{run: \"true\"}]\nworkflows:\n  w:\n    jobs:\n")
	values := make([]string, side)
	for i := range values {
		values[i] = fmt.Sprint(i)
	}
	for i := range n {
		fmt.Fprintf(&b, "      - a:\n          name: m%d-<< matrix.x >>-<< matrix.y >>\n", i)
		if chained && i > 0 {
			fmt.Fprintf(&b, "          requires: [m%d]\n", i-1)
		}
		if i == 0 {
			fmt.Fprintf(&b, "          matrix: {alias: m0, parameters: {x: &v [%s], y: *v}}\n", strings.Join(values, ", "))
		} else {
			fmt.Fprintf(&b, "          matrix: {alias: m%d, parameters: {x: *v, y: *v}}\n", i)
		}
	}
	return b.String()
}

// doubledCondition passes a map down depth commands as an executor
// parameter (the one type that takes any map), each nesting it twice,
// and compares it in a condition: 2^depth values to print and compare.
func doubledCondition(depth int) string {
	var b strings.Builder
	b.WriteString("version: 2.1\ncommands:\n")
	for i := range depth {
		fmt.Fprintf(&b, "  c%d:\n    parameters: {e: {type: executor}}\n    steps: [{c%d: {e: {a: << parameters.e >>, b: << parameters.e >>}}}]\n", i, i+1)
	}
	fmt.Fprintf(&b, "  c%d:\n    parameters: {e: {type: executor}}\n    steps: [{when: {condition: {equal: [<< parameters.e >>, x]}, steps: [{run: \"true\"}]}}]\n", depth)
	b.WriteString("jobs:\n  a: {docker: [{image: x}], steps: [{c0: {e: x}}]}\nworkflows:\n  w: {jobs: [a]}\n")
	return b.String()
}

// matrixExcluding has a matrix of side*side combinations and n exclude
// entries.
func matrixExcluding(side, n int) string {
	var b strings.Builder
	values := make([]string, side)
	for i := range values {
		values[i] = fmt.Sprint(i)
	}
	fmt.Fprintf(&b, "version: 2.1\njobs:\n  a:\n    parameters: {x: {type: integer}, y: {type: integer}}\n    docker: [{image: x}]\n    steps: [{run: \"true\"}]\nworkflows:\n  w:\n    jobs:\n      - a:\n          matrix:\n            parameters: {x: &v [%s], y: *v}\n            exclude:\n", strings.Join(values, ", "))
	for i := range n {
		fmt.Fprintf(&b, "              - {x: %d, y: %d}\n", i%side, i/side%side)
	}
	return b.String()
}

// manyArguments has a command that declares n parameters, invoked with
// all n arguments by a command that commands invoking the next twice
// invoke 2^depth times.
func manyArguments(n, depth int) string {
	var b strings.Builder
	b.WriteString("version: 2.1\ncommands:\n")
	for i := range depth {
		fmt.Fprintf(&b, "  c%d: {steps: [c%d, c%d]}\n", i, i+1, i+1)
	}
	fmt.Fprintf(&b, "  c%d:\n    steps:\n      - many:\n", depth)
	for i := range n {
		fmt.Fprintf(&b, "          p%d: v\n", i)
	}
	b.WriteString("  many:\n    parameters:\n")
	for i := range n {
		fmt.Fprintf(&b, "      p%d: {type: string}\n", i)
	}
	b.WriteString("    steps: [{run: \"true\"}]\njobs:\n  a: {docker: [{image: x}], steps: [c0]}\nworkflows:\n  w: {jobs: [a]}\n")
	return b.String()
}

// allocated reports the bytes f allocates on the heap: an upper bound of
// the memory it adds at its peak, which unlike time a busy machine does
// not change.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestLimitsRefuseExpansion runs each report's config through Load,
// Validate and Plan with the default limits: both compilations are
// refused with a message that names the limit, at the construct where it
// was crossed, each having allocated under 64 MB. Validate's garbage is
// garbage by the time Plan runs, so the peak is that of the larger.
func TestLimitsRefuseExpansion(t *testing.T) {
	const maxAlloc = 64 << 20
	tests := []struct {
		name string
		src  string
		want string // file:line:col: message prefix
	}{
		// The step counted past the limit: c22's run, reached through
		// c0 ... c21 for the 200,001st time.
		{"commands invoking the next twice", nestedCommands(22), "c.yml:25:17: plan too large: more than 200000 steps, counting each command and the steps it expands to (limits.max_steps)"},
		// The text that would take it past: c21 doubling 2^21 copies.
		{"string parameter doubled", doubledString(24), "c.yml:65:23: plan too large: more than 67108864 bytes to expand its jobs, commands, executors and parameters (limits.max_bytes)"},
		// The substitution that would take it past, in c16.
		{"steps parameter doubled", doubledSteps(22), "c.yml:53:61: plan too large: more than 67108864 bytes"},
		{"map parameter doubled into a condition", doubledCondition(24), "c.yml:56:50: plan too large: more than 67108864 bytes"},
		// requires: [m0], which makes 10,000 edges for each of m1's
		// instances: the 11th instance crosses.
		{"matrix requiring a matrix", matrices(2, 100, true), "c.yml:15:22: plan too large: more than 100000 requires edges, counting an edge to each instance of a required matrix (limits.max_requires)"},
		// The third matrix: 30,000 jobs.
		{"100 matrices", matrices(100, 100, false), "c.yml:16:9: plan too large: more than 20000 jobs, counting each matrix instance (limits.max_jobs)"},
		// Each invocation binds 30,000 parameters.
		// The arguments of the invocation of many that would take it past.
		{"many arguments to many invocations", manyArguments(15_000, 10), "c.yml:16:11: plan too large: more than 67108864 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c *Config
			var err error
			phases := []struct {
				name string
				run  func() error
			}{
				{"load", func() error { c, err = Load("c.yml", []byte(tt.src), LoadOptions{}); return err }},
				{"validate", func() error { return c.Validate() }},
				{"plan", func() error { _, err := c.Plan(Trigger{Branch: "main"}); return err }},
			}
			total := uint64(0)
			for _, p := range phases {
				var perr error
				n := allocated(func() { perr = p.run() })
				total += n
				if n > maxAlloc {
					t.Errorf("%s allocated %d MB, want under %d MB", p.name, n>>20, maxAlloc>>20)
				}
				switch {
				case p.name == "load" && perr != nil:
					t.Fatalf("load: %v", perr)
				case p.name != "load" && (perr == nil || !strings.HasPrefix(perr.Error(), tt.want)):
					t.Errorf("%s: got %v, want %s", p.name, perr, tt.want)
				}
			}
			t.Logf("%d bytes of config; load, validate and plan allocated %.1f MB", len(tt.src), float64(total)/(1<<20))
		})
	}
}

// nearLimits writes a config whose plan comes close to every default
// limit at once: two matrices of side*(side-1) jobs, each with steps
// commands and env rendered environment variables, and fanIns jobs that
// each require every instance of the first matrix.
func nearLimits(side, steps, env, fanIns int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 2.1\ncommands:\n  c:\n    steps: [{run: \"make test\"}]\njobs:\n  test:\n    parameters: {x: {type: integer}, y: {type: string}}\n    docker: [{image: busybox}]\n    environment:\n")
	for i := range env {
		fmt.Fprintf(&b, "      V%d: \"<< parameters.x >>-<< parameters.y >>\"\n", i)
	}
	fmt.Fprintf(&b, "    steps: [checkout%s]\n", strings.Repeat(", c", steps))
	b.WriteString("  fan-in: {docker: [{image: busybox}], steps: [{run: \"true\"}]}\nworkflows:\n  w:\n    jobs:\n")
	xs := make([]string, side)
	ys := make([]string, side-1)
	for i := range xs {
		xs[i] = fmt.Sprint(i)
	}
	for i := range ys {
		ys[i] = fmt.Sprintf("v%d", i)
	}
	fmt.Fprintf(&b, "      - test: {name: a-<< matrix.x >>-<< matrix.y >>, matrix: {alias: a, parameters: {x: &x [%s], y: &y [%s]}}}\n", strings.Join(xs, ", "), strings.Join(ys, ", "))
	b.WriteString("      - test: {name: b-<< matrix.x >>-<< matrix.y >>, matrix: {alias: b, parameters: {x: *x, y: *y}}}\n")
	for i := range fanIns {
		fmt.Fprintf(&b, "      - fan-in: {name: f%d, requires: [a]}\n", i)
	}
	return b.String()
}

// usage prints what a compilation counted against each limit.
func usage(b *budget) string {
	l := b.limits
	return fmt.Sprintf("%d jobs (%.1f%% of MaxJobs), %d steps (%.1f%%), %d requires edges (%.1f%%), %d bytes (%.1f%%)",
		b.jobs, 100*float64(b.jobs)/float64(l.MaxJobs), b.steps, 100*float64(b.steps)/float64(l.MaxSteps),
		b.requires, 100*float64(b.requires)/float64(l.MaxRequires), b.bytes, 100*float64(b.bytes)/float64(l.MaxBytes))
}

// TestLimitsDefaults validates a config near every default limit at once:
// the defaults admit it, and what it costs is what they let a config cost.
func TestLimitsDefaults(t *testing.T) {
	c, err := Load("c.yml", []byte(nearLimits(100, 4, 3, 10)), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var b *budget
	n := allocated(func() { _, b, err = c.compile(Trigger{Branch: "main"}, true) })
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("validate: %s; allocated %.1f MB, heap grew %.1f MB", usage(b), float64(n)/(1<<20), float64(after.HeapSys-before.HeapSys)/(1<<20))
	for what, f := range map[string]float64{"jobs": float64(b.jobs) / DefaultMaxJobs, "steps": float64(b.steps) / DefaultMaxSteps, "requires": float64(b.requires) / DefaultMaxRequires, "bytes": float64(b.bytes) / DefaultMaxBytes} {
		if f < 0.85 {
			t.Errorf("%s at %.0f%% of its limit: the config should come close to every limit", what, 100*f)
		}
	}
	if n > 200<<20 {
		t.Errorf("allocated %d MB, want under 200 MB", n>>20)
	}
}

// TestLimitsOptions checks that each limit admits a plan exactly at it and
// refuses the next job, step, edge or byte, and that Validate counts
// every workflow where Plan counts those that run.
func TestLimitsOptions(t *testing.T) {
	c, err := Load("c.yml", []byte("version: 2.1\njobs:\n  a: {docker: [{image: x}], steps: [checkout]}\nworkflows:\n  w: {jobs: [a]}\n"), LoadOptions{Limits: Limits{MaxSteps: 7}})
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{MaxJobs: DefaultMaxJobs, MaxSteps: 7, MaxRequires: DefaultMaxRequires, MaxBytes: DefaultMaxBytes}
	if c.limits != want {
		t.Errorf("limits %+v, want %+v: a zero field takes its default", c.limits, want)
	}

	const jobs = "version: 2.1\ncommands:\n  two: {steps: [checkout, checkout]}\njobs:\n  a: {docker: [{image: x}], steps: [checkout, two]}\n  m: {parameters: {p: {type: integer}}, docker: [{image: x}], steps: [checkout]}\n"
	tests := []struct {
		name   string
		limits Limits
		src    string
		want   string // "" when the plan fits
	}{
		{"jobs at the limit", Limits{MaxJobs: 3}, jobs + "workflows:\n  w:\n    jobs: [a, {a: {name: b}}, {a: {name: c}}]\n", ""},
		{"one job more", Limits{MaxJobs: 3}, jobs + "workflows:\n  w:\n    jobs: [a, {a: {name: b}}, {a: {name: c}}, {a: {name: d}}]\n", "c.yml:9:48: plan too large: more than 3 jobs"},
		{"a matrix past the limit", Limits{MaxJobs: 3}, jobs + "workflows:\n  w:\n    jobs:\n      - m: {matrix: {parameters: {p: [1, 2]}}}\n      - m: {matrix: {alias: b, parameters: {p: [3, 4]}}}\n", "c.yml:11:9: plan too large: more than 3 jobs"},
		{"jobs of every workflow", Limits{MaxJobs: 3}, jobs + "workflows:\n  w: {jobs: [a, {a: {name: b}}]}\n  v: {when: false, jobs: [a, {a: {name: b}}]}\n", "c.yml:9:31: plan too large: more than 3 jobs"},
		// checkout, two, and two's two steps: four.
		{"steps at the limit", Limits{MaxSteps: 8}, jobs + "workflows:\n  w:\n    jobs: [a, {a: {name: b}}]\n", ""},
		{"one step more", Limits{MaxSteps: 7}, jobs + "workflows:\n  w:\n    jobs: [a, {a: {name: b}}]\n", "c.yml:3:27: plan too large: more than 7 steps"},
		{"requires at the limit", Limits{MaxRequires: 4}, jobs + "workflows:\n  w:\n    jobs:\n      - m: {matrix: {parameters: {p: [1, 2]}}}\n      - a: {name: b, requires: [m]}\n      - a: {name: c, requires: [m]}\n", ""},
		{"one edge more", Limits{MaxRequires: 4}, jobs + "workflows:\n  w:\n    jobs:\n      - m: {matrix: {parameters: {p: [1, 2]}}}\n      - a: {name: b, requires: [m]}\n      - a: {name: c, requires: [m, b]}\n", "c.yml:12:36: plan too large: more than 4 requires edges"},
		{"bytes", Limits{MaxBytes: 1000}, jobs + "workflows:\n  w:\n    jobs: [a, {a: {name: b}}, {a: {name: c}}, {a: {name: d}}]\n", "c.yml:5:24: plan too large: more than 1000 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load("c.yml", []byte(tt.src), LoadOptions{Limits: tt.limits})
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("validate: %v", err)
			case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
				t.Errorf("validate: got %v, want %s", err, tt.want)
			}
		})
	}

	// Plan compiles only the workflows that run.
	c, err = Load("c.yml", []byte(jobs+"workflows:\n  w: {jobs: [a, {a: {name: b}}]}\n  v: {when: false, jobs: [a, {a: {name: b}}]}\n"), LoadOptions{Limits: Limits{MaxJobs: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Plan(Trigger{Branch: "main"}); err != nil {
		t.Errorf("plan: %v", err)
	}
}

// TestLimitsCorpusHeadroom validates each config of the corpus that slipway
// can load (macOS executors swapped for docker and Windows images for
// Linux ones, as in BenchmarkPlanSnyk)
// and prints what it counts against each default limit: real configs stay
// at a fiftieth of each, or less.
func TestLimitsCorpusHeadroom(t *testing.T) {
	files, _ := filepath.Glob("../../shared/corpus/circleci/configs/*.yml")
	if len(files) == 0 {
		t.Skip("no corpus")
	}
	files = append(files, "../testdata/seed/.circleci/config.yml")
	macos := regexp.MustCompile(`macos:\n(\s*#[^\n]*\n)?\s*xcode: '[^']*'`)
	windows := regexp.MustCompile(`image: windows-[^\s]*`)
	var lines []string
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src = macos.ReplaceAll(src, []byte("docker: [{image: macos-stand-in}]"))
		src = windows.ReplaceAll(src, []byte("image: ubuntu-2204:current"))
		c, err := Load(filepath.Base(f), src, LoadOptions{OrbDirs: []string{"../testdata/orbs"}, AllowMachine: true})
		if err != nil {
			continue // an orb that is not vendored
		}
		_, b, _ := c.compile(Trigger{Branch: "main", Revision: strings.Repeat("0", 40)}, true)
		if b == nil {
			continue
		}
		lines = append(lines, fmt.Sprintf("%-48s %s", filepath.Base(f), usage(b)))
		if b.jobs*50 > b.limits.MaxJobs || b.steps*50 > b.limits.MaxSteps || b.requires*50 > b.limits.MaxRequires || b.bytes*50 > b.limits.MaxBytes {
			t.Errorf("%s comes within a fiftieth of a default limit: %s", filepath.Base(f), usage(b))
		}
	}
	t.Logf("what validating each config counts against the default limits:\n%s", strings.Join(lines, "\n"))
}

// TestMatrixExclusions checks that excluding is linear: half of a
// 10,000-combination matrix excluded by 5,000 entries (and one that
// excludes nothing for naming too few parameters) plans the other half.
func TestMatrixExclusions(t *testing.T) {
	src := matrixExcluding(100, 5000) + "              - {x: 99}\n"
	var plan *Plan
	var err error
	n := allocated(func() {
		var c *Config
		if c, err = Load("c.yml", []byte(src), LoadOptions{}); err == nil {
			plan, err = c.Plan(Trigger{Branch: "main"})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(plan.Workflows[0].Jobs); got != 5000 {
		t.Errorf("%d jobs, want 5000", got)
	}
	if j := plan.Workflows[0].Jobs[0].Name; j != "a-0-50" {
		t.Errorf("first job %s, want a-0-50", j)
	}
	if n > 64<<20 {
		t.Errorf("allocated %d MB, want under 64 MB", n>>20)
	}
}

// TestMatrixManyParameters plans a matrix of one combination over 10,000
// parameters: each combination is built once, not copied as each
// parameter is added.
func TestMatrixManyParameters(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 2.1\njobs:\n  a:\n    parameters:\n")
	for i := range 10_000 {
		fmt.Fprintf(&b, "      p%d: {type: integer}\n", i)
	}
	b.WriteString("    docker: [{image: x}]\n    steps: [checkout]\nworkflows:\n  w:\n    jobs:\n      - a:\n          name: a\n          matrix:\n            parameters:\n")
	for i := range 10_000 {
		fmt.Fprintf(&b, "              p%d: [%d]\n", i, i)
	}
	var plan *Plan
	var err error
	n := allocated(func() {
		var c *Config
		if c, err = Load("c.yml", []byte(b.String()), LoadOptions{}); err == nil {
			plan, err = c.Plan(Trigger{Branch: "main"})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(plan.Workflows[0].Jobs); got != 1 {
		t.Errorf("%d jobs, want 1", got)
	}
	if n > 64<<20 {
		t.Errorf("allocated %d MB, want under 64 MB", n>>20)
	}
}

// TestUnknownArgumentsLinear validates 1,000 entries of a job that
// passes a command its 10,000 parameters and one it does not declare.
// Each entry finds the unknown argument without comparing every argument
// with every parameter; each failed attempt is charged to the budget too,
// which ends the validation after about 50.
func TestUnknownArgumentsLinear(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 2.1\ncommands:\n  many:\n    parameters:\n")
	for i := range 10_000 {
		fmt.Fprintf(&b, "      p%d: {type: string}\n", i)
	}
	b.WriteString("    steps: [checkout]\njobs:\n  a:\n    docker: [{image: x}]\n    steps:\n      - many:\n")
	for i := range 10_000 {
		fmt.Fprintf(&b, "          p%d: v\n", i)
	}
	b.WriteString("          nope: v\nworkflows:\n  w:\n    jobs:\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "      - a: {name: a%d}\n", i)
	}
	c, err := Load("c.yml", []byte(b.String()), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := allocated(func() { err = c.Validate() })
	want := []string{`c.yml:20011:11: command "many" has no parameter "nope"`, "plan too large: more than 67108864 bytes"}
	if err == nil || !strings.HasPrefix(err.Error(), want[0]) || !strings.Contains(err.Error(), want[1]) {
		t.Errorf("got %v, want %s and %s", err, want[0], want[1])
	}
	if n > 64<<20 {
		t.Errorf("allocated %d MB, want under 64 MB", n>>20)
	}
}
