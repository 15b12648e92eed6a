package workflows

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// BenchmarkPlanSnyk loads, compiles and plans the largest corpus file
// (snyk/cli, 70 KB, 2,145 lines). Its macOS executors are swapped for a
// docker image and its Windows machine images for a Linux one, since
// slipway refuses macOS and Windows jobs and would stop there.
func BenchmarkPlanSnyk(b *testing.B) {
	src, err := os.ReadFile("../../shared/corpus/circleci/configs/snyk__cli.yml")
	if err != nil {
		b.Skipf("corpus: %v", err)
	}
	macos := regexp.MustCompile(`macos:\n(\s*#[^\n]*\n)?\s*xcode: '[^']*'`)
	src = macos.ReplaceAll(src, []byte("docker: [{image: macos-stand-in}]"))
	src = regexp.MustCompile(`image: windows-[^\s]*`).ReplaceAll(src, []byte("image: ubuntu-2204:current"))
	opts := LoadOptions{OrbDirs: []string{"../testdata/orbs"}, AllowMachine: true}
	t := Trigger{Branch: "main", Revision: strings.Repeat("a", 40)}
	benchPlan(b, src, opts, t)
}

// BenchmarkPlanSeed loads, compiles and plans the seed pipeline for a
// push of main, the path every webhook of the product takes.
func BenchmarkPlanSeed(b *testing.B) {
	src, err := os.ReadFile("../testdata/seed/.circleci/config.yml")
	if err != nil {
		b.Fatal(err)
	}
	benchPlan(b, src, LoadOptions{}, Trigger{Branch: "main", Revision: strings.Repeat("a", 40)})
}

// BenchmarkPlanMatrix2000 plans a workflow whose matrix expands to 2,000
// jobs, each with a parameterised executor, a command and a fan-in.
func BenchmarkPlanMatrix2000(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`version: 2.1
executors:
  e:
    parameters: {tag: {type: string}}
    docker: [{image: "busybox:<< parameters.tag >>"}]
commands:
  say:
    parameters: {what: {type: string}}
    steps: [{run: "echo << parameters.what >>"}]
jobs:
  build:
    docker: [{image: busybox}]
    steps: [checkout]
  test:
    parameters:
      a: {type: integer}
      b: {type: string}
    executor: {name: e, tag: "<< parameters.b >>"}
    steps:
      - checkout
      - say: {what: "<< parameters.a >>-<< parameters.b >>"}
workflows:
  w:
    jobs:
      - build
      - test:
          requires: [build]
          matrix:
            parameters:
              a: [`)
	for i := range 40 {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprint(&sb, i)
	}
	sb.WriteString("]\n              b: [")
	for i := range 50 {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "v%d", i)
	}
	sb.WriteString("]\n      - build:\n          name: fan-in\n          requires: [test]\n")
	benchPlan(b, []byte(sb.String()), LoadOptions{}, Trigger{Branch: "main"})
}

func benchPlan(b *testing.B, src []byte, opts LoadOptions, t Trigger) {
	b.Helper()
	b.ReportAllocs()
	jobs := 0
	for b.Loop() {
		c, err := Load("bench.yml", src, opts)
		if err != nil {
			b.Fatal(err)
		}
		plan, err := c.Plan(t)
		if err != nil {
			b.Fatal(err)
		}
		jobs = 0
		for _, w := range plan.Workflows {
			jobs += len(w.Jobs)
		}
	}
	b.ReportMetric(float64(jobs), "jobs")
}
