package workflows

import (
	"strings"
	"testing"
)

// TestErrors checks that bad configs fail with the right message at the
// right position, and never with a panic.
func TestErrors(t *testing.T) {
	const head = "version: 2.1\njobs:\n  a:\n    docker: [{image: x}]\n    steps: [{run: \"true\"}]\n"
	tests := []struct {
		name string
		src  string
		want string // file:line:col: message prefix
	}{
		{"not a map", "- a\n", "c.yml:1:1: a config is a map"},
		{"no version", "jobs: {}\n", "c.yml:1:1: missing version"},
		{"bad version", "version: 3\n", "c.yml:1:10: unsupported version \"3\""},
		{"unknown top-level key", "version: 2.1\nfoo: bar\n", "c.yml:2:1: unknown top-level key \"foo\""},
		{"yaml syntax", "version: 2.1\njobs: [\n", "c.yml:2:1: yaml: did not find expected node content"},
		{"duplicate key", "version: 2.1\nversion: 2\n", "c.yml:2:1: key \"version\" is defined twice"},
		{"setup in 2.0", "version: 2\nsetup: true\n", "c.yml:2:1: setup: true needs version 2.1"},
		{"orbs in 2.0", "version: 2\norbs: {}\n", "c.yml:2:1: orbs needs version 2.1"},
		{"missing orb", "version: 2.1\norbs:\n  node: circleci/node@5.0.2\n", "c.yml:3:9: orb circleci/node@5.0.2 can be neither vendored nor fetched: it is not vendored and no orb registry is configured; vendor it with `slipway orb vendor <config>`"},
		{"unknown builtin", "version: 2.1\norbs:\n  x: slipway/gcp@1\n", "c.yml:3:6: unknown built-in orb slipway/gcp"},
		{"macos", "version: 2.1\njobs:\n  a:\n    macos: {xcode: 15}\n    steps: [checkout]\nworkflows:\n  w:\n    jobs: [a]\n", "c.yml:4:5: job \"a\" uses the macos executor"},
		{"machine not enabled", "version: 2.1\njobs:\n  a:\n    machine: true\n    steps: [checkout]\nworkflows:\n  w:\n    jobs: [a]\n", "c.yml:4:5: job \"a\" uses the machine executor, which this server does not enable"},
		{"unknown job", head + "workflows:\n  w:\n    jobs: [b]\n", "c.yml:8:12: workflow invokes unknown job \"b\""},
		{"unknown requires", head + "workflows:\n  w:\n    jobs:\n      - a:\n          requires: [zz]\n", "c.yml:10:22: job \"a\" requires \"zz\""},
		{"cycle", head + "  b:\n    docker: [{image: x}]\n    steps: [checkout]\nworkflows:\n  w:\n    jobs:\n      - a: {requires: [b]}\n      - b: {requires: [a]}\n", "c.yml:13:24: workflow \"w\" has a cycle: a -> b -> a"},
		{"bad status", head + "workflows:\n  w:\n    jobs:\n      - a\n      - a:\n          name: a2\n          requires: [{a: done}]\n", "c.yml:12:26: requires \"a\": unknown status \"done\""},
		{"unknown step", "version: 2.1\njobs:\n  a:\n    docker: [{image: x}]\n    steps: [frobnicate]\nworkflows:\n  w:\n    jobs: [a]\n", "c.yml:5:13: unknown step or command \"frobnicate\""},
		{"unknown job key", "version: 2.1\njobs:\n  a:\n    docker: [{image: x}]\n    steps: [checkout]\n    colour: red\nworkflows:\n  w:\n    jobs: [a]\n", "c.yml:6:5: job \"a\": unknown key \"colour\""},
		{"missing required parameter", "version: 2.1\njobs:\n  a:\n    parameters: {v: {type: string}}\n    docker: [{image: x}]\n    steps: [checkout]\nworkflows:\n  w:\n    jobs: [a]\n", "c.yml:9:12: job \"a\": missing required parameter \"v\""},
		{"bad enum", "version: 2.1\njobs:\n  a:\n    parameters: {v: {type: enum, enum: [x, y]}}\n    docker: [{image: x}]\n    steps: [checkout]\nworkflows:\n  w:\n    jobs: [{a: {v: z}}]\n", "c.yml:9:20: parameter \"v\" must be one of x, y, got \"z\""},
		{"bad boolean", "version: 2.1\njobs:\n  a:\n    parameters: {v: {type: boolean}}\n    docker: [{image: x}]\n    steps: [checkout]\nworkflows:\n  w:\n    jobs: [{a: {v: maybe}}]\n", "c.yml:9:20: parameter \"v\" is a boolean, got \"maybe\""},
		{"bad integer", "version: 2.1\njobs:\n  a:\n    parameters: {v: {type: integer}}\n    docker: [{image: x}]\n    steps: [checkout]\nworkflows:\n  w:\n    jobs: [{a: {v: \"2\"}}]\n", "c.yml:9:20: parameter \"v\" is an integer"},
		{"unknown argument", head + "workflows:\n  w:\n    jobs: [{a: {v: 1}}]\n", "c.yml:8:17: job \"a\" has no parameter \"v\""},
		{"undeclared reference", "version: 2.1\njobs:\n  a:\n    docker: [{image: x}]\n    steps: [{run: \"echo << parameters.nope >>\"}]\nworkflows:\n  w:\n    jobs: [a]\n", "c.yml:5:19: job \"a\" has no parameter \"nope\""},
		{"unknown pipeline value", "version: 2.1\njobs:\n  a:\n    docker: [{image: x}]\n    steps: [{run: \"echo << pipeline.nope >>\"}]\nworkflows:\n  w:\n    jobs: [a]\n", "c.yml:5:19: unknown pipeline value pipeline.nope"},
		{"recursive command", "version: 2.1\ncommands:\n  loop:\n    steps: [loop]\njobs:\n  a:\n    docker: [{image: x}]\n    steps: [loop]\nworkflows:\n  w:\n    jobs: [a]\n", "commands nested more than 50 deep"},
		{"serial-group", head + "workflows:\n  w:\n    jobs:\n      - a:\n          serial-group: deploy group\n", "c.yml:10:25: job \"a\": serial-group \"deploy group\": a group's name is letters, digits and . - _ /"},
		{"pull request filter", head + "workflows:\n  w:\n    jobs:\n      - a:\n          filters:\n            pull_requests: {only: [a], mapping: x}\n", "c.yml:11:40: filter: unknown key \"mapping\""},
		{"expression condition", head + "workflows:\n  w:\n    when: << pipeline.git.branch == \"main\" >>\n    jobs: [a]\n", "c.yml:8:11: unsupported expression"},
		{"unknown logic", head + "workflows:\n  w:\n    when: {xor: [a, b]}\n    jobs: [a]\n", "c.yml:8:12: unknown logic operator \"xor\""},
		{"duplicate names", head + "workflows:\n  w:\n    jobs:\n      - a\n      - a\n      - a: {name: a-1}\n", "c.yml:11:9: workflow \"w\" has two jobs named \"a-1\""},
		{"alias bomb", "version: 2.1\na: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n", "config too large after expanding aliases"},
		{"large config without aliases", "version: 2.1\nx: [" + strings.Repeat("1,", 200_000) + "]\n", "c.yml:2:399995: config too large: over 200000 values (keys, scalars, lists and maps) in one file"},
		{"config over a megabyte", "version: 2.1\n" + strings.Repeat("# padding\n", 110_000), "c.yml: config too large: 1100013 bytes, over the limit of 1048576 bytes (1 MB) for one file"},
		{"no workflows", "version: 2.1\njobs:\n  a:\n    docker: [{image: x}]\n    steps: [checkout]\n", "c.yml:1:1: no workflows"},
		{"unknown pipeline parameter default missing", "version: 2.1\nparameters:\n  p: {type: string}\n" + head[13:] + "workflows:\n  w:\n    jobs: [a]\n", "c.yml:3:3: pipeline parameter \"p\" has no default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load("c.yml", []byte(tt.src), LoadOptions{OrbDirs: []string{t.TempDir()}})
			if err == nil {
				err = c.Validate()
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n  %v\nwant it to contain:\n  %s", err, tt.want)
			}
		})
	}
}

func TestTriggerParameters(t *testing.T) {
	src := "version: 2.1\nparameters:\n  n: {type: integer, default: 1}\n  e: {type: enum, enum: [a, b], default: a}\njobs:\n  a:\n    docker: [{image: x}]\n    steps: [checkout]\nworkflows:\n  w:\n    jobs: [a]\n"
	c, err := Load("c.yml", []byte(src), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"unknown", map[string]any{"zz": "1"}, `unknown pipeline parameter "zz"`},
		{"not an integer", map[string]any{"n": "many"}, `parameter "n" is an integer, got "many"`},
		{"not in enum", map[string]any{"e": "c"}, `parameter "e" must be one of a, b, got "c"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Plan(Trigger{Branch: "main", Parameters: tt.params})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := c.Plan(Trigger{Branch: "main", Parameters: map[string]any{"n": "3", "e": "b"}}); err != nil {
		t.Errorf("valid parameters: %v", err)
	}
}
