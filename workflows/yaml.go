package workflows

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// node is a YAML value after aliases and merge keys are resolved. It keeps
// the position of the text it came from so that every error can name a
// line and column, even deep inside a parameter substituted elsewhere.
type node struct {
	kind   nodeKind
	value  string // scalar text
	tag    string // resolved scalar tag: !!str, !!int, !!bool, !!float, !!null
	quoted bool   // a quoted scalar is always a string
	keys   []*node
	vals   []*node
	items  []*node
	file   string
	line   int
	col    int
}

type nodeKind int

const (
	scalarNode nodeKind = iota
	mapNode
	seqNode
)

func (k nodeKind) String() string {
	switch k {
	case mapNode:
		return "a map"
	case seqNode:
		return "a list"
	}
	return "a scalar"
}

// maxNodes bounds the tree that alias expansion may build (the largest
// real config in the corpus expands to under 6,000 values), so that a
// "billion laughs" file is an error rather than an out-of-memory kill.
const maxNodes = 200_000

// maxSource bounds a file's size before it is parsed: the YAML parser
// allocates about 80 bytes for each byte of a file, all of it before the
// first node is counted. The largest config of the corpus is 70 KB; a
// file of a megabyte holds about as many values as maxNodes allows.
const maxSource = 1 << 20

// parseYAML reads one YAML document into a resolved node tree. It also
// returns the top-level keys whose values define anchors: files keep shared
// snippets under keys like `aliases:` or `defaults:` that CircleCI ignores.
func parseYAML(file string, src []byte) (*node, map[string]bool, error) {
	if len(src) > maxSource {
		return nil, nil, &Error{File: file, Msg: fmt.Sprintf("config too large: %d bytes, over the limit of %d bytes (1 MB) for one file", len(src), maxSource)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, &Error{File: file, Msg: "empty config"}
		}
		return nil, nil, yamlError(file, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil, &Error{File: file, Msg: "empty config"}
	}
	top := doc.Content[0]
	anchored := map[string]bool{}
	if top.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(top.Content); i += 2 {
			if hasAnchor(top.Content[i+1], 0) {
				anchored[top.Content[i].Value] = true
			}
		}
	}
	r := resolver{file: file}
	n, err := r.convert(top, 0)
	if err != nil {
		return nil, nil, err
	}
	return n, anchored, nil
}

func hasAnchor(y *yaml.Node, depth int) bool {
	if y.Anchor != "" {
		return true
	}
	if y.Kind == yaml.AliasNode || depth > 100 {
		return false
	}
	for _, c := range y.Content {
		if hasAnchor(c, depth+1) {
			return true
		}
	}
	return false
}

// yamlError turns the YAML library's "yaml: line N: msg" into a positioned
// Error.
func yamlError(file string, err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ":"); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				line = n
				msg = strings.TrimSpace(rest[i+1:])
			}
		}
	}
	if line == 0 {
		return &Error{File: file, Msg: "yaml: " + msg}
	}
	return &Error{File: file, Line: line, Col: 1, Msg: "yaml: " + msg}
}

type resolver struct {
	file    string
	count   int // values made
	copies  int // of which made by expanding aliases
	inAlias int // depth of alias expansion
}

func (r *resolver) errorf(n *yaml.Node, format string, args ...any) error {
	return &Error{File: r.file, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)}
}

func (r *resolver) convert(y *yaml.Node, depth int) (*node, error) {
	n, err := r.convert1(y, depth)
	if n != nil {
		n.file = r.file
	}
	return n, err
}

func (r *resolver) convert1(y *yaml.Node, depth int) (*node, error) {
	r.count++
	if r.inAlias > 0 {
		r.copies++
	}
	if r.count > maxNodes {
		if r.copies == 0 {
			return nil, r.errorf(y, "config too large: over %d values (keys, scalars, lists and maps) in one file", maxNodes)
		}
		return nil, r.errorf(y, "config too large after expanding aliases: over %d values, %d of them copies that aliases made", maxNodes, r.copies)
	}
	if depth > 200 {
		return nil, r.errorf(y, "config nested too deeply")
	}
	switch y.Kind {
	case yaml.AliasNode:
		if y.Alias == nil {
			return nil, r.errorf(y, "unknown alias %q", y.Value)
		}
		r.inAlias++
		n, err := r.convert(y.Alias, depth+1)
		r.inAlias--
		return n, err
	case yaml.DocumentNode:
		if len(y.Content) == 0 {
			return &node{kind: scalarNode, tag: "!!null", line: y.Line, col: y.Column}, nil
		}
		return r.convert(y.Content[0], depth+1)
	case yaml.ScalarNode:
		return &node{
			kind:   scalarNode,
			value:  y.Value,
			tag:    y.ShortTag(),
			quoted: y.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0,
			line:   y.Line,
			col:    y.Column,
		}, nil
	case yaml.SequenceNode:
		n := &node{kind: seqNode, line: y.Line, col: y.Column, items: make([]*node, 0, len(y.Content))}
		for _, c := range y.Content {
			item, err := r.convert(c, depth+1)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, item)
		}
		return n, nil
	case yaml.MappingNode:
		return r.mapping(y, depth)
	}
	return nil, r.errorf(y, "unexpected YAML node")
}

// mapping converts a mapping, applying merge keys. Real configs repeat `<<`
// in one mapping (`<<: *defaults` then `<<: *env`); like PyYAML, which
// CircleCI's behaviour matches, later merges override earlier ones, within
// one `<<: [*a, *b]` the first listed wins, and the mapping's own keys
// override everything merged.
func (r *resolver) mapping(y *yaml.Node, depth int) (*node, error) {
	n := &node{kind: mapNode, file: r.file, line: y.Line, col: y.Column}
	var merged []*node // mapping nodes, in increasing precedence
	own := map[string]bool{}
	for i := 0; i+1 < len(y.Content); i += 2 {
		ky, vy := y.Content[i], y.Content[i+1]
		if ky.Kind == yaml.ScalarNode && ky.ShortTag() == "!!merge" {
			v, err := r.convert(vy, depth+1)
			if err != nil {
				return nil, err
			}
			switch v.kind {
			case mapNode:
				merged = append(merged, v)
			case seqNode:
				for j := len(v.items) - 1; j >= 0; j-- {
					if v.items[j].kind != mapNode {
						return nil, &Error{File: r.file, Line: v.items[j].line, Col: v.items[j].col, Msg: "merge key << needs maps to merge"}
					}
					merged = append(merged, v.items[j])
				}
			default:
				return nil, r.errorf(vy, "merge key << needs a map or a list of maps")
			}
			continue
		}
		k, err := r.convert(ky, depth+1)
		if err != nil {
			return nil, err
		}
		if k.kind != scalarNode {
			return nil, r.errorf(ky, "map keys must be scalars")
		}
		if own[k.value] {
			return nil, r.errorf(ky, "key %q is defined twice in this map", k.value)
		}
		own[k.value] = true
		v, err := r.convert(vy, depth+1)
		if err != nil {
			return nil, err
		}
		n.keys = append(n.keys, k)
		n.vals = append(n.vals, v)
	}
	if len(merged) == 0 {
		return n, nil
	}
	// Merged keys come first, in the order first seen; overrides replace
	// values in place.
	out := &node{kind: mapNode, file: r.file, line: n.line, col: n.col}
	index := map[string]int{}
	put := func(k, v *node) {
		if i, ok := index[k.value]; ok {
			out.vals[i] = v
			return
		}
		index[k.value] = len(out.keys)
		out.keys = append(out.keys, k)
		out.vals = append(out.vals, v)
	}
	for _, m := range merged {
		for i := range m.keys {
			put(m.keys[i], m.vals[i])
		}
	}
	for i := range n.keys {
		put(n.keys[i], n.vals[i])
	}
	return out, nil
}

// get returns the value of key in a map node, or nil.
func (n *node) get(key string) *node {
	if n == nil || n.kind != mapNode {
		return nil
	}
	for i, k := range n.keys {
		if k.value == key {
			return n.vals[i]
		}
	}
	return nil
}

// keyNode returns the key node of key in a map node, or nil.
func (n *node) keyNode(key string) *node {
	if n == nil || n.kind != mapNode {
		return nil
	}
	for _, k := range n.keys {
		if k.value == key {
			return k
		}
	}
	return nil
}

func (n *node) isNull() bool {
	return n == nil || (n.kind == scalarNode && n.tag == "!!null")
}

// boolValue reads a boolean, accepting YAML 1.1's spellings (yes, on, ...)
// that CircleCI configs use where a boolean is expected.
func (n *node) boolValue() (bool, bool) {
	if n == nil || n.kind != scalarNode {
		return false, false
	}
	if n.quoted {
		return false, false
	}
	switch strings.ToLower(n.value) {
	case "true", "yes", "y", "on":
		return true, true
	case "false", "no", "n", "off":
		return false, true
	}
	return false, false
}

func (n *node) intValue() (int, bool) {
	if n == nil || n.kind != scalarNode || n.quoted {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(n.value, "_", ""), 0, 64)
	if err != nil || v != int64(int(v)) {
		return 0, false
	}
	return int(v), true
}

// str returns a scalar's text; null is the empty string.
func (n *node) str() string {
	if n == nil || n.tag == "!!null" {
		return ""
	}
	return n.value
}

// clone copies a tree so that substitution never changes shared nodes
// (aliases make subtrees shared).
func (n *node) clone() *node {
	if n == nil {
		return nil
	}
	c := *n
	if n.keys != nil {
		c.keys = append([]*node(nil), n.keys...)
		c.vals = make([]*node, len(n.vals))
		for i, v := range n.vals {
			c.vals[i] = v.clone()
		}
	}
	if n.items != nil {
		c.items = make([]*node, len(n.items))
		for i, v := range n.items {
			c.items[i] = v.clone()
		}
	}
	return &c
}

func scalar(value string, at *node) *node {
	n := &node{kind: scalarNode, value: value, tag: "!!str", quoted: true}
	if at != nil {
		n.file, n.line, n.col = at.file, at.line, at.col
	}
	return n
}

// toAny converts a node to plain Go values, for equality in conditions
// and for printing.
func (n *node) toAny() any {
	if n == nil {
		return nil
	}
	switch n.kind {
	case mapNode:
		m := make(map[string]any, len(n.keys))
		for i, k := range n.keys {
			m[k.value] = n.vals[i].toAny()
		}
		return m
	case seqNode:
		s := make([]any, len(n.items))
		for i, it := range n.items {
			s[i] = it.toAny()
		}
		return s
	}
	if n.quoted {
		return n.value
	}
	switch n.tag {
	case "!!null":
		return nil
	case "!!bool":
		b, _ := n.boolValue()
		return b
	case "!!int":
		if v, ok := n.intValue(); ok {
			return v
		}
	case "!!float":
		if v, err := strconv.ParseFloat(n.value, 64); err == nil {
			return v
		}
	}
	return n.value
}

// errorf makes an Error at n's position.
func errorf(n *node, format string, args ...any) *Error {
	e := &Error{Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.File, e.Line, e.Col = n.file, n.line, n.col
	}
	return e
}
