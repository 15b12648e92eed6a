package forge_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/slipway-ci/slipway/forge"
	"github.com/slipway-ci/slipway/forge/forgetest"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// untar lists a tarball's regular files and their contents.
func untar(t *testing.T, name string) map[string]string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string]string{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = string(b)
	}
}

func TestFetchSource(t *testing.T) {
	gh := forgetest.New(t)
	dir := t.TempDir()
	c := newClient(t, gh, forge.Options{DataDir: dir})
	sha := gh.AddCommit(repo, "main", forgetest.Commit{Files: map[string]string{"main.go": "package main\n", "cmd/run.sh": "echo hi\n"}})

	got, err := c.FetchSource(context.Background(), engine.Source{Repo: repo, Revision: sha})
	if err != nil {
		t.Fatalf("FetchSource: %v", err)
	}
	want := engine.Source{Repo: repo, Revision: sha, Tarball: filepath.Join(dir, "sources", "acme", "backend", sha+".tar.gz")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FetchSource (-want +got):\n%s", diff)
	}
	top := "acme-backend-" + sha[:7] + "/"
	if diff := cmp.Diff(map[string]string{top + "main.go": "package main\n", top + "cmd/run.sh": "echo hi\n"}, untar(t, got.Tarball)); diff != "" {
		t.Errorf("tarball (-want +got):\n%s", diff)
	}

	// The redirect was followed, and the token went to the API only.
	type seen struct {
		Server, Method, Path string
		Auth                 bool
	}
	var calls []seen
	for _, call := range gh.Calls() {
		calls = append(calls, seen{call.Server, call.Method, call.Path, call.Header.Get("Authorization") != ""})
	}
	wantCalls := []seen{
		{"api", "GET", "/repos/acme/backend/tarball/" + sha, true},
		{"codeload", "GET", "/acme/backend/legacy.tar.gz/" + sha, false},
	}
	if diff := cmp.Diff(wantCalls, calls); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}

	// Fetched once: the file is found the next time.
	if _, err := c.FetchSource(context.Background(), engine.Source{Repo: repo, Revision: sha}); err != nil {
		t.Fatal(err)
	}
	if n := len(gh.Calls()); n != 2 {
		t.Errorf("%d requests after a second fetch, want 2", n)
	}
}

func TestFetchSourceConcurrent(t *testing.T) {
	gh := forgetest.New(t)
	c := newClient(t, gh, forge.Options{})
	sha := gh.AddCommit(repo, "main", forgetest.Commit{Files: map[string]string{"a": "b"}})
	// Hold the download back so that every fetch overlaps the first.
	gh.Inject(forgetest.Fault{Path: "/acme/backend/legacy.tar.gz/*", Delay: 200 * time.Millisecond})
	var wg sync.WaitGroup
	paths := make([]string, 8)
	errs := make([]error, 8)
	for i := range paths {
		wg.Go(func() {
			src, err := c.FetchSource(context.Background(), engine.Source{Repo: repo, Revision: sha})
			paths[i], errs[i] = src.Tarball, err
		})
	}
	wg.Wait()
	for i := range paths {
		if errs[i] != nil || paths[i] != paths[0] {
			t.Errorf("fetch %d: %q, %v", i, paths[i], errs[i])
		}
	}
	if n := len(gh.CallsTo("GET", "/repos/acme/backend/tarball/*")); n != 1 {
		t.Errorf("%d tarball requests, want 1", n)
	}
	if n := len(gh.CallsTo("GET", "/acme/backend/legacy.tar.gz/*")); n != 1 {
		t.Errorf("%d downloads, want 1", n)
	}
}

func TestFetchSourceLeaderCanceled(t *testing.T) {
	gh := forgetest.New(t)
	c := newClient(t, gh, forge.Options{})
	sha := gh.AddCommit(repo, "main", forgetest.Commit{Files: map[string]string{"a": "b"}})
	gh.Inject(forgetest.Fault{Path: "/acme/backend/legacy.tar.gz/*", Delay: 300 * time.Millisecond, Times: 1})
	first := make(chan error, 1)
	go func() {
		_, err := c.FetchSource(ctxTimeout(t, 100*time.Millisecond), engine.Source{Repo: repo, Revision: sha})
		first <- err
	}()
	time.Sleep(20 * time.Millisecond) // the first fetch leads
	src, err := c.FetchSource(context.Background(), engine.Source{Repo: repo, Revision: sha})
	if err != nil {
		t.Fatalf("the waiting fetch failed with the canceled one: %v", err)
	}
	if src.Tarball == "" {
		t.Error("no tarball")
	}
	if err := <-first; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the canceled fetch: %v", err)
	}
}

func TestFetchSourceErrors(t *testing.T) {
	const unknown = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name    string
		src     func(sha string) engine.Source
		fault   *forgetest.Fault
		max     int64
		want    string
		unreach bool
	}{
		{name: "unknown commit", src: func(string) engine.Source { return engine.Source{Repo: repo, Revision: unknown} },
			want: "forge: GET tarball acme/backend@0123456: 404 Not Found"},
		{name: "unknown repository", src: func(sha string) engine.Source { return engine.Source{Repo: "acme/gone", Revision: sha} },
			want: "forge: GET tarball acme/gone@SHA7: 404 Not Found"},
		{name: "api 5xx", fault: &forgetest.Fault{Path: "/repos/acme/backend/tarball/*", Status: 502},
			want: "forge: GET tarball acme/backend@SHA7: 502 Bad Gateway", unreach: true},
		{name: "codeload 404", fault: &forgetest.Fault{Path: "/acme/backend/legacy.tar.gz/*", Status: 404},
			want: "forge: GET tarball acme/backend@SHA7: 404 Not Found"},
		{name: "not gzip", fault: &forgetest.Fault{Path: "/acme/backend/legacy.tar.gz/*", Status: 200, Body: "<html>"},
			want: "forge: GET tarball acme/backend@SHA7: the answer is not a gzip file"},
		{name: "too large", max: 64, want: "forge: GET tarball acme/backend@SHA7: the tarball is"},
		{name: "short sha", src: func(sha string) engine.Source { return engine.Source{Repo: repo, Revision: sha[:7]} },
			want: "is not a full commit SHA"},
		{name: "not a repository", src: func(sha string) engine.Source { return engine.Source{Repo: "../../etc", Revision: sha} },
			want: `forge: "../../etc" is not a GitHub repository`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gh := forgetest.New(t)
			dir := t.TempDir()
			c := newClient(t, gh, forge.Options{DataDir: dir, MaxTarballSize: tt.max})
			sha := gh.AddCommit(repo, "main", forgetest.Commit{Files: map[string]string{"main.go": strings.Repeat("package main\n", 100)}})
			if tt.fault != nil {
				gh.Inject(*tt.fault)
			}
			src := engine.Source{Repo: repo, Revision: sha}
			if tt.src != nil {
				src = tt.src(sha)
			}
			_, err := c.FetchSource(context.Background(), src)
			want := strings.ReplaceAll(tt.want, "SHA7", sha[:7])
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("FetchSource: %v, want %q", err, want)
			}
			if errors.Is(err, forge.ErrUnreachable) != tt.unreach {
				t.Errorf("FetchSource: %v: ErrUnreachable %v, want %v", err, !tt.unreach, tt.unreach)
			}
			if strings.Contains(err.Error(), "token=") {
				t.Errorf("the error shows codeload's token: %v", err)
			}
			var files []string
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					files = append(files, p)
				}
				return nil
			})
			if len(files) > 0 {
				t.Errorf("files left: %v", files)
			}
		})
	}
}

func TestFetchSourceLocal(t *testing.T) {
	_, c := setup(t)
	for _, src := range []engine.Source{{GitDir: "/src/app", Revision: "abc"}, {Tarball: "/cache/x.tar.gz"}} {
		got, err := c.FetchSource(context.Background(), src)
		if err != nil || got != src {
			t.Errorf("FetchSource(%+v) = %+v, %v; want it unchanged", src, got, err)
		}
	}
}
