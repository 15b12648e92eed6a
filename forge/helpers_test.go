package forge_test

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/forge"
	"github.com/slipway-ci/slipway/forge/forgetest"
)

const repo = "acme/backend"

// setup starts a fake GitHub and a Client of it authenticated with a
// token, caching under a temporary folder.
func setup(t *testing.T) (*forgetest.Server, *forge.Client) {
	t.Helper()
	gh := forgetest.New(t)
	return gh, newClient(t, gh, forge.Options{})
}

// newClient makes a Client of the fake; opts fill in what they leave
// empty.
func newClient(t *testing.T, gh *forgetest.Server, opts forge.Options) *forge.Client {
	t.Helper()
	if opts.APIURL == "" {
		opts.APIURL = gh.URL
	}
	if opts.Token == "" && opts.AppID == 0 {
		opts.Token = gh.Token
	}
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	c, err := forge.New(opts)
	if err != nil {
		t.Fatalf("forge.New: %v", err)
	}
	return c
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
