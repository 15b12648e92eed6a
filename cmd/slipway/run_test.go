package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
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
			output: "hold: rejected by",
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
	ctx, interrupt := context.WithCancel(context.Background())
	defer interrupt()
	errs := &signalWriter{want: "w/slow: started", seen: make(chan struct{})}
	seen := errs.seen
	go func() {
		<-seen
		interrupt()
	}()
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
