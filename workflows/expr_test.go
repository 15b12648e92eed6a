package workflows

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExpressions(t *testing.T) {
	env := func(name string) (exprValue, bool) {
		v, ok := map[string]exprValue{
			"pipeline.git.branch":            {"main"},
			"pipeline.git.tag":               {"release-1.2"},
			"pipeline.number":                {int64(42)},
			"pipeline.parameters.run-it":     {true},
			"pipeline.parameters.empty":      {""},
			"pipeline.trigger.type":          {},
			"pipeline.parameters.escaped\\x": {},
		}[name]
		return v, ok
	}
	tests := []struct {
		expr string
		want bool
		err  string // the error's message and column
	}{
		{`pipeline.git.branch == "main"`, true, ""},
		{`pipeline.git.branch == "main" or pipeline.git.tag starts-with "release"`, true, ""},
		{`pipeline.git.branch != "main" or pipeline.git.tag starts-with "v"`, false, ""},
		{`not (pipeline.trigger.type starts-with "api")`, true, ""},
		{`pipeline.trigger.type == pipeline.trigger.type`, false, ""},
		{`pipeline.trigger.type != pipeline.trigger.type`, false, ""},
		{`pipeline.trigger.type or true`, true, ""},
		{`true or false and false`, true, ""},    // and binds tighter
		{`(true or false) and false`, false, ""}, // parentheses
		{`not true == false`, true, ""},          // not binds tightest: (not true) == false
		{`pipeline.number > 40 and pipeline.number <= 42`, true, ""},
		{`pipeline.number >= 43`, false, ""},
		{`1 < 2 == true`, true, ""},
		{`pipeline.parameters.run-it`, true, ""},
		{`pipeline.parameters.empty`, false, ""},
		{`"say \"hi\" \\ " == "say \"hi\" \\ "`, true, ""},
		{`pipeline.git.tag matches /release-[0-9.]+/`, true, ""},
		{`pipeline.git.tag matches /release/`, false, ""}, // the whole string
		{`42 == "42"`, false, ""},
		{`pipeline.git.brnch == "main"`, false, "unknown variable pipeline.git.brnch (expressions see pipeline values and pipeline.parameters) (at column 1"},
		{`pipeline.git.branch = "main"`, false, "a lone = (compare with ==) (at column 21"},
		{`pipeline.git.branch == "main`, false, "a string that is never closed (at column 24"},
		{`(pipeline.git.branch == "main"`, false, "( at column 1 is never closed (at column 31"},
		{`pipeline.git.branch == "main" pipeline.git.tag`, false, "unexpected pipeline.git.tag after a whole expression (at column 31"},
		{`pipeline.number starts-with "4"`, false, "starts-with compares strings (at column 17"},
		{`pipeline.git.branch > 1`, false, "> compares numbers (at column 21"},
		{`and`, false, "expected a value, not and (at column 1"},
		{`pipeline.git.tag matches "x"`, false, "matches takes a /pattern/ on its right (at column 26"},
		{`a # b`, false, "unexpected character '#' (at column 3"},
		{strings.Repeat("(", 101) + "true" + strings.Repeat(")", 101), false, "nested more than 100 deep (at column 101"},
		{strings.Repeat("not ", 101) + "true", false, "nested more than 100 deep (at column 401"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			n := &node{kind: scalarNode, value: tt.expr, tag: "!!str", file: "c.yml", line: 3, col: 10}
			got, err := evalExpression(n, "filters", env)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, %v, want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %v, %v, want %v", got, err, tt.want)
			}
		})
	}
}

// TestExpressionFiltersAndWhen runs the configs: a job's filters
// and a workflow's when as expressions over pipeline values and
// parameters, and pull request filters read and ignored on a push.
func TestExpressionFiltersAndWhen(t *testing.T) {
	src := `version: 2.1
parameters:
  nightly: {type: boolean, default: false}
jobs:
  a: {docker: [{image: x}], steps: [checkout]}
workflows:
  ci:
    when: not pipeline.parameters.nightly and not (pipeline.trigger.type starts-with "api")
    jobs:
      - a:
          name: everywhere
      - a:
          name: main-or-release
          filters: pipeline.git.branch == "main" or pipeline.git.tag starts-with "release"
      - a:
          name: not-main
          filters: 'pipeline.git.branch != "main"'
      - a:
          name: branches-not-prs
          filters:
            branches: {only: main}
            pull_requests: {ignore: /.*/}
  nightly:
    when: pipeline.parameters.nightly == true
    jobs: [a]
  chat:
    # A value put there by a whole reference keeps its literal meaning.
    when: << pipeline.deploy.environment >>
    jobs: [a]
`
	plan := func(t Trigger) map[string][]string {
		c, err := Load("c.yml", []byte(src), LoadOptions{})
		if err != nil {
			panic(err)
		}
		p, err := c.Plan(t)
		if err != nil {
			panic(err)
		}
		out := map[string][]string{}
		for _, w := range p.Workflows {
			for _, j := range w.Jobs {
				out[w.Name] = append(out[w.Name], j.Name)
			}
		}
		return out
	}
	for name, tt := range map[string]struct {
		t    Trigger
		want map[string][]string
	}{
		"main":        {Trigger{Branch: "main"}, map[string][]string{"ci": {"everywhere", "main-or-release", "branches-not-prs"}}},
		"feature":     {Trigger{Branch: "feature/x"}, map[string][]string{"ci": {"everywhere", "not-main"}}},
		"release tag": {Trigger{Tag: "release-2"}, map[string][]string{"ci": {"main-or-release", "not-main"}}},
		"nightly":     {Trigger{Branch: "main", Parameters: map[string]any{"nightly": "true"}}, map[string][]string{"nightly": {"a"}}},
		"chat deploy": {Trigger{Branch: "x", Deploy: &DeployValues{Environment: "e"}}, map[string][]string{"ci": {"everywhere", "main-or-release", "not-main", "branches-not-prs"}, "chat": {"a"}}},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, plan(tt.t)); diff != "" {
				t.Errorf("planned (-want +got):\n%s", diff)
			}
		})
	}
	// An expression's error points at its column in the file.
	bad := strings.Replace(src, `pipeline.git.branch == "main" or`, `pipeline.git.brunch == "main" or`, 1)
	c, err := Load("c.yml", []byte(bad), LoadOptions{})
	if err == nil {
		err = c.Validate()
	}
	if want := `c.yml:14:20: filters: expression "pipeline.git.brunch == \"main\" or pipeline.git.tag starts-with \"release\"": unknown variable pipeline.git.brunch`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v\nwant %s", err, want)
	}
	bad = strings.Replace(src, `'pipeline.git.branch != "main"'`, `'pipeline.git.branch ! "main"'`, 1)
	if c, err = Load("c.yml", []byte(bad), LoadOptions{}); err == nil {
		err = c.Validate()
	}
	if want := `c.yml:17:41: filters: expression "pipeline.git.branch ! \"main\"": a lone ! (negate with not) (at column 21 of the expression)`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// FuzzExpression: any text is an expression or an error at a column of
// it, never a panic.
func FuzzExpression(f *testing.F) {
	for _, s := range []string{`pipeline.git.branch == "main" or pipeline.git.tag starts-with "release"`, `not (a starts-with "api")`,
		`x matches /a\/b/`, `1 < 2 == true and "\"" != "\\"`, `((`} {
		f.Add(s)
	}
	env := pipelineEnv(map[string]*node{"git.branch": scalar("main", nil), "number": typedScalar(3)})
	f.Fuzz(func(t *testing.T, src string) {
		e, err := parseExpr(src)
		if err != nil {
			if ee, ok := err.(*exprError); !ok || ee.pos < 0 || ee.pos > len(src) {
				t.Fatalf("%q: error %v", src, err)
			}
			return
		}
		if _, err := e.eval(env); err != nil {
			if ee, ok := err.(*exprError); !ok || ee.pos < 0 || ee.pos > len(src) {
				t.Fatalf("%q: error %v", src, err)
			}
		}
	})
}
