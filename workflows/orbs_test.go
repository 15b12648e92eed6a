package workflows

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestOrbsReadOnceADepth loads a config whose orb references another six
// times, which references another six times, eight deep: read once per
// path to it, that is 6^8 files.
func TestOrbsReadOnceADepth(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
		t.Fatal(err)
	}
	for d := range 9 {
		body := "commands:\n  hi: {steps: [checkout]}\n"
		if d < 8 {
			body += "orbs:\n"
			for i := range 6 {
				body += fmt.Sprintf("  o%d: ns/l%d@1\n", i, d+1)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "ns", fmt.Sprintf("l%d.yml", d)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := "version: 2.1\norbs:\n  a: ns/l0@1\njobs:\n  j: {docker: [{image: x}], steps: [a/hi]}\nworkflows:\n  w: {jobs: [j]}\n"
	var err error
	n := allocated(func() { _, err = Load("c.yml", []byte(src), LoadOptions{OrbDirs: []string{dir}}) })
	if want := "l8.yml:1:1: orbs nested more than 8 deep"; err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("got %v, want %s", err, want)
	}
	if n > 8<<20 {
		t.Errorf("allocated %d MB, want under 8 MB", n>>20)
	}
}

// fakeRegistry is an OrbRegistry of orbs in memory, counting what it is
// asked; down makes it fail as an unreachable registry does.
type fakeRegistry struct {
	orbs     map[string]map[string]string // name → version → source
	down     bool
	resolves int
	fetched  []string
}

func (r *fakeRegistry) Resolve(ctx context.Context, name, ref string) (string, error) {
	r.resolves++
	if r.down {
		return "", errors.New("dial tcp: connection refused")
	}
	best := ""
	for v := range r.orbs[name] {
		if (ref == "volatile" || v == ref || strings.HasPrefix(v, ref+".")) && (best == "" || v > best) {
			best = v
		}
	}
	if best == "" {
		return "", fmt.Errorf("%s@%s: %w", name, ref, ErrOrbNotFound)
	}
	return best, nil
}

func (r *fakeRegistry) Source(ctx context.Context, name, version string) ([]byte, error) {
	if r.down {
		return nil, errors.New("dial tcp: connection refused")
	}
	src, ok := r.orbs[name][version]
	if !ok {
		return nil, fmt.Errorf("%s@%s: %w", name, version, ErrOrbNotFound)
	}
	r.fetched = append(r.fetched, name+"@"+version)
	return []byte(src), nil
}

// mapCache is an OrbCache in memory.
type mapCache struct {
	sources map[string][]byte
	pins    map[string]string
}

func (c *mapCache) Get(ctx context.Context, name, version string) ([]byte, bool, error) {
	src, ok := c.sources[name+"@"+version]
	return src, ok, nil
}

func (c *mapCache) Put(ctx context.Context, name, version string, source []byte) error {
	c.sources[name+"@"+version] = source
	return nil
}

func (c *mapCache) Pinned(ctx context.Context, name, ref string) (string, bool, error) {
	v, ok := c.pins[name+"@"+ref]
	return v, ok, nil
}

func (c *mapCache) Pin(ctx context.Context, name, ref, version string) error {
	c.pins[name+"@"+ref] = version
	return nil
}

// TestOrbsFromRegistry resolves orbs that are not vendored from the
// registry: a partial version pinned to what it resolved to, each
// version fetched once and cached, the cache serving while the registry
// is down, imports resolved the same way, and a clear error when an orb
// can be neither vendored nor fetched.
func TestOrbsFromRegistry(t *testing.T) {
	reg := &fakeRegistry{orbs: map[string]map[string]string{
		"acme/tools": {
			"5.0.1": "version: 2.1\ncommands:\n  hi: {steps: [{run: echo 5.0.1}]}\n",
			"5.1.0": "version: 2.1\norbs:\n  base: acme/base@1.0.0\ncommands:\n  hi: {steps: [{run: echo 5.1.0}, base/lo]}\n",
			"6.0.0": "version: 2.1\ncommands:\n  hi: {steps: [{run: echo 6.0.0}]}\n",
		},
		"acme/base": {"1.0.0": "version: 2.1\ncommands:\n  lo: {steps: [{run: echo base}]}\n"},
	}}
	cache := &mapCache{sources: map[string][]byte{}, pins: map[string]string{}}
	src := "version: 2.1\norbs:\n  t: acme/tools@5\njobs:\n  a: {docker: [{image: x}], steps: [t/hi]}\nworkflows: {w: {jobs: [a]}}\n"
	opts := LoadOptions{Registry: reg, Cache: cache}
	load := func() ([]string, *Config, error) {
		c, err := LoadContext(context.Background(), "c.yml", []byte(src), opts)
		if err != nil {
			return nil, nil, err
		}
		return runCommands(t, src, opts), c, nil
	}
	got, c, err := load()
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(got, []string{"echo 5.1.0", "echo base"}) {
		t.Errorf("runs %q", got)
	}
	want := []OrbVersion{
		{Name: "acme/tools", Ref: "5", Version: "5.1.0", From: OrbFetched},
		{Name: "acme/base", Ref: "1.0.0", Version: "1.0.0", From: OrbFetched},
	}
	if diff := cmp.Diff(want, c.Orbs(), cmpopts.IgnoreFields(OrbVersion{}, "Source")); diff != "" {
		t.Errorf("orbs (-want +got):\n%s", diff)
	}
	if cache.pins["acme/tools@5"] != "5.1.0" {
		t.Errorf("pins %v", cache.pins)
	}
	// Loaded again (twice, above and here), nothing is fetched twice.
	if _, _, err := load(); err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(reg.fetched, []string{"acme/tools@5.1.0", "acme/base@1.0.0"}) {
		t.Errorf("fetched %q", reg.fetched)
	}
	// The registry down, the pin and the cache serve.
	reg.down = true
	if got, _, err := load(); err != nil || !cmp.Equal(got, []string{"echo 5.1.0", "echo base"}) {
		t.Errorf("registry down: %q, %v", got, err)
	}
	// An orb neither vendored, cached nor fetchable.
	src = strings.Replace(src, "acme/tools@5", "acme/tools@6", 1)
	_, _, err = load()
	if want := "c.yml:3:6: orb acme/tools@6 can be neither vendored nor fetched: the orb registry could not be asked: dial tcp: connection refused; vendor it with `slipway orb vendor <config>`"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v\nwant %s", err, want)
	}
	reg.down = false
	src = strings.Replace(src, "acme/tools@6", "acme/tools@7", 1)
	_, _, err = load()
	if want := "c.yml:3:6: orb acme/tools@7 can be neither vendored nor fetched: the orb registry has no such orb or version"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v\nwant %s", err, want)
	}
}
