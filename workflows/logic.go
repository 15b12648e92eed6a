package workflows

import (
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// evalCondition evaluates a CircleCI logic statement (the value of a
// workflow's or step's `when`/`unless`): a literal, or a map with one of
// and, or, not, equal, matches. Literals are falsy when false, null, 0,
// NaN or the empty string, truthy otherwise. Where env is given (a
// workflow's when and unless), a string written in the place of a
// condition is an expression (see expr.go), evaluated in env: CircleCI
// made it so in December 2024, when `when: always` stopped being a
// non-empty string. A value that a whole << >> reference put there
// (`when: << pipeline.parameters.target >>`) keeps its literal meaning;
// raw is the condition as written, before interpolation, to tell.
func evalCondition(n, raw *node, env exprEnv) (bool, error) {
	if n.isNull() {
		return false, nil
	}
	switch n.kind {
	case seqNode:
		return len(n.items) > 0, nil
	case scalarNode:
		if strings.Contains(n.value, "<<") && strings.Contains(n.value, ">>") {
			return false, errorf(n, "unsupported expression %q: slipway evaluates expressions written without << >> (when: pipeline.git.branch == \"main\") and logic statements (and, or, not, equal, matches)", n.value)
		}
		if env != nil && isExpression(n) && !wholeReference(raw) {
			return evalExpression(n, "when", env)
		}
		return truthy(n), nil
	}
	if len(n.keys) != 1 {
		return false, errorf(n, "a logic statement has exactly one of and, or, not, equal, matches")
	}
	op, arg := n.keys[0], n.vals[0]
	switch op.value {
	case "and", "or":
		if arg.kind != seqNode {
			return false, errorf(arg, "%s takes a list", op.value)
		}
		for i, it := range arg.items {
			v, err := evalCondition(it, rawItem(raw, op.value, i, len(arg.items)), env)
			if err != nil {
				return false, err
			}
			if op.value == "and" && !v {
				return false, nil
			}
			if op.value == "or" && v {
				return true, nil
			}
		}
		return op.value == "and", nil
	case "not":
		v, err := evalCondition(arg, raw.get("not"), env)
		return !v, err
	case "equal":
		if arg.kind != seqNode || len(arg.items) == 0 {
			return false, errorf(arg, "equal takes a list of values")
		}
		first := arg.items[0].toAny()
		for _, it := range arg.items[1:] {
			if !reflect.DeepEqual(normalize(first), normalize(it.toAny())) {
				return false, nil
			}
		}
		return true, nil
	case "matches":
		pattern, value := arg.get("pattern"), arg.get("value")
		if arg.kind != mapNode || pattern == nil || value == nil || len(arg.keys) != 2 {
			return false, errorf(arg, "matches takes a map with pattern and value")
		}
		re, err := fullMatch(pattern.str())
		if err != nil {
			return false, errorf(pattern, "matches: bad pattern: %v", err)
		}
		return re.MatchString(value.str()), nil
	}
	return false, errorf(op, "unknown logic operator %q (want and, or, not, equal, matches)", op.value)
}

// wholeReference reports whether a scalar as written is one << >>
// reference and nothing else.
func wholeReference(raw *node) bool {
	if raw == nil || raw.kind != scalarNode {
		return false
	}
	locs := references(raw.value, nil)
	return len(locs) == 1 && strings.TrimSpace(raw.value) == raw.value[locs[0][0]:locs[0][1]]
}

// rawItem is item i of the list under op in a condition as written, when
// it has the interpolated list's shape.
func rawItem(raw *node, op string, i, n int) *node {
	l := raw.get(op)
	if l == nil || l.kind != seqNode || len(l.items) != n {
		return nil
	}
	return l.items[i]
}

// isExpression reports whether a condition's scalar is an expression: a
// string, not a YAML 1.1 boolean, a number or an empty string.
func isExpression(n *node) bool {
	if strings.TrimSpace(n.value) == "" {
		return false
	}
	if n.quoted {
		return true
	}
	if _, ok := n.boolValue(); ok {
		return false
	}
	return n.tag == "!!str"
}

// normalize makes 1 and 1.0 equal, as they are in CircleCI's comparisons.
func normalize(v any) any {
	if i, ok := v.(int); ok {
		return float64(i)
	}
	return v
}

func truthy(n *node) bool {
	if n.quoted {
		return n.value != ""
	}
	switch n.tag {
	case "!!null":
		return false
	case "!!bool":
		b, _ := n.boolValue()
		return b
	case "!!int", "!!float":
		f, err := strconv.ParseFloat(n.value, 64)
		return err != nil || (f != 0 && f == f)
	}
	return n.value != ""
}

// fullMatch compiles a pattern that must match a whole string, as
// CircleCI's filters and `matches` do (Java's Matcher.matches).
func fullMatch(pattern string) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + pattern + `)$`)
}
