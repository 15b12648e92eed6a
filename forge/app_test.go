package forge_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/forge"
	"github.com/slipway-ci/slipway/forge/forgetest"
)

func TestAppAuth(t *testing.T) {
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		ttl    time.Duration
		key    *rsa.PublicKey // the App's key the fake knows
		api    string         // appended to the fake's URL
		tokens int            // issued for three calls
		err    string
	}{
		{name: "token cached", ttl: time.Hour, tokens: 1},
		{name: "enterprise server", ttl: time.Hour, api: "api/v3/", tokens: 1},
		// ghinstallation refreshes a token a minute before it expires:
		// one that lives 30s is refreshed on every call, and resolving a
		// branch takes two (the commit, then the ref's kind).
		{name: "token refreshed", ttl: 30 * time.Second, tokens: 6},
		{name: "wrong key", ttl: time.Hour, key: &other.PublicKey, err: "could not refresh installation id 42's token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gh := forgetest.New(t)
			key := &forgetest.TestKey().PublicKey
			if tt.key != nil {
				key = tt.key
			}
			gh.AddApp(7, 42, key)
			gh.SetTokenTTL(tt.ttl)
			gh.AddCommit(repo, "main", forgetest.Commit{Files: map[string]string{"README": "x"}})
			c := newClient(t, gh, forge.Options{APIURL: gh.URL + tt.api, AppID: 7, InstallationID: 42, PrivateKey: forgetest.TestKeyPEM()})
			for range 3 {
				_, err := c.ResolveRef(context.Background(), repo, "main")
				if tt.err != "" {
					if err == nil || !strings.Contains(err.Error(), tt.err) {
						t.Fatalf("ResolveRef: %v, want %q", err, tt.err)
					}
					if !errors.Is(err, forge.ErrUnreachable) {
						t.Errorf("ResolveRef: %v, want ErrUnreachable (a token that cannot be had is tried again)", err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("ResolveRef: %v", err)
				}
			}
			if n := gh.IssuedTokens(); n != tt.tokens {
				t.Errorf("%d tokens issued, want %d", n, tt.tokens)
			}
			for _, call := range gh.CallsTo("POST", "/app/installations/42/access_tokens") {
				if !strings.HasPrefix(call.Header.Get("Authorization"), "Bearer ey") {
					t.Errorf("token request without a JWT: %q", call.Header.Get("Authorization"))
				}
			}
			for _, call := range gh.CallsTo("GET", "/repos/acme/backend/commits/main") {
				if !strings.HasPrefix(call.Header.Get("Authorization"), "token ghs_") {
					t.Errorf("API request without the installation token: %q", call.Header.Get("Authorization"))
				}
			}
		})
	}
}
