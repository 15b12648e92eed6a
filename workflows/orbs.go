package workflows

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Orbs come from a registry that slipway cannot reach, so a config's orbs
// are resolved from vendored copies: an orb's packed YAML, or the `src/`
// folder of its repository, under .circleci/orbs/ or the server's folder.
// slipway/aws and slipway/slack are built in; circleci/slack maps onto the
// native commit thread.

//go:embed builtin_orbs.yml
var builtinOrbsYAML []byte

// nativeOrb is a built-in orb: its commands become NativeSteps that slipway
// carries out itself, with parameters declared like any orb's.
type nativeOrb struct {
	name     string // "slipway/aws"
	target   string // the orb whose implementation runs: circleci/slack runs slipway/slack
	commands map[string][]*paramSpec
	jobs     map[string][]*paramSpec // jobs that need no executor: compiled to no-op jobs
}

var builtinOrbs = mustBuiltinOrbs()

func mustBuiltinOrbs() map[string]*nativeOrb {
	root, _, err := parseYAML("builtin_orbs.yml", builtinOrbsYAML)
	if err != nil {
		panic(err)
	}
	orbs := map[string]*nativeOrb{}
	for i, k := range root.keys {
		body := root.vals[i]
		o := &nativeOrb{name: k.value, target: body.get("runs").str(), commands: map[string][]*paramSpec{}, jobs: map[string][]*paramSpec{}}
		for what, m := range map[string]map[string][]*paramSpec{"commands": o.commands, "jobs": o.jobs} {
			defs := body.get(what)
			if defs == nil {
				continue
			}
			for j, name := range defs.keys {
				specs, err := parseParamSpecs(defs.vals[j].get("parameters"))
				if err != nil {
					panic(err)
				}
				m[name.value] = specs
			}
		}
		orbs[k.value] = o
	}
	return orbs
}

// orbRef matches "namespace/name@version" (version optional).
var orbRef = regexp.MustCompile(`^([a-z0-9][a-z0-9_-]*)/([a-z0-9][a-z0-9_-]*)(?:@(\S+))?$`)

type orbLoader struct {
	dirs []string
	// loaded holds what each vendored orb file or folder gave at each
	// depth: an orb referenced many times by orbs that are themselves
	// referenced many times is read once a depth, not once a path to it.
	loaded map[orbSource]orbLoad
}

type orbSource struct {
	path  string
	depth int
}

type orbLoad struct {
	scope *scope
	err   error
}

// cached returns a remembered orb under its local name.
func (l *orbLoader) cached(src orbSource, local string) (*scope, bool, error) {
	r, ok := l.loaded[src]
	if !ok || r.err != nil {
		return nil, ok, r.err
	}
	s := *r.scope
	s.name = local
	return &s, true, nil
}

func (l *orbLoader) remember(src orbSource, s *scope, err error) (*scope, error) {
	if l.loaded == nil {
		l.loaded = map[orbSource]orbLoad{}
	}
	l.loaded[src] = orbLoad{s, err}
	return s, err
}

// scope builds the scope of a config or orb body, resolving its `orbs:`.
func (l *orbLoader) scope(name string, body *node, depth int) (*scope, error) {
	if depth > 8 {
		return nil, errorf(body, "orbs nested more than 8 deep")
	}
	s := &scope{name: name, orbs: map[string]*scope{}}
	var err error
	if s.jobs, err = definitions(body.get("jobs"), "jobs"); err != nil {
		return nil, err
	}
	if s.commands, err = definitions(body.get("commands"), "commands"); err != nil {
		return nil, err
	}
	if s.executors, err = definitions(body.get("executors"), "executors"); err != nil {
		return nil, err
	}
	orbs := body.get("orbs")
	if orbs.isNull() {
		return s, nil
	}
	if orbs.kind != mapNode {
		return nil, errorf(orbs, "orbs must be a map of names to orb references")
	}
	// Every missing orb is reported at once, so that vendoring is one
	// round trip.
	var errs errorSet
	for i, k := range orbs.keys {
		v := orbs.vals[i]
		var o *scope
		if v.kind == mapNode {
			o, err = l.scope(k.value, v, depth+1) // an inline orb
		} else {
			o, err = l.resolve(k.value, v, depth)
		}
		if err != nil {
			errs.add(err)
			continue
		}
		s.orbs[k.value] = o
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return s, nil
}

// resolve finds a referenced orb: built in, or vendored.
func (l *orbLoader) resolve(local string, ref *node, depth int) (*scope, error) {
	m := orbRef.FindStringSubmatch(ref.str())
	if m == nil {
		return nil, errorf(ref, "orb %q: want namespace/name@version", ref.str())
	}
	full := m[1] + "/" + m[2]
	if n, ok := builtinOrbs[full]; ok {
		return &scope{name: local, native: n}, nil
	}
	if m[1] == "slipway" {
		return nil, errorf(ref, "unknown built-in orb %s (built in: slipway/aws, slipway/slack)", full)
	}
	for _, dir := range l.dirs {
		for _, f := range []string{
			filepath.Join(dir, m[1], m[2]+"@"+m[3]+".yml"),
			filepath.Join(dir, m[1], m[2]+".yml"),
			filepath.Join(dir, m[1], m[2]+".yaml"),
			filepath.Join(dir, m[1], m[2], "orb.yml"),
		} {
			if m[3] == "" && strings.HasSuffix(f, "@.yml") {
				continue
			}
			key := orbSource{f, depth}
			if s, ok, err := l.cached(key, local); ok {
				return s, err
			}
			src, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			body, _, err := parseYAML(f, src)
			if err != nil {
				return l.remember(key, nil, err)
			}
			if body.kind != mapNode {
				return l.remember(key, nil, errorf(body, "orb %s: want a map of commands, jobs and executors", full))
			}
			sc, err := l.scope(local, body, depth+1)
			return l.remember(key, sc, err)
		}
		srcDir := filepath.Join(dir, m[1], m[2], "src")
		key := orbSource{srcDir, depth}
		if s, ok, err := l.cached(key, local); ok {
			return s, err
		}
		if st, err := os.Stat(filepath.Join(srcDir, "@orb.yml")); err == nil && !st.IsDir() {
			body, err := unpackedOrb(srcDir)
			if err != nil {
				return l.remember(key, nil, err)
			}
			sc, err := l.scope(local, body, depth+1)
			return l.remember(key, sc, err)
		}
	}
	where := ".circleci/orbs"
	if len(l.dirs) > 0 {
		where = l.dirs[0]
	}
	return nil, errorf(ref, "orb %s is not vendored: slipway cannot reach the orb registry; save its packed YAML as %s (for example `circleci orb source %s > %s`) or copy its src/ folder to %s",
		ref.str(), filepath.Join(where, m[1], m[2]+".yml"), ref.str(), filepath.Join(where, m[1], m[2]+".yml"), filepath.Join(where, m[1], m[2], "src"))
}

// include matches the orb packer's `<<include(file)>>` directive.
var include = regexp.MustCompile(`<<\s*include\(([^)]*)\)\s*>>`)

// unpackedOrb assembles an orb from its source layout: @orb.yml, and one
// file per element under commands/, jobs/ and executors/, with
// <<include(path)>> replaced by the file's text, each << of it escaped as
// \<<, as `circleci orb pack` does: a vendored src/ folder behaves as the
// same orb packed.
func unpackedOrb(srcDir string) (*node, error) {
	top := filepath.Join(srcDir, "@orb.yml")
	src, err := os.ReadFile(top)
	if err != nil {
		return nil, fmt.Errorf("orb: %w", err)
	}
	body, _, err := parseYAML(top, src)
	if err != nil {
		return nil, err
	}
	if body.kind != mapNode {
		return nil, errorf(body, "@orb.yml must be a map")
	}
	for _, what := range []string{"commands", "jobs", "executors"} {
		files, _ := filepath.Glob(filepath.Join(srcDir, what, "*.y*ml"))
		sort.Strings(files)
		if len(files) == 0 {
			continue
		}
		defs := &node{kind: mapNode, file: top}
		for _, f := range files {
			text, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("orb: %w", err)
			}
			def, _, err := parseYAML(f, text)
			if err != nil {
				return nil, err
			}
			if err := includeFiles(def, srcDir); err != nil {
				return nil, err
			}
			name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".yml"), ".yaml")
			defs.keys = append(defs.keys, scalar(name, def))
			defs.vals = append(defs.vals, def)
		}
		body.keys = append(body.keys, scalar(what, body))
		body.vals = append(body.vals, defs)
	}
	return body, nil
}

func includeFiles(n *node, srcDir string) error {
	for _, c := range n.vals {
		if err := includeFiles(c, srcDir); err != nil {
			return err
		}
	}
	for _, c := range n.items {
		if err := includeFiles(c, srcDir); err != nil {
			return err
		}
	}
	if n.kind != scalarNode || !strings.Contains(n.value, "include(") {
		return nil
	}
	var ferr error
	n.value = include.ReplaceAllStringFunc(n.value, func(m string) string {
		rel := strings.TrimSpace(include.FindStringSubmatch(m)[1])
		p := filepath.Join(srcDir, filepath.FromSlash(rel))
		// An orb may only include files of its own source folder.
		if r, err := filepath.Rel(srcDir, p); err != nil || strings.HasPrefix(r, "..") {
			ferr = errorf(n, "include(%s) points outside the orb's src folder", rel)
			return m
		}
		text, err := os.ReadFile(p)
		if err != nil {
			ferr = errorf(n, "include(%s): %v", rel, err)
			return m
		}
		// The packer escapes the script's << so that it stays text:
		// interpolation turns \<< back into <<.
		return strings.ReplaceAll(string(text), "<<", `\<<`)
	})
	n.quoted = true
	n.tag = "!!str"
	return ferr
}
