package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/slipway-ci/slipway/workflows"
)

const (
	// maxSize bounds the file read: a server config is a few kilobytes.
	maxSize = 1 << 20
	// maxValues bounds the values visited, aliases followed: a file of a
	// few hundred bytes whose anchors nest ten deep ("billion laughs")
	// is an error, not a long walk.
	maxValues = 100_000
	// maxErrors bounds the errors kept; a file that is not a slipway.yml
	// at all should not print a thousand lines.
	maxErrors = 100
)

// decoder walks the YAML tree of a config, recording every problem with
// its position rather than stopping at the first.
type decoder struct {
	file   string
	dir    string
	lookup func(string) (string, bool)
	errs   workflows.ErrorList
	seen   map[string]bool // errors kept, so that an alias used twice reports once
	more   int             // errors dropped once enough are kept
	budget int             // values left to visit
}

// field decodes the value of one key; key is where the key is written.
type field func(key, v *yaml.Node, path string)

// fields are the keys a map may have. Adding a key to slipway.yml is
// adding an entry here, a field to the struct and a line to the example.
type fields map[string]field

// full reports whether no more errors are kept, counting one dropped.
func (d *decoder) full() bool {
	if len(d.errs) < maxErrors*4 {
		return false
	}
	d.more++
	return true
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	if d.full() {
		return
	}
	e := &workflows.Error{File: d.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	k := e.Error()
	if d.seen[k] {
		return
	}
	d.seen[k] = true
	d.errs = append(d.errs, e)
}

// fail reports a problem with the value at path: "path: message".
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	d.errorf(n, "%s", msg)
}

// result is every error in file order, or nil.
func (d *decoder) result() error {
	if len(d.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(d.errs, func(a, b *workflows.Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	})
	errs := d.errs
	if len(errs) > maxErrors || d.more > 0 {
		errs = append(errs[:min(len(errs), maxErrors):maxErrors], &workflows.Error{File: d.file,
			Msg: fmt.Sprintf("too many errors; these are the first %d", maxErrors)})
	}
	return errs
}

// parseYAML reads the one document of src.
func (d *decoder) parseYAML(src []byte) *yaml.Node {
	if len(src) > maxSize {
		d.errorf(nil, "config is too large (over %d bytes)", maxSize)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errorf(nil, "config is empty")
		} else {
			d.yamlError(err)
		}
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			d.yamlError(err)
		} else {
			d.errorf(&next, "a second YAML document; slipway.yml is one document")
		}
		return nil
	}
	if len(doc.Content) == 0 {
		d.errorf(nil, "config is empty")
		return nil
	}
	return doc.Content[0]
}

// yamlError turns the YAML library's "yaml: line N: msg" into a
// positioned error (the library gives no column).
func (d *decoder) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ":"); i > 0 {
			if line, err := strconv.Atoi(rest[:i]); err == nil {
				d.errorf(&yaml.Node{Line: line, Column: 1}, "yaml: %s", strings.TrimSpace(rest[i+1:]))
				return
			}
		}
	}
	d.errorf(nil, "yaml: %s", msg)
}

// resolve follows aliases and counts the value against the budget; nil
// means the budget is spent (reported once) and the walk should stop.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 100 {
			return nil
		}
		n = n.Alias
	}
	if n == nil || !d.spend(n, 1) {
		return nil
	}
	return n
}

// spend counts k values read at n against the budget, reporting whether
// any is left. A map or list counts its entries as well as itself: a
// walk may skip their values (an unknown key's) but not the entries.
func (d *decoder) spend(n *yaml.Node, k int) bool {
	if d.budget <= 0 {
		return false
	}
	d.budget -= k
	if d.budget <= 0 {
		d.errorf(n, "config too large after expanding aliases (over %d values)", maxValues)
		return false
	}
	return true
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what n is, for "want a map, got ...".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "a YAML " + strconv.Itoa(int(n.Kind))
}

// pair is a key of a map and its value.
type pair struct{ key, val *yaml.Node }

// entries returns the pairs of map n, merge keys applied (the map's own
// keys win over merged ones, and an earlier map in `<<: [*a, *b]` over a
// later one), reporting keys that are not text or are written twice. A
// null is an empty map; ok is false, with an error, for anything else
// that is not a map.
func (d *decoder) entries(n *yaml.Node, path string) (ps []pair, ok bool) {
	n = d.resolve(n)
	if n == nil {
		return nil, false
	}
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a map, got %s", describe(n))
		return nil, false
	}
	if !d.spend(n, len(n.Content)/2) {
		return nil, false
	}
	own := map[string]*yaml.Node{}
	var merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.merge(k, v, path)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "a key must be text, got %s", describe(k))
			continue
		}
		if first, dup := own[k.Value]; dup {
			d.fail(k, path, "key %q is written twice (first at line %d)", k.Value, first.Line)
			continue
		}
		own[k.Value] = k
		ps = append(ps, pair{k, v})
	}
	for _, p := range merged {
		if own[p.key.Value] == nil {
			own[p.key.Value] = p.key
			ps = append(ps, p)
		}
	}
	return ps, true
}

// merge returns the pairs a merge key brings: those of one map, or of a
// list of maps, the first listed first.
func (d *decoder) merge(k, v *yaml.Node, path string) []pair {
	v = d.resolve(v)
	if v == nil {
		return nil
	}
	maps := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		maps = v.Content
	}
	var ps []pair
	for _, m := range maps {
		if r := d.resolve(m); r != nil && r.Kind != yaml.MappingNode {
			d.fail(r, path, "merge key << wants a map or a list of maps, got %s", describe(r))
			continue
		}
		mp, _ := d.entries(m, path)
		ps = append(ps, mp...)
	}
	return ps
}

// object decodes map n with fs, reporting keys fs does not know. It
// returns the keys present, and whether n was a map (a null counts as an
// empty one).
func (d *decoder) object(n *yaml.Node, path string, fs fields) (map[string]*yaml.Node, bool) {
	ps, ok := d.entries(n, path)
	keys := make(map[string]*yaml.Node, len(ps))
	for _, p := range ps {
		f := fs[p.key.Value]
		if f == nil {
			d.unknownKey(p.key, path, fs)
			continue
		}
		keys[p.key.Value] = p.key
		f(p.key, p.val, join(path, p.key.Value))
	}
	return keys, ok
}

func (d *decoder) unknownKey(k *yaml.Node, path string, fs fields) {
	if d.full() {
		return
	}
	var hint string
	if s := suggest(k.Value, fs); s != "" {
		hint = fmt.Sprintf(" (did you mean %q?)", s)
	}
	if path == "" {
		d.errorf(k, "unknown top-level key %q%s", k.Value, hint)
		return
	}
	d.fail(k, path, "unknown key %q%s", k.Value, hint)
}

// suggest returns the known key closest to a mistyped one, if one is
// within two edits of it.
func suggest(key string, fs fields) string {
	best, bestDist := "", 3
	for _, k := range slices.Sorted(maps.Keys(fs)) {
		if dist := editDistance(strings.ToLower(key), k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// scalar returns the text of a scalar value, ${VAR} references expanded.
// null is false with no error: the key is as good as absent.
func (d *decoder) scalar(n *yaml.Node, path string) (*yaml.Node, string, bool) {
	n = d.resolve(n)
	if n == nil {
		return nil, "", false
	}
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "want a single value, got %s", describe(n))
		return n, "", false
	}
	if isNull(n) {
		return n, "", false
	}
	s, problems := expand(n.Value, d.lookup)
	for _, p := range problems {
		d.fail(n, path, "%s", p)
	}
	return n, s, len(problems) == 0
}

// text reads a text value and checks it. An empty value (null, "", or
// a ${VAR} that expands to "") is refused if required and otherwise not
// checked: it leaves the key's default. ok is whether s is a value to use.
func (d *decoder) text(v *yaml.Node, path string, required bool, check func(string) string) (n *yaml.Node, s string, ok bool) {
	n, s, ok = d.scalar(v, path)
	if n == nil || (!ok && !isNull(n)) {
		return n, "", false
	}
	if s == "" {
		if required {
			d.fail(n, path, "must not be empty")
		}
		return n, "", false
	}
	if check != nil {
		if msg := check(s); msg != "" {
			d.fail(n, path, "%s", msg)
			return n, "", false
		}
	}
	return n, s, true
}

// str decodes an optional text value into dst; check, if not nil, says
// what is wrong with the text ("" if nothing).
func (d *decoder) str(dst *string, check func(string) string) field {
	return func(_, v *yaml.Node, path string) {
		if _, s, ok := d.text(v, path, false, check); ok {
			*dst = s
		}
	}
}

// req is str for a value that must not be empty.
func (d *decoder) req(dst *string, check func(string) string) field {
	return func(_, v *yaml.Node, path string) {
		if _, s, ok := d.text(v, path, true, check); ok {
			*dst = s
		}
	}
}

// intField decodes a whole number in [lo, hi]. Like every value it is
// typed after expansion, so `parallelism: ${N}` works.
func intField[T ~int | ~int64](d *decoder, dst *T, lo, hi int64) field {
	return func(_, v *yaml.Node, path string) {
		n, s, ok := d.text(v, path, true, nil)
		if !ok {
			return
		}
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			d.fail(n, path, "want a whole number, got %q", s)
			return
		}
		switch {
		case hi == math.MaxInt64 && i < lo:
			d.fail(n, path, "want a number of %d or more, got %d", lo, i)
			return
		case i < lo || i > hi:
			d.fail(n, path, "want a number from %d to %d, got %d", lo, hi, i)
			return
		}
		*dst = T(i)
	}
}

// duration decodes a Go duration of 0 or more (30s, 2m, 1h30m).
func (d *decoder) duration(dst *time.Duration) field {
	return func(_, v *yaml.Node, path string) {
		if _, s, ok := d.text(v, path, true, checkDuration); ok {
			*dst, _ = time.ParseDuration(s)
		}
	}
}

// boolean decodes true or false (not YAML 1.1's yes/no/on/off: a
// setting such as self_approval should read as what it does).
func (d *decoder) boolean(dst *bool) field {
	return func(_, v *yaml.Node, path string) {
		n, s, ok := d.text(v, path, true, nil)
		if !ok {
			return
		}
		switch s {
		case "true", "True", "TRUE":
			*dst = true
		case "false", "False", "FALSE":
			*dst = false
		default:
			d.fail(n, path, "want true or false, got %q", s)
		}
	}
}

// list returns the items of a list value; a null is an empty list.
func (d *decoder) list(v *yaml.Node, path string) ([]*yaml.Node, bool) {
	v = d.resolve(v)
	if v == nil {
		return nil, false
	}
	if isNull(v) {
		return nil, true
	}
	if v.Kind != yaml.SequenceNode {
		d.fail(v, path, "want a list, got %s", describe(v))
		return nil, false
	}
	if !d.spend(v, len(v.Content)) {
		return nil, false
	}
	return v.Content, true
}
