package orbregistry_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/slipway-ci/slipway/orbregistry"
	"github.com/slipway-ci/slipway/orbregistry/registrytest"
	"github.com/slipway-ci/slipway/workflows"
)

func TestResolveAndSource(t *testing.T) {
	reg := registrytest.New(t, map[string]map[string]string{
		"circleci/node": {"4.7.0": "a", "5.0.2": "b", "5.1.0": "c", "5.1.10": "d", "5.2.1": "e", "6.0.0": "f"},
	})
	c := orbregistry.New(reg.URL, orbregistry.Options{})
	ctx := context.Background()
	for ref, want := range map[string]string{"5": "5.2.1", "5.1": "5.1.10", "4": "4.7.0", "volatile": "6.0.0", "5.0.2": "5.0.2", "dev:alpha": "dev:alpha"} {
		got, err := c.Resolve(ctx, "circleci/node", ref)
		if err != nil || got != want {
			t.Errorf("Resolve(%s) = %q, %v, want %s", ref, got, err, want)
		}
	}
	for _, ref := range []string{"7", "5.3", "x.y"} {
		if _, err := c.Resolve(ctx, "circleci/node", ref); !errors.Is(err, workflows.ErrOrbNotFound) {
			t.Errorf("Resolve(%s): %v, want ErrOrbNotFound", ref, err)
		}
	}
	if _, err := c.Resolve(ctx, "circleci/nope", "1"); !errors.Is(err, workflows.ErrOrbNotFound) {
		t.Errorf("Resolve of a missing orb: %v", err)
	}
	src, err := c.Source(ctx, "circleci/node", "5.1.10")
	if err != nil || string(src) != "d" {
		t.Errorf("Source = %q, %v", src, err)
	}
	if _, err := c.Source(ctx, "circleci/node", "9.9.9"); !errors.Is(err, workflows.ErrOrbNotFound) {
		t.Errorf("Source of a missing version: %v", err)
	}
	reg.SetDown(true)
	if _, err := c.Source(ctx, "circleci/node", "5.1.10"); err == nil || errors.Is(err, workflows.ErrOrbNotFound) || !strings.Contains(err.Error(), "503") {
		t.Errorf("Source while down: %v", err)
	}
	// Each Resolve of a partial version lists the orb's versions; an
	// exact one asks nothing; each Source asks for its version.
	var lists int
	var sources []string
	for _, q := range reg.Queries() {
		if q.Kind == "orb" {
			lists++
		} else {
			sources = append(sources, q.Ref)
		}
	}
	if lists != 7 || !cmp.Equal(sources, []string{"circleci/node@5.1.10", "circleci/node@9.9.9"}) {
		t.Errorf("%d version lists, sources %q", lists, sources)
	}
}

// TestRequests checks what the client sends: the CLI's queries, as JSON
// with variables, and the token.
func TestRequests(t *testing.T) {
	var got []map[string]any
	var tokens []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/graphql", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req map[string]any
		if err := json.Unmarshal(b, &req); err != nil {
			t.Error(err)
		}
		got = append(got, req["variables"].(map[string]any))
		tokens = append(tokens, r.Header.Get("Circle-Token"))
		if !strings.Contains(req["query"].(string), "orbVersion(orbVersionRef: $orbVersionRef)") {
			t.Errorf("query %q", req["query"])
		}
		io.WriteString(w, `{"data": {"orbVersion": {"id": "x", "version": "1.0.0", "orb": {"id": "y"}, "source": "commands: {}\n"}}}`)
	})
	mux.HandleFunc("POST /api/graphql-errors", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"errors": [{"message": "Unauthorized"}]}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := orbregistry.New(srv.URL+"/api/graphql", orbregistry.Options{Token: "secret"})
	src, err := c.Source(context.Background(), "acme/tools", "1.0.0")
	if err != nil || string(src) != "commands: {}\n" {
		t.Fatalf("Source = %q, %v", src, err)
	}
	if !cmp.Equal(got, []map[string]any{{"orbVersionRef": "acme/tools@1.0.0"}}) || tokens[0] != "secret" {
		t.Errorf("sent %v with tokens %q", got, tokens)
	}
	_, err = orbregistry.New(srv.URL+"/api/graphql-errors", orbregistry.Options{}).Source(context.Background(), "acme/tools", "1.0.0")
	if err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Errorf("errors: %v", err)
	}
}
