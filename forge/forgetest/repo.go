package forgetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Commit is a commit to add to a repository: its whole tree, not a diff.
type Commit struct {
	Message string // default "commit N"
	Author  Person // default Alice Example <alice@example.com>, login alice
	// Files is the tree: slash-separated path → content.
	Files map[string]string
	// Executable lists the paths of Files whose mode is 100755.
	Executable []string
}

// Person is a commit's author. Login is the GitHub account GitHub matched
// by email; empty when none matched (GitHub answers "author": null).
type Person struct {
	Name, Email, Login string
}

// ReadTree reads dir (a folder on disk, .git excluded) into a Commit's
// tree. Symbolic links are left out.
func ReadTree(t testing.TB, dir string) Commit {
	t.Helper()
	c := Commit{Files: map[string]string{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		c.Files[rel] = string(data)
		if info, err := d.Info(); err == nil && info.Mode()&0o111 != 0 {
			c.Executable = append(c.Executable, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("forgetest: read %s: %v", dir, err)
	}
	return c
}

// repo is one repository of the fake, with its history and what was
// posted to it.
type repo struct {
	id            int64
	owner, name   string
	defaultBranch string
	branches      map[string]string // name → SHA
	tags          map[string]string
	commits       map[string]*commit
	statuses      []Status
	deployments   []*Deployment
}

func (r *repo) fullName() string { return r.owner + "/" + r.name }

type commit struct {
	sha     string
	tree    string
	parents []string
	message string
	author  Person
	when    time.Time
	files   map[string]*blob // path → blob
}

type blob struct {
	sha  string
	data []byte
	exec bool
}

// gitHash is the SHA-1 git gives an object, so that the fake's SHAs look
// and behave like GitHub's.
func gitHash(kind string, body []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "%s %d\x00", kind, len(body))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// treeHash is the SHA of the tree object of dir ("" for the root).
func (c *commit) treeHash(dir string) string {
	type entry struct {
		name, mode, sha string
	}
	var entries []entry
	seen := map[string]bool{}
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	for p, b := range c.files {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		if first, _, isDir := strings.Cut(rest, "/"); isDir {
			if !seen[first] {
				seen[first] = true
				entries = append(entries, entry{first, "40000", c.treeHash(prefix + first)})
			}
			continue
		}
		mode := "100644"
		if b.exec {
			mode = "100755"
		}
		entries = append(entries, entry{rest, mode, b.sha})
	}
	// Git sorts a tree's entries by name, a folder's as if it ended in "/".
	key := func(e entry) string {
		if e.mode == "40000" {
			return e.name + "/"
		}
		return e.name
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(key(a), key(b)) })
	var body bytes.Buffer
	for _, e := range entries {
		raw, _ := hex.DecodeString(e.sha)
		fmt.Fprintf(&body, "%s %s\x00", e.mode, e.name)
		body.Write(raw)
	}
	return gitHash("tree", body.Bytes())
}

// hash sets the commit's tree and commit SHAs as git computes them.
func (c *commit) hash() {
	c.tree = c.treeHash("")
	var body strings.Builder
	fmt.Fprintf(&body, "tree %s\n", c.tree)
	for _, p := range c.parents {
		fmt.Fprintf(&body, "parent %s\n", p)
	}
	sig := fmt.Sprintf("%s <%s> %d +0000", c.author.Name, c.author.Email, c.when.Unix())
	fmt.Fprintf(&body, "author %s\ncommitter %s\n\n%s\n", sig, sig, c.message)
	c.sha = gitHash("commit", []byte(body.String()))
}

// isDir says whether p is a folder of the commit's tree ("" is the root).
func (c *commit) isDir(p string) bool {
	if p == "" {
		return true
	}
	for f := range c.files {
		if strings.HasPrefix(f, p+"/") {
			return true
		}
	}
	return false
}

// list returns the entries directly under the folder p: names mapped to
// whether they are folders.
func (c *commit) list(p string) map[string]bool {
	prefix := ""
	if p != "" {
		prefix = p + "/"
	}
	out := map[string]bool{}
	for f := range c.files {
		rest, ok := strings.CutPrefix(f, prefix)
		if !ok {
			continue
		}
		first, _, isDir := strings.Cut(rest, "/")
		out[first] = out[first] || isDir
	}
	return out
}

// tarball is the commit's tree as GitHub serves it: a gzipped tar whose
// entries sit in one folder "owner-repo-sha7/", after a pax global header
// holding the commit's SHA.
func (c *commit) tarball(owner, name string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	top := fmt.Sprintf("%s-%s-%s/", owner, name, c.sha[:7])
	must := func(err error) {
		if err != nil {
			panic("forgetest: tarball: " + err.Error())
		}
	}
	must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header",
		PAXRecords: map[string]string{"comment": c.sha}, Format: tar.FormatPAX}))
	must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: top, Mode: 0o775, ModTime: c.when, Format: tar.FormatPAX}))
	dirs := map[string]bool{}
	for _, p := range slices.Sorted(maps.Keys(c.files)) {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var names []string
	for d := range dirs {
		names = append(names, d+"/")
	}
	for p := range c.files {
		names = append(names, p)
	}
	slices.Sort(names)
	for _, n := range names {
		if strings.HasSuffix(n, "/") {
			must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: top + n, Mode: 0o775, ModTime: c.when, Format: tar.FormatPAX}))
			continue
		}
		b := c.files[n]
		mode := int64(0o664)
		if b.exec {
			mode = 0o775
		}
		must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: top + n, Mode: mode, Size: int64(len(b.data)),
			ModTime: c.when, Format: tar.FormatPAX}))
		_, err := tw.Write(b.data)
		must(err)
	}
	must(tw.Close())
	must(gz.Close())
	return buf.Bytes()
}

// resolve finds the commit a ref names, as GitHub's commits/{ref} does: a
// full SHA, a tag, a branch (also as refs/tags/x, refs/heads/x, tags/x,
// heads/x), then an unambiguous SHA prefix of at least 4 characters.
func (r *repo) resolve(ref string) *commit {
	if c := r.commits[ref]; c != nil {
		return c
	}
	for _, p := range []struct {
		prefixes []string
		refs     map[string]string
	}{
		{[]string{"refs/tags/", "tags/", ""}, r.tags},
		{[]string{"refs/heads/", "heads/", ""}, r.branches},
	} {
		for _, prefix := range p.prefixes {
			name, ok := strings.CutPrefix(ref, prefix)
			if !ok {
				continue
			}
			if sha, ok := p.refs[name]; ok {
				return r.commits[sha]
			}
		}
	}
	if len(ref) < 4 || len(ref) > 40 || strings.Trim(strings.ToLower(ref), "0123456789abcdef") != "" {
		return nil
	}
	var found *commit
	for sha, c := range r.commits {
		if strings.HasPrefix(sha, strings.ToLower(ref)) {
			if found != nil {
				return nil // ambiguous
			}
			found = c
		}
	}
	return found
}
