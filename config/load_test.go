package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/slipway-ci/slipway/workflows/engine"
)

var (
	rsaKeyOnce sync.Once
	rsaKey     *rsa.PrivateKey
)

// testRSAKey is generated once: a key is slow to make, and committing
// one would trip every secret scanner.
func testRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	rsaKeyOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	})
	return rsaKey
}

// writeKey writes an app's key as GitHub hands it out, app.pem in dir.
func writeKey(t *testing.T, dir string) string {
	t.Helper()
	key := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testRSAKey(t))})
	writeFile(t, filepath.Join(dir, "app.pem"), key)
	return string(key)
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestLoad loads a file that uses a GitHub App, with relative paths, and
// variables from the process's environment.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	key := writeKey(t, dir)
	writeFile(t, filepath.Join(dir, "slipway.yml"), []byte(`data_dir: state
github:
  app_id: ${APP_ID}
  private_key_path: app.pem
  installation_id: 678
  webhook_secret: ${SLIPWAY_TEST_WEBHOOK_SECRET}
`))
	t.Setenv("APP_ID", "12345")
	t.Setenv("SLIPWAY_TEST_WEBHOOK_SECRET", "hush")
	// Load resolves relative paths against the file's directory made
	// absolute, whatever the working directory.
	t.Chdir(dir)
	c, err := Load("slipway.yml")
	if err != nil {
		t.Fatal(err)
	}
	want := GitHub{AppID: 12345, PrivateKeyPath: filepath.Join(dir, "app.pem"), PrivateKey: Secret(key),
		InstallationID: 678, WebhookSecret: "hush", APIURL: DefaultGitHubAPIURL}
	if diff := cmp.Diff(want, c.GitHub); diff != "" {
		t.Errorf("github (-want +got):\n%s", diff)
	}
	if !c.GitHub.UsesApp() {
		t.Error("UsesApp() = false")
	}
	if c.DataDir != filepath.Join(dir, "state") || c.Store.Path != filepath.Join(dir, "state", "slipway.db") {
		t.Errorf("data_dir %s, store.path %s", c.DataDir, c.Store.Path)
	}
	if got := c.Secrets(); !cmp.Equal(got, []string{key, "hush"}) {
		t.Errorf("Secrets() = %q", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "config: open ") {
		t.Errorf("got %v, want config: open ...: no such file", err)
	}
}

func TestPrivateKey(t *testing.T) {
	dir := t.TempDir()
	pkcs8, err := x509.MarshalPKCS8PrivateKey(testRSAKey(t))
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ec8, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"pkcs1.pem":  pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testRSAKey(t))}),
		"pkcs8.pem":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		"ec.pem":     pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}),
		"ec8.pem":    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ec8}),
		"broken.pem": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte("not DER")}),
		"key.txt":    []byte("ghp_this is a token, not a key\n"),
		"big.pem":    make([]byte, maxKeySize+1),
	}
	for name, b := range files {
		writeFile(t, filepath.Join(dir, name), b)
	}
	tests := []struct {
		file string
		want string // "" for a valid key
	}{
		{"pkcs1.pem", ""},
		{"pkcs8.pem", ""},
		{filepath.Join(dir, "pkcs1.pem"), ""},
		{"ec.pem", "c.yml:4:21: github.private_key_path: DIR/ec.pem holds \"EC PRIVATE KEY\", not an RSA private key"},
		{"ec8.pem", "c.yml:4:21: github.private_key_path: DIR/ec8.pem is not an RSA private key (GitHub App keys are RSA)"},
		{"broken.pem", "c.yml:4:21: github.private_key_path: DIR/broken.pem holds a damaged RSA PRIVATE KEY"},
		{"key.txt", "c.yml:4:21: github.private_key_path: DIR/key.txt is not a PEM file (GitHub's .pem key of the app)"},
		{"big.pem", "c.yml:4:21: github.private_key_path: DIR/big.pem is too large for a key"},
		{"missing.pem", "c.yml:4:21: github.private_key_path: cannot read the key: open DIR/missing.pem: no such file or directory"},
		{".", "c.yml:4:21: github.private_key_path: cannot read the key: read DIR: is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			src := "data_dir: /d\ngithub:\n  app_id: 1\n  private_key_path: " + tt.file + "\n  installation_id: 2\n  webhook_secret: s\n"
			c, err := Parse("c.yml", []byte(src), nil, dir)
			want := strings.ReplaceAll(tt.want, "DIR", dir)
			switch {
			case want == "" && err != nil:
				t.Fatalf("got %v, want a valid key", err)
			case want == "" && c.GitHub.PrivateKey == "":
				t.Fatal("no key read")
			case want != "" && (err == nil || err.Error() != want):
				t.Fatalf("got %v\nwant %s", err, want)
			}
		})
	}
}

func TestEngine(t *testing.T) {
	c := loadExample(t)
	apps := c.EngineApps()
	want := map[string]*engine.App{"backend": {
		Name: "backend", Repo: "acme/backend", LockAfterRollback: true,
		Environments: map[string]*engine.Environment{
			"staging": {
				Name:      "staging",
				Context:   engine.Context{Name: "staging", Env: map[string]string{}, Secrets: map[string]string{}},
				Deployers: []string{"U0ALICE", "S0DEVS"},
			},
			"production": {
				Name: "production",
				Context: engine.Context{Name: "production", Env: map[string]string{"DEPLOY_TARGET": "prod"},
					Secrets: map[string]string{"DB_PASSWORD": "db-password-example"}},
				Approvers: []string{"U0RELEASE", "S0SRE"},
				Deployers: []string{"U0ALICE"},
			},
		},
	}}
	if diff := cmp.Diff(want, apps); diff != "" {
		t.Errorf("EngineApps (-want +got):\n%s", diff)
	}
	wantCtx := map[string]*engine.Context{"aws": {Name: "aws", Env: map[string]string{"AWS_REGION": "us-east-1"},
		Secrets: map[string]string{"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "aws-secret-example"}}}
	if diff := cmp.Diff(wantCtx, c.EngineContexts()); diff != "" {
		t.Errorf("EngineContexts (-want +got):\n%s", diff)
	}
	// The engine's copies are its own.
	apps["backend"].Environments["production"].Approvers[0] = "U0MALLORY"
	apps["backend"].Environments["production"].Context.Env["DEPLOY_TARGET"] = "elsewhere"
	prod := c.Apps["backend"].Environments["production"]
	if prod.Approvers[0] != "U0RELEASE" || prod.Env["DEPLOY_TARGET"] != "prod" {
		t.Error("changing EngineApps changed the config")
	}
}

func TestLookups(t *testing.T) {
	c := mustParse(t, minimal+"users:\n  OctoCat: U0OCTOCAT\napps:\n  web: {repo: Acme/Web}\n", nil)
	for _, repo := range []string{"Acme/Web", "acme/web", "ACME/WEB"} {
		if a := c.AppForRepo(repo); a == nil || a.Name != "web" {
			t.Errorf("AppForRepo(%q) = %v, want web", repo, a)
		}
	}
	if a := c.AppForRepo("acme/api"); a != nil {
		t.Errorf("AppForRepo(acme/api) = %v, want nil", a)
	}
	if id, ok := c.SlackUser("octocat"); !ok || id != "U0OCTOCAT" {
		t.Errorf("SlackUser(octocat) = %q, %v", id, ok)
	}
	if _, ok := c.SlackUser("hubot"); ok {
		t.Error("SlackUser(hubot) found")
	}
}

func TestLoadTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "slipway.yml")
	writeFile(t, path, []byte(minimal+"# "+strings.Repeat("x", maxSize)+"\n"))
	_, err := Load(path)
	if want := path + ": config is too large (over 1048576 bytes)"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// TestEnvironmentShadowsContext checks that an environment may share its
// name with a server context: the engine gives a job both, the server's
// first.
func TestEnvironmentShadowsContext(t *testing.T) {
	c := mustParse(t, minimal+`contexts:
  production: {env: {REGION: eu-west-1, TARGET: generic}}
apps:
  web:
    repo: acme/web
    environments:
      production: {env: {TARGET: web-prod}}
`, nil)
	if got := c.EngineContexts()["production"].Env["TARGET"]; got != "generic" {
		t.Errorf("server context TARGET = %q", got)
	}
	if got := c.EngineApps()["web"].Environments["production"].Context.Env["TARGET"]; got != "web-prod" {
		t.Errorf("environment TARGET = %q", got)
	}
}
