package workflows

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// runCommands plans a push of main and returns the commands of the run
// steps of every job, in order.
func runCommands(t *testing.T, src string, opts LoadOptions) []string {
	t.Helper()
	c, err := Load("c.yml", []byte(src), opts)
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Plan(Trigger{Branch: "main", Revision: strings.Repeat("a", 40)})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, w := range p.Workflows {
		for _, j := range w.Jobs {
			if j.Spec == nil {
				continue
			}
			for _, s := range j.Spec.Steps {
				if s.Run != nil {
					out = append(out, s.Run.Command)
				}
			}
		}
	}
	return out
}

// TestConditionalSections renders CircleCI's mustache sections: <<#
// x >>...<</ x >> is kept when x is true or not empty, <<^ x >>...<</ x
// >> when it is false or empty.
func TestConditionalSections(t *testing.T) {
	issue := `version: 2.1
jobs:
  build:
    docker: [{image: cimg/base:stable}]
    parameters:
      verbose: {type: boolean, default: true}
    steps:
      - run: echo start <<# parameters.verbose >>--verbose<</ parameters.verbose >><<^ parameters.verbose >>--quiet<</ parameters.verbose >>
workflows: {w: {jobs: [build]}}
`
	if got := runCommands(t, issue, LoadOptions{}); !cmp.Equal(got, []string{"echo start --verbose"}) {
		t.Errorf("the issue's job runs %q, want echo start --verbose", got)
	}
	src := `version: 2.1
commands:
  c:
    parameters:
      flag: {type: boolean, default: false}
      name: {type: string, default: ""}
      n: {type: integer, default: 0}
    steps:
      - run: "x<<# parameters.flag >> -f<</ parameters.flag >><<^ parameters.flag >> -F<</ parameters.flag >>"
      - run: "y<<# parameters.name >> --name << parameters.name >><</ parameters.name >><<^parameters.name>> --anonymous<</parameters.name>>"
      - run: "z<<# parameters.flag >><<# parameters.name >> both<</ parameters.name >><</ parameters.flag >>"
      - run: "<<# parameters.name >><< parameters.name >><</ parameters.name >>"
jobs:
  build:
    docker: [{image: x}]
    steps:
      - c
      - c: {flag: true, name: api}
workflows: {w: {jobs: [build]}}
`
	want := []string{"x -F", "y --anonymous", "z", "", "x -f", "y --name api", "z both", "api"}
	if got := runCommands(t, src, LoadOptions{}); !cmp.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestConditionalSectionErrors(t *testing.T) {
	tests := []struct{ name, run, want string }{
		{"unclosed", "echo <<# parameters.v >>x", "<<# parameters.v >> is never closed by <</ parameters.v >>"},
		{"stray close", "echo x<</ parameters.v >>", "<</ parameters.v >> closes no section"},
		{"crossed", "<<# parameters.v >><<^ parameters.w >><</ parameters.v >><</ parameters.w >>", "<</ parameters.v >> closes no section"},
		{"unknown parameter", "<<# parameters.nope >>x<</ parameters.nope >>", "job \"a\" has no parameter \"nope\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "version: 2.1\njobs:\n  a:\n    parameters: {v: {type: boolean, default: true}, w: {type: string, default: \"\"}}\n    docker: [{image: x}]\n    steps: [{run: '" + tt.run + "'}]\nworkflows: {w: {jobs: [a]}}\n"
			c, err := Load("c.yml", []byte(src), LoadOptions{})
			if err == nil {
				err = c.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "c.yml:6:") {
				t.Errorf("got %v, want an error at line 6 with %q", err, tt.want)
			}
		})
	}
}

// TestEscapedInterpolation: \<< is CircleCI's literal <<, never
// interpolated; the backslash goes.
func TestEscapedInterpolation(t *testing.T) {
	src := `version: 2.1
jobs:
  build:
    parameters:
      x: {type: string, default: value}
    docker: [{image: x}]
    steps:
      - run: |
          cat \<<EOF
          << parameters.x >>
          EOF
      - run: echo "\<< parameters.x >>"
      - run: cat \<<\EOF
      - run: echo "a \<< b << parameters.x >>"
workflows: {w: {jobs: [build]}}
`
	want := []string{"cat <<EOF\nvalue\nEOF\n", `echo "<< parameters.x >>"`, `cat <<\EOF`, `echo "a << b value"`}
	if got := runCommands(t, src, LoadOptions{}); !cmp.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// TestPackedAndUnpackedOrbsRenderAlike loads one orb as `circleci orb
// pack` writes it (included scripts with << escaped as \<<) and as its
// src/ folder: the jobs that use them must run the same commands.
func TestPackedAndUnpackedOrbsRenderAlike(t *testing.T) {
	script := "#!/bin/bash\ncat <<EOF > /tmp/out\nhello ${NAME}\nEOF\necho '<< not a parameter >>' '<< parameters.name >>'\n"
	packed := `version: 2.1
commands:
  greet:
    parameters:
      name: {type: string, default: world}
      loud: {type: boolean, default: false}
    steps:
      - run:
          environment:
            NAME: << parameters.name >>
          command: |
            ` + strings.ReplaceAll(strings.ReplaceAll(strings.TrimSuffix(script, "\n"), "<<", `\<<`), "\n", "\n            ") + `
      - run: echo done<<# parameters.loud >>!<</ parameters.loud >>
`
	dir := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("packed/ns/greeter.yml", packed)
	write("unpacked/ns/greeter/src/@orb.yml", "version: 2.1\n")
	write("unpacked/ns/greeter/src/scripts/greet.sh", script)
	write("unpacked/ns/greeter/src/commands/greet.yml", `parameters:
  name: {type: string, default: world}
  loud: {type: boolean, default: false}
steps:
  - run:
      environment:
        NAME: << parameters.name >>
      command: <<include(scripts/greet.sh)>>
  - run: echo done<<# parameters.loud >>!<</ parameters.loud >>
`)
	cfg := `version: 2.1
orbs:
  g: ns/greeter@1.0.0
jobs:
  a:
    docker: [{image: x}]
    steps: [g/greet, {g/greet: {loud: true}}]
workflows: {w: {jobs: [a]}}
`
	fromPacked := runCommands(t, cfg, LoadOptions{OrbDirs: []string{filepath.Join(dir, "packed")}})
	fromSrc := runCommands(t, cfg, LoadOptions{OrbDirs: []string{filepath.Join(dir, "unpacked")}})
	if diff := cmp.Diff(fromPacked, fromSrc); diff != "" {
		t.Errorf("packed and unpacked orbs differ (-packed +src):\n%s", diff)
	}
	want := []string{script, "echo done", script, "echo done!"}
	if diff := cmp.Diff(want, fromSrc); diff != "" {
		t.Errorf("unpacked orb runs (-want +got):\n%s", diff)
	}
}
