// Package registrytest is a fake of CircleCI's orb registry on loopback:
// it answers the GraphQL queries that the CircleCI CLI (and
// orbregistry) ask, for orbs held in memory or read from a folder, and
// records every query.
package registrytest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Query is one query the fake answered.
type Query struct {
	Kind string // "orb" (the versions of an orb) or "orbVersion" (one version's source)
	Ref  string // the orb's name, or name@version
}

// Server is a fake orb registry.
type Server struct {
	URL string // the GraphQL endpoint

	mu      sync.Mutex
	orbs    map[string]map[string]string // name → version → source
	down    bool
	queries []Query
}

// New starts a fake registry holding orbs (name → version → packed
// YAML), stopped when the test ends.
func New(t testing.TB, orbs map[string]map[string]string) *Server {
	t.Helper()
	s := &Server{orbs: map[string]map[string]string{}}
	for name, vs := range orbs {
		for v, src := range vs {
			s.Add(name, v, src)
		}
	}
	ts := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(ts.Close)
	s.URL = ts.URL + "/graphql-unstable"
	return s
}

// Dir reads orbs laid out as <namespace>/<name>/<version>.yml.
func Dir(t testing.TB, dir string) map[string]map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*", "*", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("registrytest: no orbs under %s: %v", dir, err)
	}
	orbs := map[string]map[string]string{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, f)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		name := parts[0] + "/" + parts[1]
		if orbs[name] == nil {
			orbs[name] = map[string]string{}
		}
		orbs[name][strings.TrimSuffix(parts[2], ".yml")] = string(src)
	}
	return orbs
}

// Add publishes a version of an orb.
func (s *Server) Add(name, version, source string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.orbs[name] == nil {
		s.orbs[name] = map[string]string{}
	}
	s.orbs[name][version] = source
}

// SetDown makes the registry answer 503 to everything, or not.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// Queries returns the queries answered so far.
func (s *Server) Queries() []Query {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.queries)
}

var semver = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)$`)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		http.Error(w, "registry down", http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/graphql-unstable") {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var req struct {
		Query     string
		Variables map[string]any
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var data any
	switch {
	case strings.Contains(req.Query, "orbVersion(orbVersionRef:"):
		ref, _ := req.Variables["orbVersionRef"].(string)
		data = map[string]any{"orbVersion": s.version(ref)}
	case strings.Contains(req.Query, "orb(name:"):
		name, _ := req.Variables["orbName"].(string)
		count, _ := req.Variables["versionCount"].(float64)
		data = map[string]any{"orb": s.versions(name, int(count))}
	default:
		writeJSON(w, map[string]any{"errors": []map[string]string{{"message": "registrytest: unknown query"}}})
		return
	}
	writeJSON(w, map[string]any{"data": data})
}

// version answers orbVersion: an exact version, or volatile for the
// newest; null when there is none.
func (s *Server) version(ref string) any {
	name, v, _ := strings.Cut(ref, "@")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries = append(s.queries, Query{Kind: "orbVersion", Ref: ref})
	if v == "volatile" || v == "" {
		if vs := s.sorted(name); len(vs) > 0 {
			v = vs[0]
		}
	}
	src, ok := s.orbs[name][v]
	if !ok {
		return nil
	}
	return map[string]any{"id": "orb-version:" + name + "@" + v, "version": v, "orb": map[string]any{"id": "orb:" + name}, "source": src}
}

// versions answers orb: its newest count versions, newest first.
func (s *Server) versions(name string, count int) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries = append(s.queries, Query{Kind: "orb", Ref: name})
	if s.orbs[name] == nil {
		return nil
	}
	vs := s.sorted(name)
	if count > 0 && len(vs) > count {
		vs = vs[:count]
	}
	list := make([]map[string]string, len(vs))
	for i, v := range vs {
		list[i] = map[string]string{"version": v}
	}
	return map[string]any{"id": "orb:" + name, "name": name, "versions": list}
}

// sorted lists an orb's versions, newest first.
func (s *Server) sorted(name string) []string {
	var vs []string
	for v := range s.orbs[name] {
		vs = append(vs, v)
	}
	key := func(v string) [3]int {
		var k [3]int
		if m := semver.FindStringSubmatch(v); m != nil {
			for i := range k {
				k[i], _ = strconv.Atoi(m[i+1])
			}
		}
		return k
	}
	slices.SortFunc(vs, func(a, b string) int {
		ka, kb := key(a), key(b)
		for i := range ka {
			if ka[i] != kb[i] {
				return kb[i] - ka[i]
			}
		}
		return strings.Compare(b, a)
	})
	return vs
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		fmt.Fprintln(os.Stderr, "registrytest:", err)
	}
}
