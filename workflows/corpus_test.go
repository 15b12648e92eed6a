package workflows

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCorpus runs every real config of the shared corpus through Load,
// Validate and Plan (a push of main). Each file's outcome — valid with its
// plan's size, or the exact thing slipway lacks — is pinned in
// testdata/golden/corpus.txt; run with -v to see the table.
func TestCorpus(t *testing.T) {
	dir := "../../shared/corpus/circleci/configs"
	files, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
	if len(files) == 0 {
		t.Skipf("no corpus at %s", dir)
	}
	var b strings.Builder
	valid := 0
	for _, f := range files {
		name := filepath.Base(f)
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s: %s\n", name, corpusOutcome(name, src, &valid))
	}
	t.Logf("corpus outcomes:\n%s", b.String())
	t.Logf("%d of %d corpus configs validate and plan; the others name what slipway lacks", valid, len(files))
	checkGoldenText(t, "corpus.txt", b.String())
}

func corpusOutcome(name string, src []byte, valid *int) string {
	out, ok := planCorpusFile(name, src, false)
	if ok {
		*valid++
		return out
	}
	// Say also whether enabling machine jobs is all the file needs.
	if m, ok := planCorpusFile(name, src, true); ok {
		return out + "\n    with machine jobs enabled: " + m
	}
	return out
}

func planCorpusFile(name string, src []byte, machine bool) (string, bool) {
	c, err := Load(name, src, LoadOptions{OrbDirs: []string{"../testdata/orbs"}, AllowMachine: machine})
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
	plan, err := c.Plan(Trigger{Branch: "main", Revision: strings.Repeat("a", 40)})
	if err != nil {
		return "plan: " + err.Error(), false
	}
	jobs := 0
	for _, w := range plan.Workflows {
		jobs += len(w.Jobs)
	}
	return fmt.Sprintf("valid; a push to main plans %d workflows, %d jobs", len(plan.Workflows), jobs), true
}

func checkGoldenText(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("..", "testdata", "golden", name)
	if *update {
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
