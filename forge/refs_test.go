package forge_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/slipway-ci/slipway/forge"
	"github.com/slipway-ci/slipway/forge/forgetest"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		opts forge.Options
		want string // in the error; "" for none
	}{
		{"token", forge.Options{Token: "t"}, ""},
		{"app", forge.Options{AppID: 1, InstallationID: 2, PrivateKey: forgetest.TestKeyPEM()}, ""},
		{"enterprise", forge.Options{Token: "t", APIURL: "https://ghe.example.com/api/v3"}, ""},
		{"no credentials", forge.Options{}, "forge: no GitHub credentials"},
		{"both", forge.Options{Token: "t", AppID: 1, InstallationID: 2, PrivateKey: forgetest.TestKeyPEM()}, "both a token and a GitHub App"},
		{"app without key", forge.Options{AppID: 1, InstallationID: 2}, "forge: GitHub App: missing private key"},
		{"app without IDs", forge.Options{PrivateKey: forgetest.TestKeyPEM()}, "missing app ID, installation ID"},
		{"bad key", forge.Options{AppID: 1, InstallationID: 2, PrivateKey: []byte("-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----\n")}, "forge: GitHub App 1: private key"},
		{"bad url", forge.Options{Token: "t", APIURL: "ftp://x/"}, `forge: api url "ftp://x/"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := forge.New(tt.opts)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("New: %v, want an error with %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "nope") {
				t.Errorf("the error shows the key: %v", err)
			}
		})
	}
}

func TestResolveRef(t *testing.T) {
	gh, c := setup(t)
	first := gh.AddCommit(repo, "main", forgetest.Commit{Message: "Add the API\n\nWith a body.",
		Author: forgetest.Person{Name: "Alice Example", Email: "alice@example.com", Login: "alice"},
		Files:  map[string]string{"README": "one\n"}})
	head := gh.AddCommit(repo, "main", forgetest.Commit{Message: "Fix the build",
		Author: forgetest.Person{Name: "Bob", Email: "bob@users.noreply.example.com"},
		Files:  map[string]string{"README": "two\n"}})
	feature := gh.AddCommit(repo, "feature/login#2", forgetest.Commit{Message: "Log in", Files: map[string]string{"README": "three\n"}})
	gh.Tag(repo, "v1.4.2", first)

	commit := func(sha, title, login, name, email string) forge.Commit {
		return forge.Commit{SHA: sha, Title: title, AuthorLogin: login, AuthorName: name, AuthorEmail: email,
			URL: strings.TrimSuffix(gh.URL, "/") + "/" + repo + "/commit/" + sha}
	}
	alice := commit(first, "Add the API", "alice", "Alice Example", "alice@example.com")
	bob := commit(head, "Fix the build", "", "Bob", "bob@users.noreply.example.com")
	tests := []struct {
		name string
		ref  string
		want forge.Commit
	}{
		{"default branch", "", withRef(bob, "main", "")},
		{"branch", "main", withRef(bob, "main", "")},
		{"branch with a slash and a hash", "feature/login#2", withRef(commit(feature, "Log in", "alice", "Alice Example", "alice@example.com"), "feature/login#2", "")},
		{"tag", "v1.4.2", withRef(alice, "", "v1.4.2")},
		{"short sha", first[:7], alice},
		{"full sha", first, alice},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.ResolveRef(context.Background(), repo, tt.ref)
			if err != nil {
				t.Fatalf("ResolveRef(%q): %v", tt.ref, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ResolveRef(%q) (-want +got):\n%s", tt.ref, diff)
			}
		})
	}
}

func TestResolveRefErrors(t *testing.T) {
	tests := []struct {
		name  string
		repo  string
		ref   string
		fault *forgetest.Fault
		down  bool
		want  error
		text  string
		calls int // requests the fake saw, -1 for any
	}{
		{name: "unknown ref", repo: repo, ref: "nope", want: forge.ErrNoSuchRef, text: "forge: resolve acme/backend@nope: no such ref", calls: 1},
		{name: "unknown repository", repo: "acme/gone", ref: "main", want: forge.ErrNoSuchRef, calls: 1},
		{name: "unknown repository, default branch", repo: "acme/gone", want: forge.ErrNoSuchRef, text: "forge: repository acme/gone: no such ref", calls: 1},
		{name: "not a ref", repo: repo, ref: "main..other", want: forge.ErrNoSuchRef, calls: 0},
		{name: "leaves the path", repo: repo, ref: "../../../orgs", want: forge.ErrNoSuchRef, calls: 0},
		{name: "not a repository", repo: "../x", ref: "main", want: forge.ErrNoSuchRef, calls: 0},
		{name: "5xx", repo: repo, ref: "main", fault: &forgetest.Fault{Path: "/repos/acme/backend/commits/*", Status: 502},
			want: forge.ErrUnreachable, text: "forge: resolve acme/backend@main: github unreachable", calls: 1},
		{name: "rate limited", repo: repo, ref: "main", fault: &forgetest.Fault{Path: "/repos/acme/backend/commits/*", Status: 429,
			Header: map[string]string{"Retry-After": "30"}}, want: forge.ErrUnreachable, calls: 1},
		{name: "timeout", repo: repo, ref: "main", fault: &forgetest.Fault{Path: "/repos/acme/backend/commits/*", Delay: 5 * time.Second},
			want: forge.ErrUnreachable, calls: 1},
		{name: "server down", repo: repo, ref: "main", down: true, want: forge.ErrUnreachable, calls: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gh, c := setup(t)
			gh.AddCommit(repo, "main", forgetest.Commit{Files: map[string]string{"README": "x"}})
			if tt.fault != nil {
				gh.Inject(*tt.fault)
			}
			if tt.down {
				gh.Close()
			}
			_, err := c.ResolveRef(ctxTimeout(t, 300*time.Millisecond), tt.repo, tt.ref)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ResolveRef: %v, want %v", err, tt.want)
			}
			other := forge.ErrUnreachable
			if tt.want == forge.ErrUnreachable {
				other = forge.ErrNoSuchRef
			}
			if errors.Is(err, other) {
				t.Errorf("ResolveRef: %v is also %v", err, other)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("ResolveRef: %q, want it to contain %q", err, tt.text)
			}
			if n := len(gh.Calls()); tt.calls >= 0 && n != tt.calls {
				t.Errorf("the fake saw %d requests, want %d", n, tt.calls)
			}
		})
	}
}

func TestEnterpriseServerURL(t *testing.T) {
	gh := forgetest.New(t)
	sha := gh.AddCommit(repo, "trunk", forgetest.Commit{Files: map[string]string{"README": "x"}})
	c := newClient(t, gh, forge.Options{APIURL: gh.URL + "api/v3"})
	got, err := c.ResolveRef(context.Background(), repo, "")
	if err != nil {
		t.Fatal(err)
	}
	if got.SHA != sha {
		t.Errorf("SHA %s, want %s", got.SHA, sha)
	}
	for _, call := range gh.Calls() {
		if !strings.Contains(call.Header.Get("User-Agent"), "slipway") {
			t.Errorf("%s %s: User-Agent %q", call.Method, call.Path, call.Header.Get("User-Agent"))
		}
	}
	if n := len(gh.Calls()); n != 2 {
		t.Errorf("%d requests, want 2 (repository, commit)", n)
	}
}

func TestDefaultBranch(t *testing.T) {
	gh, c := setup(t)
	gh.AddCommit(repo, "develop", forgetest.Commit{Files: map[string]string{"README": "x"}})
	gh.AddCommit(repo, "main", forgetest.Commit{Files: map[string]string{"README": "y"}})
	got, err := c.DefaultBranch(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	if got != "develop" {
		t.Errorf("DefaultBranch = %q, want develop", got)
	}
	want := []string{"GET /repos/acme/backend"}
	var calls []string
	for _, call := range gh.Calls() {
		calls = append(calls, call.Method+" "+call.Path)
	}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func withRef(c forge.Commit, branch, tag string) forge.Commit {
	c.Branch, c.Tag = branch, tag
	return c
}
