package workflows_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway/orbregistry"
	"github.com/slipway-ci/slipway/orbregistry/registrytest"
	"github.com/slipway-ci/slipway/workflows"
)

// TestCorpus runs every real config of the shared corpus through Load,
// Validate and Plan (a push of main), with the orbs the configs use
// served by a fake orb registry (testdata/orbregistry: stand-ins with
// the commands, jobs and parameters the configs use, not the real
// orbs). Each file's outcome — valid with its plan's size, or the exact
// thing slipway refuses — is pinned in testdata/golden/corpus.txt; run
// with -v to see the table.
func TestCorpus(t *testing.T) {
	dir := "../../shared/corpus/circleci/configs"
	files, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
	if len(files) == 0 {
		t.Skipf("no corpus at %s", dir)
	}
	reg := registrytest.New(t, registrytest.Dir(t, "../testdata/orbregistry"))
	client := orbregistry.New(reg.URL, orbregistry.Options{})
	var b strings.Builder
	valid := 0
	for _, f := range files {
		name := filepath.Base(f)
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s: %s\n", name, corpusOutcome(name, src, client, &valid))
		checkRefusals(t, name, src, client)
	}
	t.Logf("corpus outcomes:\n%s", b.String())
	t.Logf("%d of %d corpus configs validate and plan; the others name what slipway refuses", valid, len(files))
	checkGoldenText(t, "corpus.txt", b.String())
}

// refusals are the reasons a corpus config may fail for, with machine
// jobs enabled: the hosts slipway cannot provide, and the features it
// names as not supported.
var refusals = regexp.MustCompile(`uses the macos executor|uses the Windows machine image|windows is not supported|is not supported|declared inline and empty`)

// checkRefusals holds every problem of a config, not only the first, to
// the reasons a config may be refused for.
func checkRefusals(t *testing.T, name string, src []byte, reg workflows.OrbRegistry) {
	t.Helper()
	c, err := workflows.LoadContext(context.Background(), name, src, workflows.LoadOptions{Registry: reg, AllowMachine: true})
	if err == nil {
		err = c.Validate()
	}
	if err == nil {
		return
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if !refusals.MatchString(line) {
			t.Errorf("%s fails for something other than a host slipway lacks or a feature it names:\n  %s", name, line)
		}
	}
}

func corpusOutcome(name string, src []byte, reg workflows.OrbRegistry, valid *int) string {
	out, ok := planCorpusFile(name, src, reg, false)
	if ok {
		*valid++
		return out
	}
	// Say also what enabling machine jobs changes.
	if m, _ := planCorpusFile(name, src, reg, true); m != out {
		return out + "\n    with machine jobs enabled: " + m
	}
	return out
}

func planCorpusFile(name string, src []byte, reg workflows.OrbRegistry, machine bool) (string, bool) {
	c, err := workflows.LoadContext(context.Background(), name, src, workflows.LoadOptions{Registry: reg, AllowMachine: machine})
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		lines := strings.Split(err.Error(), "\n")
		if len(lines) > 1 {
			return fmt.Sprintf("%s (and %d more)", lines[0], len(lines)-1), false
		}
		return lines[0], false
	}
	plan, err := c.Plan(workflows.Trigger{Branch: "main", Revision: strings.Repeat("a", 40)})
	if err != nil {
		return "plan: " + err.Error(), false
	}
	jobs := 0
	for _, w := range plan.Workflows {
		jobs += len(w.Jobs)
	}
	setup := ""
	if plan.Setup {
		setup = " (a setup config)"
	}
	return fmt.Sprintf("valid%s; a push to main plans %d workflows, %d jobs", setup, len(plan.Workflows), jobs), true
}

func checkGoldenText(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("..", "testdata", "golden", name)
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./workflows -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs:\nwant:\n%s\ngot:\n%s", path, want, got)
	}
}
