package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRun(t *testing.T) {
	failing := filepath.Join(t.TempDir(), "failing.yml")
	if err := os.WriteFile(failing, []byte(`version: 2.1
jobs:
  ok:
    machine: true
    steps: [{run: "true"}]
  broken:
    machine: true
    steps: [{run: "exit 3"}]
workflows:
  w:
    jobs:
      - broken
      - ok
      - ok:
          name: after-broken
          requires: [broken]
      - ok:
          name: on-failure
          requires: [{broken: failed}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	all := func(status string, jobs ...string) []runJob {
		var out []runJob
		for _, j := range jobs {
			out = append(out, runJob{Name: j, Status: status})
		}
		return out
	}
	built := all("success", "compile", "unit", "lint", "package")
	tests := []struct {
		name   string
		args   []string
		stdin  string
		code   int
		want   runOutput
		output string // a part of the progress lines
	}{
		{
			name: "approved by flag", args: []string{"testdata/run.yml", "--approve"}, code: 0,
			want: runOutput{Workflows: []runWorkflow{{Name: "build", Status: "success",
				Jobs: append(append(built, runJob{"hold", "success"}), runJob{"release", "success"})}}},
			output: "build/release: success",
		},
		{
			name: "approved on the terminal", args: []string{"testdata/run.yml"}, stdin: "y\n", code: 0,
			want: runOutput{Workflows: []runWorkflow{{Name: "build", Status: "success",
				Jobs: append(append(built, runJob{"hold", "success"}), runJob{"release", "success"})}}},
			output: "hold is waiting for approval. Approve? [y/N]",
		},
		{
			name: "rejected by flag", args: []string{"testdata/run.yml", "--reject"}, code: 1,
			want: runOutput{Workflows: []runWorkflow{{Name: "build", Status: "canceled",
				Jobs: append(append(built, runJob{"hold", "canceled"}), runJob{"release", "not_run"})}}},
			output: "hold: Rejected by",
		},
		{
			name: "nobody answers", args: []string{"testdata/run.yml"}, code: 1,
			want: runOutput{Workflows: []runWorkflow{{Name: "build", Status: "on_hold",
				Jobs: append(append(built, runJob{"hold", "blocked"}), runJob{"release", "blocked"})}}},
			output: "build/hold: on hold",
		},
		{
			name: "a failing job", args: []string{failing}, code: 1,
			want: runOutput{Workflows: []runWorkflow{{Name: "w", Status: "failed", Jobs: []runJob{
				{"broken", "failed"}, {"ok", "success"}, {"after-broken", "not_run"}, {"on-failure", "success"}}}}},
			output: "w/broken: failed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"run", "--allow-machine", "--branch", "main", "--json"}, tt.args...)
			var out, errs bytes.Buffer
			code := Main(context.Background(), args, strings.NewReader(tt.stdin), &out, &errs)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, errs.String())
			}
			var got runOutput
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("stdout is not the JSON outcome: %v\n%s", err, out.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
			if !strings.Contains(errs.String(), tt.output) {
				t.Errorf("progress lacks %q:\n%s", tt.output, errs.String())
			}
		})
	}
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		errs string
	}{
		{"no file", []string{"run"}, "usage: slipway run"},
		{"approve and reject", []string{"run", "testdata/run.yml", "--approve", "--reject"}, "usage: slipway run"},
		{"unknown executor", []string{"run", "testdata/run.yml", "--executor", "kubernetes"}, `executor "kubernetes" is not available`},
		{"no such repository", []string{"run", "testdata/run.yml", "--repo", "/nonexistent"}, "--repo /nonexistent is not a folder"},
		{"no such commit", []string{"run", "testdata/run.yml", "--sha", "0123456789abcdef"}, "--sha 0123456789abcdef is not a commit of"},
		{"a parameter without a value", []string{"run", "testdata/run.yml", "--allow-machine", "--param", "env"}, `--param "env": want key=value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := runMain(t, tt.args...)
			if code != 2 || !strings.Contains(errs, tt.errs) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errs, tt.errs)
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	code, _, errs := runMain(t, "run", "--help")
	if code != 0 || !strings.Contains(errs, "-repo") {
		t.Errorf("exit %d, stderr %q; want 0 and the flags", code, errs)
	}
}

// --sha, --tag and --param reach the pipeline: checkout copies the commit
// --sha names, CIRCLE_SHA1 and CIRCLE_TAG say it, tag filters and
// parameters decide what runs.
func TestRunTriggerFlags(t *testing.T) {
	repo := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	for _, v := range []string{"one", "two"} {
		if err := os.WriteFile(filepath.Join(repo, "version"), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		git("add", ".")
		git("commit", "-qm", v)
	}
	first := git("rev-parse", "HEAD~1")
	config := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(config, []byte(`version: 2.1
parameters:
  greeting: {type: string, default: hello}
  extra: {type: boolean, default: false}
jobs:
  show:
    machine: true
    steps:
      - checkout
      - run: echo "version=$(cat version) sha=$CIRCLE_SHA1 tag=${CIRCLE_TAG:-none} greeting=<< pipeline.parameters.greeting >>"
workflows:
  w:
    jobs:
      - show:
          filters: {tags: {only: /^v.*/}}
  extra:
    when: << pipeline.parameters.extra >>
    jobs:
      - show:
          filters: {tags: {only: /.*/}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string // in the log
		wfs  []string
	}{
		{"the head of the branch", []string{"--branch", "main"}, "version=two sha=" + git("rev-parse", "HEAD") + " tag=none greeting=hello", []string{"w"}},
		{"an earlier commit", []string{"--branch", "main", "--sha", first[:10]}, "version=one sha=" + first + " tag=none", []string{"w"}},
		{"a tag and parameters", []string{"--tag", "v1.0", "--param", "greeting=hi", "--param", "extra=true"}, "tag=v1.0 greeting=hi", []string{"w", "extra"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"run", config, "--repo", repo, "--allow-machine", "--logs", "--json"}, tt.args...)
			code, out, errs := runMain(t, args...)
			if code != 0 || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d; want 0 and a log with %q:\n%s", code, tt.want, errs)
			}
			var got runOutput
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("stdout is not the JSON outcome: %v\n%s", err, out)
			}
			var names []string
			for _, w := range got.Workflows {
				names = append(names, w.Name)
			}
			if diff := cmp.Diff(tt.wfs, names); diff != "" {
				t.Errorf("workflows (-want +got):\n%s", diff)
			}
		})
	}
}

// Ctrl-C at the approval prompt cancels the pipeline, as it does while a
// job runs.
func TestRunInterruptedAtThePrompt(t *testing.T) {
	ctx, errs := interruptOn(t, "Approve? [y/N]")
	stdin, _ := io.Pipe() // a terminal nobody types into
	var out bytes.Buffer
	code := Main(ctx, []string{"run", "testdata/run.yml", "--allow-machine", "--branch", "main", "--json"}, stdin, &out, errs)
	if code != 1 {
		t.Errorf("exit %d, want 1; stderr:\n%s", code, errs.String())
	}
	var got runOutput
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("stdout is not the JSON outcome: %v\n%s", err, out.String())
	}
	if len(got.Workflows) != 1 || got.Workflows[0].Status != "canceled" {
		t.Errorf("outcome %+v, want the workflow canceled\n%s", got, errs.String())
	}
}

// interruptOn returns a context that ends (Ctrl-C) once a line with want
// is written to errs.
func interruptOn(t *testing.T, want string) (context.Context, *signalWriter) {
	ctx, interrupt := context.WithCancel(context.Background())
	t.Cleanup(interrupt)
	errs := &signalWriter{want: want, seen: make(chan struct{})}
	seen := errs.seen
	go func() {
		select {
		case <-seen:
			interrupt()
		case <-ctx.Done():
		}
	}()
	return ctx, errs
}

// signalWriter is a terminal that tells when a line containing want has
// been printed.
type signalWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if w.seen != nil && strings.Contains(w.buf.String(), w.want) {
		close(w.seen)
		w.seen = nil
	}
	return n, err
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// Ctrl-C (the command's context ending) cancels the pipeline: the
// running job is stopped, what waits behind it never runs, and the
// outcome still reaches stdout.
func TestRunInterrupted(t *testing.T) {
	config := filepath.Join(t.TempDir(), "slow.yml")
	if err := os.WriteFile(config, []byte(`version: 2.1
jobs:
  slow:
    machine: true
    steps: [{run: "echo started sleeping; sleep 60"}]
workflows:
  w:
    jobs:
      - slow
      - slow:
          name: after
          requires: [slow]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, errs := interruptOn(t, "w/slow: started")
	var out bytes.Buffer
	start := time.Now()
	code := Main(ctx, []string{"run", config, "--allow-machine", "--branch", "main", "--json"}, strings.NewReader(""), &out, errs)
	if code != 1 {
		t.Errorf("exit %d, want 1; stderr:\n%s", code, errs.String())
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("took %s: the sleeping job was not stopped", took)
	}
	var got runOutput
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("stdout is not the JSON outcome: %v\n%s", err, out.String())
	}
	want := runOutput{Workflows: []runWorkflow{{Name: "w", Status: "canceled", Jobs: []runJob{{"slow", "canceled"}, {"after", "canceled"}}}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcome (-want +got):\n%s\nprogress:\n%s", diff, errs.String())
	}
}
