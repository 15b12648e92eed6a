package workflows

import (
	"slices"
	"strconv"
	"strings"

	"github.com/slipway-ci/slipway/internal/lazyre"
)

// paramSpec is one declared parameter of a job, command, executor or the
// pipeline.
type paramSpec struct {
	name string
	typ  string // string, boolean, integer, enum, executor, steps, env_var_name
	def  *node  // nil when required
	enum []string
	at   *node
}

var envVarName = lazyre.New(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// parseParamSpecs reads a `parameters:` map.
func parseParamSpecs(n *node) ([]*paramSpec, error) {
	if n.isNull() {
		return nil, nil
	}
	if n.kind != mapNode {
		return nil, errorf(n, "parameters must be a map, not %s", n.kind)
	}
	specs := make([]*paramSpec, 0, len(n.keys))
	for i, k := range n.keys {
		v := n.vals[i]
		if v.kind != mapNode {
			return nil, errorf(v, "parameter %q must be a map with a type", k.value)
		}
		p := &paramSpec{name: k.value, at: k}
		if err := checkKeys(v, "parameter", "parameter "+strconv.Quote(k.value)); err != nil {
			return nil, err
		}
		for j, pk := range v.keys {
			pv := v.vals[j]
			switch pk.value {
			case "type":
				p.typ = pv.str()
			case "default":
				p.def = pv
			case "enum":
				if pv.kind != seqNode {
					return nil, errorf(pv, "parameter %q: enum must be a list", k.value)
				}
				for _, e := range pv.items {
					p.enum = append(p.enum, e.str())
				}
			}
		}
		switch p.typ {
		case "string", "boolean", "integer", "executor", "steps", "env_var_name":
		case "enum":
			if len(p.enum) == 0 {
				return nil, errorf(k, "parameter %q: enum type needs an enum list", k.value)
			}
		case "":
			return nil, errorf(k, "parameter %q has no type", k.value)
		default:
			return nil, errorf(v.get("type"), "parameter %q: unknown type %q", k.value, p.typ)
		}
		if p.def != nil && !p.def.isNull() {
			if err := p.check(p.def); err != nil {
				return nil, err
			}
		}
		specs = append(specs, p)
	}
	return specs, nil
}

// check validates a value against the parameter's type.
func (p *paramSpec) check(v *node) error {
	switch p.typ {
	case "string":
		if v.kind != scalarNode {
			return errorf(v, "parameter %q is a string, got %s", p.name, v.kind)
		}
	case "boolean":
		if _, ok := v.boolValue(); !ok {
			return errorf(v, "parameter %q is a boolean, got %q", p.name, v.str())
		}
	case "integer":
		if _, ok := v.intValue(); !ok {
			return errorf(v, "parameter %q is an integer, got %q", p.name, v.str())
		}
	case "enum":
		if v.kind != scalarNode || !slices.Contains(p.enum, v.str()) {
			return errorf(v, "parameter %q must be one of %s, got %q", p.name, strings.Join(p.enum, ", "), v.str())
		}
	case "env_var_name":
		if v.kind != scalarNode || !envVarName.MatchString(v.str()) {
			return errorf(v, "parameter %q must be an environment variable name, got %q", p.name, v.str())
		}
	case "executor":
		if v.kind != scalarNode && v.kind != mapNode {
			return errorf(v, "parameter %q is an executor (a name or a map), got %s", p.name, v.kind)
		}
	case "steps":
		if v.kind != seqNode && !v.isNull() {
			return errorf(v, "parameter %q is a list of steps, got %s", p.name, v.kind)
		}
	}
	return nil
}

// bindParams matches the arguments of an invocation against the
// declarations. args maps argument names to values; keys lists the
// argument key nodes for positions. Unknown arguments and missing required
// ones are errors.
func bindParams(b *budget, what string, at *node, specs []*paramSpec, args map[string]*node, argKeys map[string]*node) (map[string]*node, error) {
	// Each invocation binds every declared parameter.
	if err := b.addBytes(len(specs)*entryBytes, at); err != nil {
		return nil, err
	}
	known := 0
	for _, p := range specs {
		if _, ok := argKeys[p.name]; ok {
			known++
		}
	}
	if known < len(argKeys) {
		// Report the first unknown argument in the file.
		declared := make(map[string]bool, len(specs))
		for _, p := range specs {
			declared[p.name] = true
		}
		var first *node
		for name, k := range argKeys {
			if !declared[name] && (first == nil || before(k, first)) {
				first = k
			}
		}
		return nil, errorf(first, "%s has no parameter %q", what, first.value)
	}
	out := make(map[string]*node, len(specs))
	for _, p := range specs {
		v, ok := args[p.name]
		if !ok || v == nil {
			if p.def == nil {
				if p.typ == "steps" {
					v = &node{kind: seqNode, file: at.file, line: at.line, col: at.col}
				} else {
					return nil, errorf(at, "%s: missing required parameter %q", what, p.name)
				}
			} else {
				v = p.def
			}
		}
		if p.typ == "steps" && v.isNull() {
			v = &node{kind: seqNode, file: v.file, line: v.line, col: v.col}
		}
		if err := p.check(v); err != nil {
			return nil, err
		}
		out[p.name] = v
	}
	return out, nil
}

// references finds, left to right, the references in s: `<<
// parameters.x >>`, `<< pipeline.git.branch >>` and `<< matrix.x >>`,
// which is to say the matches of
//
//	<<\s*(parameters|pipeline|matrix)\.([A-Za-z0-9_.\-]+)\s*>>
//
// Other `<< ... >>` text (shell heredocs, say) is left alone, and so is
// an escaped `\<<`. Each match
// is appended to locs as regexp's FindAllStringSubmatchIndex gives it:
// the match, the namespace, the name. It is written out rather than left
// to the regexp package, which allocates for each string searched: a
// matrix interpolates its entry once per instance.
func references(s string, locs [][6]int) [][6]int {
	for i := 0; ; {
		j := strings.Index(s[i:], "<<")
		if j < 0 {
			return locs
		}
		if escapedAt(s, i+j) {
			i += j + 2
		} else if loc, ok := referenceAt(s, i+j); ok {
			locs = append(locs, loc)
			i = loc[1]
		} else {
			i += j + 1
		}
	}
}

// referenceAt matches a reference that starts at s[start:], which begins
// with <<. The name's characters are neither spaces nor '>', so the
// longest name is the only one that can be followed by the closing >>.
func referenceAt(s string, start int) ([6]int, bool) {
	ns, name, end, ok := referenceBody(s, skipSpace(s, start+2))
	if !ok {
		return [6]int{}, false
	}
	return [6]int{start, end, ns[0], ns[1], name[0], name[1]}, true
}

// referenceBody matches what follows << (and spaces) in a reference or a
// section tag, from s[p:]: a namespace, a dot, a name, spaces and >>. It
// returns where the namespace and name are and where the >> ends.
func referenceBody(s string, p int) (ns, name [2]int, end int, ok bool) {
	var n string
	for _, c := range [...]string{"parameters", "pipeline", "matrix"} {
		if strings.HasPrefix(s[p:], c) && len(s) > p+len(c) && s[p+len(c)] == '.' {
			n = c
			break
		}
	}
	if n == "" {
		return ns, name, 0, false
	}
	nameStart := p + len(n) + 1
	q := nameStart
	for q < len(s) && isNameByte(s[q]) {
		q++
	}
	if q == nameStart {
		return ns, name, 0, false
	}
	e := skipSpace(s, q)
	if !strings.HasPrefix(s[e:], ">>") {
		return ns, name, 0, false
	}
	return [2]int{p, p + len(n)}, [2]int{nameStart, q}, e + 2, true
}

// skipSpace skips what \s matches: tab, newline, form feed, carriage
// return and space.
func skipSpace(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case '\t', '\n', '\f', '\r', ' ':
			i++
		default:
			return i
		}
	}
	return i
}

func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-'
}

// vars resolves the references of one interpolation scope.
type vars struct {
	params   map[string]*node // nil outside a parameterised element
	pipeline map[string]*node
	matrix   map[string]*node // nil outside a matrix entry
	what     string           // "job build", for messages
	budget   *budget          // charged for every value expanded
}

func (v *vars) lookup(ns, name string, at *node) (*node, error) {
	switch ns {
	case "parameters":
		if v.params == nil {
			return nil, errorf(at, "<< parameters.%s >> used outside a job, command or executor with parameters", name)
		}
		if p, ok := v.params[name]; ok {
			return p, nil
		}
		return nil, errorf(at, "%s has no parameter %q", v.what, name)
	case "pipeline":
		if p, ok := v.pipeline[name]; ok {
			return p, nil
		}
		return nil, errorf(at, "unknown pipeline value pipeline.%s", name)
	default:
		if v.matrix == nil {
			return nil, errorf(at, "<< matrix.%s >> used outside a matrix job", name)
		}
		if p, ok := v.matrix[name]; ok {
			return p, nil
		}
		return nil, errorf(at, "matrix has no parameter %q", name)
	}
}

// interpolate returns a copy of n with references substituted. A scalar
// that is exactly one reference becomes the referenced value itself, so
// that booleans stay booleans and `steps` parameters splice lists; a
// reference inside longer text becomes text.
func (v *vars) interpolate(n *node) (*node, error) {
	if n == nil {
		return nil, nil
	}
	if err := v.budget.addBytes(valueBytes, n); err != nil {
		return nil, err
	}
	// Copy on write: a subtree without references is shared, not copied.
	switch n.kind {
	case mapNode:
		var c *node
		for i := range n.keys {
			k, err := v.interpolate(n.keys[i])
			if err != nil {
				return nil, err
			}
			if k.kind != scalarNode {
				return nil, errorf(n.keys[i], "a map key cannot be replaced by %s", k.kind)
			}
			val, err := v.interpolate(n.vals[i])
			if err != nil {
				return nil, err
			}
			if c == nil && (k != n.keys[i] || val != n.vals[i]) {
				if err := v.budget.addBytes(nodeBytes+16*len(n.keys), n); err != nil {
					return nil, err
				}
				cp := *n
				cp.keys = append([]*node(nil), n.keys...)
				cp.vals = append([]*node(nil), n.vals...)
				c = &cp
			}
			if c != nil {
				c.keys[i], c.vals[i] = k, val
			}
		}
		if c == nil {
			return n, nil
		}
		return c, nil
	case seqNode:
		var c *node
		for i, it := range n.items {
			r, err := v.interpolate(it)
			if err != nil {
				return nil, err
			}
			if c == nil && r != it {
				if err := v.budget.addBytes(nodeBytes+8*len(n.items), n); err != nil {
					return nil, err
				}
				cp := *n
				cp.items = append([]*node(nil), n.items...)
				c = &cp
			}
			if c != nil {
				c.items[i] = r
			}
		}
		if c == nil {
			return n, nil
		}
		return c, nil
	}
	if !strings.Contains(n.value, "<<") {
		return n, nil
	}
	s := n.value
	if hasSection(s) {
		var err error
		if s, err = v.sections(n); err != nil {
			return nil, err
		}
	}
	escaped := strings.Contains(s, `\<<`)
	var locBuf [4][6]int
	locs := references(s, locBuf[:0])
	if len(locs) == 0 && !escaped && s == n.value {
		return n, nil
	}
	if len(locs) == 1 && !escaped && strings.TrimSpace(s) == s[locs[0][0]:locs[0][1]] {
		val, err := v.lookup(s[locs[0][2]:locs[0][3]], s[locs[0][4]:locs[0][5]], n)
		if err != nil {
			return nil, err
		}
		if val.kind != scalarNode {
			if err := v.budget.addValue(val, n); err != nil {
				return nil, err
			}
		}
		return val, nil
	}
	// Look the values up and charge the text before building it.
	var buf [4]*node
	vals := buf[:0]
	size := len(s)
	for _, loc := range locs {
		val, err := v.lookup(s[loc[2]:loc[3]], s[loc[4]:loc[5]], n)
		if err != nil {
			return nil, err
		}
		if val.kind != scalarNode {
			return nil, errorf(n, "%s is %s and cannot be placed inside text", s[loc[0]:loc[1]], val.kind)
		}
		vals = append(vals, val)
		size += len(val.str()) - (loc[1] - loc[0])
	}
	if err := v.budget.addBytes(nodeBytes+size, n); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.Grow(size)
	last := 0
	for i, loc := range locs {
		b.WriteString(unescape(s[last:loc[0]]))
		b.WriteString(vals[i].str())
		last = loc[1]
	}
	b.WriteString(unescape(s[last:]))
	c := *n
	c.value = b.String()
	c.tag = "!!str"
	c.quoted = true
	return &c, nil
}

// before reports whether a comes before b in the file.
func before(a, b *node) bool {
	return a.line < b.line || a.line == b.line && a.col < b.col
}

// typedScalar makes a node for a value given outside YAML (a command-line
// parameter, a trigger value), typed as YAML would type its plain text.
func typedScalar(v any) *node {
	switch x := v.(type) {
	case bool:
		return &node{kind: scalarNode, value: strconv.FormatBool(x), tag: "!!bool"}
	case int:
		return &node{kind: scalarNode, value: strconv.Itoa(x), tag: "!!int"}
	case string:
		n := &node{kind: scalarNode, value: x, tag: "!!str"}
		if _, ok := n.boolValue(); ok {
			n.tag = "!!bool"
		} else if _, ok := n.intValue(); ok {
			n.tag = "!!int"
		}
		return n
	case nil:
		return &node{kind: scalarNode, tag: "!!null"}
	}
	return &node{kind: scalarNode, value: "", tag: "!!str"}
}
