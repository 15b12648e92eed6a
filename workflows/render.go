package workflows

import "strings"

// CircleCI renders a config's text in two ways besides << x >>
// references, both of which real orbs use:
//
//   - conditional sections, mustache's: <<# parameters.x >>...<</
//     parameters.x >> keeps what it encloses when x is true or not empty,
//     <<^ parameters.x >>...<</ parameters.x >> when x is false or empty.
//     Sections nest, and may enclose references.
//   - \<< is a literal <<: it is never a reference or a section, and the
//     backslash goes. `circleci orb pack` writes every << of an included
//     script so, which is how a script's heredoc survives packing.

// escapedAt reports whether the << at s[i:] is escaped by a backslash.
func escapedAt(s string, i int) bool {
	return i > 0 && s[i-1] == '\\'
}

// unescape turns each \<< of s into <<.
func unescape(s string) string {
	return strings.ReplaceAll(s, `\<<`, "<<")
}

// sectionTag is a section's opening or closing tag.
type sectionTag struct {
	kind       byte // '#', '^' or '/'
	ns, name   string
	start, end int // the tag's bytes in the text
}

// sectionAt matches a section tag that starts at s[start:], which begins
// with <<: << then spaces, #, ^ or /, spaces, a reference's name, spaces,
// >>.
func sectionAt(s string, start int) (sectionTag, bool) {
	p := skipSpace(s, start+2)
	if p >= len(s) || (s[p] != '#' && s[p] != '^' && s[p] != '/') {
		return sectionTag{}, false
	}
	ns, name, end, ok := referenceBody(s, skipSpace(s, p+1))
	if !ok {
		return sectionTag{}, false
	}
	return sectionTag{kind: s[p], ns: s[ns[0]:ns[1]], name: s[name[0]:name[1]], start: start, end: end}, true
}

// hasSection reports whether s may hold a section tag, cheaply.
func hasSection(s string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], "<<")
		if j < 0 {
			return false
		}
		i += j
		if p := skipSpace(s, i+2); p < len(s) && (s[p] == '#' || s[p] == '^' || s[p] == '/') && !escapedAt(s, i) {
			return true
		}
		i += 2
	}
}

// sections renders the conditional sections of the text of n, leaving
// references and escapes for interpolate.
func (v *vars) sections(n *node) (string, error) {
	var b strings.Builder
	s := n.value
	// open are the sections entered, innermost last; skip counts those
	// of them whose content is dropped.
	var open []sectionTag
	skip := 0
	last := 0
	for i := 0; ; {
		j := strings.Index(s[i:], "<<")
		if j < 0 {
			break
		}
		i += j
		tag, ok := sectionAt(s, i)
		if !ok || escapedAt(s, i) {
			i += 2
			continue
		}
		if skip == 0 {
			b.WriteString(s[last:tag.start])
		}
		last, i = tag.end, tag.end
		if tag.kind == '/' {
			if len(open) == 0 || open[len(open)-1].ns != tag.ns || open[len(open)-1].name != tag.name {
				return "", errorf(n, "%s closes no section", s[tag.start:tag.end])
			}
			open = open[:len(open)-1]
			if skip > 0 {
				skip--
			}
			continue
		}
		open = append(open, tag)
		if skip > 0 {
			skip++ // a section inside a dropped one is dropped
			continue
		}
		val, err := v.lookup(tag.ns, tag.name, n)
		if err != nil {
			return "", err
		}
		if sectionTruthy(val) != (tag.kind == '#') {
			skip = 1
		}
	}
	if len(open) > 0 {
		t := open[len(open)-1]
		return "", errorf(n, "%s is never closed by <</ %s.%s >>", s[t.start:t.end], t.ns, t.name)
	}
	b.WriteString(s[last:])
	return b.String(), nil
}

// sectionTruthy is whether a section over val keeps its content: not for
// false, null, the empty string or an empty list, as in mustache.
func sectionTruthy(val *node) bool {
	switch val.kind {
	case seqNode:
		return len(val.items) > 0
	case mapNode:
		return true
	}
	if val.isNull() || val.value == "" {
		return false
	}
	if !val.quoted {
		if b, ok := val.boolValue(); ok {
			return b
		}
	}
	return true
}
