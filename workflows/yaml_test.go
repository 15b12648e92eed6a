package workflows

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMergeKeys(t *testing.T) {
	src := `
base: &base {a: 1, b: 1, c: 1}
env: &env {b: 2, d: 2}
first: &first {c: 3}
repeated:
  <<: *base
  <<: *env
  d: own
listed:
  <<: [*first, *base]
redefined: &base {a: 9}
after: *base
`
	n, _, err := parseYAML("m.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	got := n.toAny().(map[string]any)
	want := map[string]any{
		// Later << override earlier ones; the map's own keys win.
		"repeated": map[string]any{"a": 1, "b": 2, "c": 1, "d": "own"},
		// Within one list, the first map listed wins.
		"listed": map[string]any{"a": 1, "b": 1, "c": 3},
		// A redefined anchor applies from its new definition on.
		"after": map[string]any{"a": 9},
	}
	for k, w := range want {
		if diff := cmp.Diff(w, got[k]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", k, diff)
		}
	}
}

// TestCorpusYAML parses the corpus files that repeat `<<` keys in one map
// and redefine anchors, which stricter loaders reject.
func TestCorpusYAML(t *testing.T) {
	for _, f := range []string{"ethereum__solidity.yml", "gruntwork-io__terragrunt.yml"} {
		src, err := os.ReadFile("../../shared/corpus/circleci/configs/" + f)
		if err != nil {
			t.Skipf("corpus: %v", err)
		}
		if _, _, err := parseYAML(f, src); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestYAML11Booleans(t *testing.T) {
	for _, v := range []string{"yes", "on", "true", "True", "y"} {
		n := &node{kind: scalarNode, value: v, tag: "!!str"}
		if b, ok := n.boolValue(); !ok || !b {
			t.Errorf("%q: got %v %v, want true", v, b, ok)
		}
	}
	q := &node{kind: scalarNode, value: "yes", tag: "!!str", quoted: true}
	if _, ok := q.boolValue(); ok {
		t.Error(`quoted "yes" read as a boolean`)
	}
}
