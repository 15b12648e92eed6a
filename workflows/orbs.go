package workflows

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/slipway-ci/slipway/internal/lazyre"
)

// A config's orbs are found, in order: built in (slipway/aws,
// slipway/slack); vendored, as an orb's packed YAML or its src/ folder
// under .circleci/orbs or the server's folder; in the cache of orb
// versions fetched before; from CircleCI's orb registry, whose answers
// go to the cache. Of the orbs found elsewhere, a few commands and jobs
// are carried out by slipway itself (see overlays.go).

//go:embed builtin_orbs.yml
var builtinOrbsYAML []byte

// nativeOrb is a built-in orb: its commands become NativeSteps that slipway
// carries out itself, with parameters declared like any orb's.
type nativeOrb struct {
	name     string // "slipway/aws"
	commands map[string][]*paramSpec
}

// builtinOrbs are parsed when a config first uses an orb (half a
// millisecond every command paid at start otherwise).
var builtinOrbs = sync.OnceValue(mustBuiltinOrbs)

func mustBuiltinOrbs() map[string]*nativeOrb {
	root, _, err := parseYAML("builtin_orbs.yml", builtinOrbsYAML)
	if err != nil {
		panic(err)
	}
	orbs := map[string]*nativeOrb{}
	for i, k := range root.keys {
		body := root.vals[i]
		o := &nativeOrb{name: k.value, commands: map[string][]*paramSpec{}}
		defs := body.get("commands")
		for j, name := range defs.keys {
			specs, err := parseParamSpecs(defs.vals[j].get("parameters"))
			if err != nil {
				panic(err)
			}
			o.commands[name.value] = specs
		}
		orbs[k.value] = o
	}
	return orbs
}

// OrbRegistry answers for the orbs that are not vendored: CircleCI's orb
// registry (package orbregistry speaks its API), or a test's. The
// language sees only this.
type OrbRegistry interface {
	// Resolve says which published version a reference names: "5" and
	// "5.1" the highest 5.x.y and 5.1.y, "volatile" the highest of all,
	// an exact version or a dev: label itself. name is
	// "namespace/orb". ErrOrbNotFound when there is no such orb or
	// version; any other error means the registry could not answer.
	Resolve(ctx context.Context, name, ref string) (string, error)
	// Source returns the packed YAML of an exact version, as `circleci
	// orb source` prints it.
	Source(ctx context.Context, name, version string) ([]byte, error)
}

// OrbCache keeps what the registry answered, so that an orb version is
// fetched once and serves when the registry is down. Its methods are
// called concurrently by concurrent loads.
type OrbCache interface {
	// Get returns the source of an exact version; ok is false when it is
	// not cached.
	Get(ctx context.Context, name, version string) (source []byte, ok bool, err error)
	// Put keeps the source of an exact version.
	Put(ctx context.Context, name, version string, source []byte) error
	// Pinned returns the exact version that a partial reference ("5",
	// "5.1", "volatile") resolved to the last time the registry
	// answered.
	Pinned(ctx context.Context, name, ref string) (version string, ok bool, err error)
	// Pin records what a partial reference resolved to.
	Pin(ctx context.Context, name, ref, version string) error
}

// ErrOrbNotFound is returned (wrapped) by an OrbRegistry for an orb or
// version that it does not have.
var ErrOrbNotFound = errors.New("orb not found")

// OrbVersion is one orb a config uses, imports included, as it was
// resolved.
type OrbVersion struct {
	Name    string // "circleci/node"
	Ref     string // the version as the config wrote it: "5", "5.1.2", "volatile"
	Version string // the exact version, when known (not for vendored files)
	From    string // OrbBuiltIn, OrbVendored, OrbCached or OrbFetched
	Path    string // the vendored file or src/ folder
	// Source is the packed YAML of an orb from the cache or the registry.
	Source []byte `json:"-"`
}

// Where an orb came from.
const (
	OrbBuiltIn  = "built in"
	OrbVendored = "vendored"
	OrbCached   = "cache"
	OrbFetched  = "registry"
)

// orbRef matches "namespace/name@version" (version optional).
var orbRef = lazyre.New(`^([a-z0-9][a-z0-9_-]*)/([a-z0-9][a-z0-9_-]*)(?:@(\S+))?$`)

// exactVersion matches a version that names one release.
var exactVersion = lazyre.New(`^\d+\.\d+\.\d+$`)

type orbLoader struct {
	dirs     []string
	registry OrbRegistry
	cache    OrbCache
	// loaded holds what each orb source gave at each depth: an orb
	// referenced many times by orbs that are themselves referenced many
	// times is read once a depth, not once a path to it.
	loaded map[orbSource]orbLoad
	// used lists the orbs resolved, each once, in the order met.
	used []OrbVersion
	seen map[string]bool
	// fetched holds what the cache or registry gave for each reference,
	// asked once a load.
	fetched map[string]fetchResult
}

type fetchResult struct {
	src []byte
	ov  OrbVersion
	err error
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

func (l *orbLoader) use(v OrbVersion) {
	key := v.Name + "@" + v.Ref
	if l.seen[key] {
		return
	}
	if l.seen == nil {
		l.seen = map[string]bool{}
	}
	l.seen[key] = true
	l.used = append(l.used, v)
}

// scope builds the scope of a config or orb body, resolving its `orbs:`.
func (l *orbLoader) scope(ctx context.Context, name string, body *node, depth int) (*scope, error) {
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
			o, err = l.scope(ctx, k.value, v, depth+1) // an inline orb
		} else {
			o, err = l.resolve(ctx, k.value, v, depth)
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

// resolve finds a referenced orb: built in, vendored, cached or fetched.
func (l *orbLoader) resolve(ctx context.Context, local string, ref *node, depth int) (*scope, error) {
	if strings.HasPrefix(ref.str(), "https://") {
		return nil, errorf(ref, "orb %s: orbs imported by URL are not supported: vendor the orb's YAML under .circleci/orbs and import it by name", ref.str())
	}
	m := orbRef.FindStringSubmatch(ref.str())
	if m == nil {
		return nil, errorf(ref, "orb %q: want namespace/name@version", ref.str())
	}
	full, version := m[1]+"/"+m[2], m[3]
	if n, ok := builtinOrbs()[full]; ok {
		l.use(OrbVersion{Name: full, Ref: version, From: OrbBuiltIn})
		return &scope{name: local, native: n}, nil
	}
	if m[1] == "slipway" {
		return nil, errorf(ref, "unknown built-in orb %s (built in: slipway/aws, slipway/slack)", full)
	}
	if s, ok, err := l.vendored(ctx, local, full, version, depth); ok || err != nil {
		return s, err
	}
	if version == "" {
		return nil, errorf(ref, "orb %s has no version: write %s@<version>, or vendor it", full, full)
	}
	src, ov, err := l.fetch(ctx, full, version)
	if err != nil {
		return nil, errorf(ref, "%s", l.unavailable(ref.str(), full, err))
	}
	key := orbSource{"registry:" + full + "@" + ov.Version, depth}
	if s, ok, err := l.cached(key, local); ok {
		l.use(ov)
		return s, err
	}
	l.use(ov)
	file := full + "@" + ov.Version
	body, _, err := parseYAML(file, src)
	if err != nil {
		return l.remember(key, nil, err)
	}
	if body.kind != mapNode {
		return l.remember(key, nil, errorf(body, "orb %s: want a map of commands, jobs and executors", full))
	}
	sc, err := l.scope(ctx, local, body, depth+1)
	if err == nil {
		overlay(sc, full, ov.Version)
	}
	return l.remember(key, sc, err)
}

// vendored looks for the orb in the vendor folders; ok says whether it
// was found.
func (l *orbLoader) vendored(ctx context.Context, local, full, version string, depth int) (*scope, bool, error) {
	ns, name, _ := strings.Cut(full, "/")
	for _, dir := range l.dirs {
		for _, f := range []string{
			filepath.Join(dir, ns, name+"@"+version+".yml"),
			filepath.Join(dir, ns, name+".yml"),
			filepath.Join(dir, ns, name+".yaml"),
			filepath.Join(dir, ns, name, "orb.yml"),
		} {
			if version == "" && strings.HasSuffix(f, "@.yml") {
				continue
			}
			key := orbSource{f, depth}
			if s, ok, err := l.cached(key, local); ok {
				return s, true, err
			}
			src, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			l.use(OrbVersion{Name: full, Ref: version, From: OrbVendored, Path: f})
			body, _, err := parseYAML(f, src)
			if err != nil {
				s, err := l.remember(key, nil, err)
				return s, true, err
			}
			if body.kind != mapNode {
				s, err := l.remember(key, nil, errorf(body, "orb %s: want a map of commands, jobs and executors", full))
				return s, true, err
			}
			sc, err := l.scope(ctx, local, body, depth+1)
			if err == nil {
				overlay(sc, full, version)
			}
			s, err := l.remember(key, sc, err)
			return s, true, err
		}
		srcDir := filepath.Join(dir, ns, name, "src")
		key := orbSource{srcDir, depth}
		if s, ok, err := l.cached(key, local); ok {
			return s, true, err
		}
		if st, err := os.Stat(filepath.Join(srcDir, "@orb.yml")); err == nil && !st.IsDir() {
			l.use(OrbVersion{Name: full, Ref: version, From: OrbVendored, Path: srcDir})
			body, err := unpackedOrb(srcDir)
			if err != nil {
				s, err := l.remember(key, nil, err)
				return s, true, err
			}
			sc, err := l.scope(ctx, local, body, depth+1)
			if err == nil {
				overlay(sc, full, version)
			}
			s, err := l.remember(key, sc, err)
			return s, true, err
		}
	}
	return nil, false, nil
}

// fetch finds an orb version in the cache or the registry. A partial
// reference is resolved by the registry, and the version it resolved to
// pinned; while the registry cannot answer, the last pin serves. An
// exact version is fetched once, then served from the cache; dev:
// versions, which their authors overwrite, are always fetched.
func (l *orbLoader) fetch(ctx context.Context, name, ref string) ([]byte, OrbVersion, error) {
	key := name + "@" + ref
	if r, ok := l.fetched[key]; ok {
		return r.src, r.ov, r.err
	}
	src, ov, err := l.fetch1(ctx, name, ref)
	if l.fetched == nil {
		l.fetched = map[string]fetchResult{}
	}
	l.fetched[key] = fetchResult{src, ov, err}
	return src, ov, err
}

func (l *orbLoader) fetch1(ctx context.Context, name, ref string) ([]byte, OrbVersion, error) {
	ov := OrbVersion{Name: name, Ref: ref, Version: ref}
	dev := strings.HasPrefix(ref, "dev:")
	if !exactVersion.MatchString(ref) && !dev {
		if l.registry == nil {
			return nil, ov, errNoRegistry
		}
		v, err := l.registry.Resolve(ctx, name, ref)
		if err != nil {
			if errors.Is(err, ErrOrbNotFound) || l.cache == nil {
				return nil, ov, err
			}
			pinned, ok, cerr := l.cache.Pinned(ctx, name, ref)
			if cerr != nil || !ok {
				return nil, ov, err
			}
			v = pinned
		} else if l.cache != nil {
			if err := l.cache.Pin(ctx, name, ref, v); err != nil {
				return nil, ov, fmt.Errorf("orb cache: %w", err)
			}
		}
		ov.Version = v
	}
	if l.cache != nil && !dev {
		src, ok, err := l.cache.Get(ctx, name, ov.Version)
		if err != nil {
			return nil, ov, fmt.Errorf("orb cache: %w", err)
		}
		if ok {
			ov.From, ov.Source = OrbCached, src
			return src, ov, nil
		}
	}
	if l.registry == nil {
		return nil, ov, errNoRegistry
	}
	src, err := l.registry.Source(ctx, name, ov.Version)
	if err != nil {
		return nil, ov, err
	}
	if l.cache != nil && !dev {
		if err := l.cache.Put(ctx, name, ov.Version, src); err != nil {
			return nil, ov, fmt.Errorf("orb cache: %w", err)
		}
	}
	ov.From, ov.Source = OrbFetched, src
	return src, ov, nil
}

var errNoRegistry = errors.New("no orb registry is configured")

// unavailable says why an orb could be neither vendored nor fetched,
// and how to vendor it.
func (l *orbLoader) unavailable(ref, full string, err error) string {
	where := ".circleci/orbs"
	if len(l.dirs) > 0 {
		where = l.dirs[0]
	}
	ns, name, _ := strings.Cut(full, "/")
	why := "the orb registry could not be asked: " + err.Error()
	switch {
	case errors.Is(err, ErrOrbNotFound):
		why = "the orb registry has no such orb or version"
	case errors.Is(err, errNoRegistry):
		why = "it is not vendored and no orb registry is configured"
	}
	return fmt.Sprintf("orb %s can be neither vendored nor fetched: %s; vendor it with `slipway orb vendor <config>` (where the registry answers), or save its packed YAML as %s (`circleci orb source %s`) or its src/ folder as %s",
		ref, why, filepath.Join(where, ns, name+".yml"), ref, filepath.Join(where, ns, name, "src"))
}

// include matches the orb packer's `<<include(file)>>` directive.
var include = lazyre.New(`<<\s*include\(([^)]*)\)\s*>>`)

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
