package workflows

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenJob is a planned job with its compiled spec, so that golden files
// pin down compilation as well as planning.
type goldenJob struct {
	*PlannedJob
	Spec *JobSpec `json:"spec,omitempty"`
}

type goldenWorkflow struct {
	Name string      `json:"name"`
	Jobs []goldenJob `json:"jobs"`
}

func loadFile(t testing.TB, path string, opts LoadOptions) *Config {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if opts.OrbDirs == nil {
		opts.OrbDirs = []string{"../testdata/orbs"}
	}
	c, err := Load(filepath.Base(path), src, opts)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	return c
}

// checkGolden compares got, as indented JSON, with testdata/golden/name.
func checkGolden(t *testing.T, name string, got any) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	path := filepath.Join("..", "testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./workflows -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(b)); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}

func TestPlanGolden(t *testing.T) {
	const sha = "3f2a9c1d5e6f708192a3b4c5d6e7f8091a2b3c4d"
	corpus := "../../shared/corpus/circleci/configs/"
	tests := []struct {
		name    string
		config  string
		opts    LoadOptions
		trigger Trigger
	}{
		{"seed-feature", "../testdata/seed/.circleci/config.yml", LoadOptions{}, Trigger{Branch: "feature/login", Revision: sha}},
		{"seed-main", "../testdata/seed/.circleci/config.yml", LoadOptions{}, Trigger{Branch: "main", Revision: sha}},
		{"matrix", "../testdata/configs/matrix.yml", LoadOptions{}, Trigger{Branch: "main", Revision: sha}},
		{"filters-main", "../testdata/configs/filters.yml", LoadOptions{}, Trigger{Branch: "main", Revision: sha}},
		{"filters-wip", "../testdata/configs/filters.yml", LoadOptions{}, Trigger{Branch: "wip/x", Revision: sha}},
		{"filters-tag-release", "../testdata/configs/filters.yml", LoadOptions{}, Trigger{Tag: "v1.4.2", Revision: sha}},
		{"filters-tag-other", "../testdata/configs/filters.yml", LoadOptions{}, Trigger{Tag: "nightly", Revision: sha}},
		{"conditions-default", "../testdata/configs/conditions.yml", LoadOptions{}, Trigger{Branch: "release/2", Revision: sha, Parameters: map[string]any{"target": "production", "retries": "5"}}},
		{"conditions-nightly", "../testdata/configs/conditions.yml", LoadOptions{}, Trigger{Branch: "main", Revision: sha, Parameters: map[string]any{"run-nightly": "true"}}},
		{"conditions-chat-deploy", "../testdata/configs/conditions.yml", LoadOptions{}, Trigger{Branch: "main", Revision: sha, Source: "chat", Deploy: &DeployValues{Environment: "production", Version: sha, Rollback: true}}},
		{"orbs", "../testdata/configs/orbs.yml", LoadOptions{}, Trigger{Branch: "main", Revision: sha}},
		{"numpy-main", corpus + "numpy__numpy.yml", LoadOptions{}, Trigger{Branch: "main", Revision: sha}},
		{"vue-dev", corpus + "vuejs__vue.yml", LoadOptions{}, Trigger{Branch: "dev", Revision: sha}},
		{"astropy-main", corpus + "astropy__astropy.yml", LoadOptions{}, Trigger{Branch: "main", Revision: sha}},
		{"terratest-tag", corpus + "gruntwork-io__terratest.yml", LoadOptions{AllowMachine: true}, Trigger{Tag: "v0.40.0", Revision: sha}},
		{"kubo-main", corpus + "ipfs__kubo__main.yml", LoadOptions{AllowMachine: true}, Trigger{Branch: "master", Revision: sha}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.HasPrefix(tt.config, corpus) {
				if _, err := os.Stat(tt.config); err != nil {
					t.Skipf("no corpus: %v", err)
				}
			}
			plan, err := loadFile(t, tt.config, tt.opts).Plan(tt.trigger)
			if err != nil {
				t.Fatal(err)
			}
			// The plan's own JSON is the interface other programs read.
			checkGolden(t, tt.name+".plan.json", plan)
			var full []goldenWorkflow
			for _, wf := range plan.Workflows {
				gw := goldenWorkflow{Name: wf.Name}
				for _, j := range wf.Jobs {
					gw.Jobs = append(gw.Jobs, goldenJob{PlannedJob: j, Spec: j.Spec})
				}
				full = append(full, gw)
			}
			checkGolden(t, tt.name+".compiled.json", full)
		})
	}
}
