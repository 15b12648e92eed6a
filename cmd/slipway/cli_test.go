package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidate(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("version: 2.1\njobs:\n  a:\n    macos: {xcode: 15}\n    steps: [checkout]\nworkflows:\n  w:\n    jobs: [a]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		args      []string
		code      int
		out, errs string
	}{
		{"valid", []string{"validate", "../../testdata/seed/.circleci/config.yml"}, 0, "config.yml: valid", ""},
		{"invalid", []string{"validate", bad}, 1, "", bad + ":4:5: job \"a\" uses the macos executor"},
		{"missing file", []string{"validate", "nope.yml"}, 1, "", "nope.yml"},
		{"no file", []string{"validate"}, 2, "", "usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runMain(t, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errs, tt.errs) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q", code, out, errs, tt.code, tt.out, tt.errs)
			}
		})
	}
}

// TestPlanJSON checks the --json shape other programs rely on.
func TestPlanJSON(t *testing.T) {
	code, out, errs := runMain(t, "plan", "../../testdata/seed/.circleci/config.yml", "--branch", "main", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got struct {
		Workflows []struct {
			Name string
			Jobs []map[string]json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Workflows) != 1 || len(got.Workflows[0].Jobs) != 12 {
		t.Fatalf("want 1 workflow of 12 jobs, got %s", out)
	}
	for _, j := range got.Workflows[0].Jobs {
		var keys []string
		for k := range j {
			keys = append(keys, k)
		}
		if len(keys) != 5 || j["name"] == nil || j["job"] == nil || j["type"] == nil || j["requires"] == nil || j["context"] == nil {
			t.Errorf("job has keys %v, want exactly name, job, type, requires, context", keys)
		}
	}
	if !strings.Contains(out, `"type": "approval"`) {
		t.Error("the seed's approval job is missing from the plan")
	}
}

func TestPlanText(t *testing.T) {
	code, out, _ := runMain(t, "plan", "../../testdata/seed/.circleci/config.yml", "--branch", "feature/x")
	want := "workflow build-test-deploy\n  build\n  test after build\n"
	if code != 0 || out != want {
		t.Errorf("exit %d, got:\n%s\nwant:\n%s", code, out, want)
	}
	if code, _, errs := runMain(t, "plan", "../../testdata/seed/.circleci/config.yml"); code != 2 || !strings.Contains(errs, "--branch and --tag") {
		t.Errorf("no trigger: exit %d, %s", code, errs)
	}
}
