package workflows

import (
	"strings"
	"testing"
)

// TestSerialGroup puts each job's serial group, pipeline values
// interpolated as CircleCI does, on its planned job and its spec.
func TestSerialGroup(t *testing.T) {
	src := `version: 2.1
jobs:
  deploy: {docker: [{image: x}], steps: [checkout]}
workflows:
  w:
    jobs:
      - deploy:
          serial-group: << pipeline.project.type >>/deploy-<< pipeline.git.branch >>
      - deploy:
          name: other
`
	c, err := Load("c.yml", []byte(src), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Plan(Trigger{Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	jobs := p.Workflows[0].Jobs
	if jobs[0].SerialGroup != "github/deploy-main" || jobs[0].Spec.SerialGroup != "github/deploy-main" || jobs[1].SerialGroup != "" {
		t.Errorf("serial groups: %q (spec %q), %q", jobs[0].SerialGroup, jobs[0].Spec.SerialGroup, jobs[1].SerialGroup)
	}
}

// TestSetupConfig accepts `setup: true` and marks the plan; a setup
// config runs one workflow for a pipeline.
func TestSetupConfig(t *testing.T) {
	src := `version: 2.1
setup: true
parameters:
  both: {type: boolean, default: false}
jobs:
  generate: {docker: [{image: x}], steps: [checkout]}
workflows:
  setup: {jobs: [generate]}
  other:
    when: pipeline.parameters.both
    jobs: [generate]
`
	c, err := Load("c.yml", []byte(src), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Setup() {
		t.Error("Setup() is false")
	}
	p, err := c.Plan(Trigger{Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Setup || len(p.Workflows) != 1 {
		t.Errorf("plan: setup %v, %d workflows", p.Setup, len(p.Workflows))
	}
	_, err = c.Plan(Trigger{Branch: "main", Parameters: map[string]any{"both": true}})
	if want := "c.yml: a setup config runs one workflow for a pipeline (CircleCI's rule), and 2 would run: setup, other"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("validate: %v", err)
	}
	if c, err = Load("c.yml", []byte(strings.Replace(src, "setup: true", "setup: false", 1)), LoadOptions{}); err != nil || c.Setup() {
		t.Errorf("setup: false: %v, %v", err, c.Setup())
	}
}

func TestProjectSlug(t *testing.T) {
	for url, want := range map[string]string{
		"https://github.com/acme/backend":     "gh/acme/backend",
		"https://github.com/acme/backend.git": "gh/acme/backend",
		"git@github.com:acme/backend.git":     "gh/acme/backend",
		"":                                    "",
		"https://github.com/acme":             "",
	} {
		if got := projectSlug("github", url); got != want {
			t.Errorf("projectSlug(%q) = %q, want %q", url, got, want)
		}
	}
}
