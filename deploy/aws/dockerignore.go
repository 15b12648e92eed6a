package aws

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
)

// A build context leaves out what its .dockerignore excludes, as docker
// build does: teams keep .env files with secrets, and .git, out of their
// images that way.

// ignoreRule is one line of a .dockerignore.
type ignoreRule struct {
	re        *regexp.Regexp
	exception bool // "!pattern": include again
}

// dockerignore is a context's rules; nil excludes nothing.
type dockerignore []ignoreRule

// readDockerignore reads the .dockerignore of the job's folder dir; none
// is no rules. A file that cannot be read fails the build rather than
// send what it would have excluded.
func (s *step) readDockerignore(ctx context.Context, dir string) (dockerignore, error) {
	data, err := readJobFile(ctx, s.run.Files, path.Join(dir, ".dockerignore"), 1<<20)
	if errors.Is(err, fs.ErrNotExist) || cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	return parseDockerignore(data)
}

func parseDockerignore(data []byte) (dockerignore, error) {
	var rules dockerignore
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if rest, ok := strings.CutPrefix(line, "!"); ok {
			r.exception, line = true, strings.TrimSpace(rest)
		}
		line = strings.TrimPrefix(path.Clean("/"+line), "/")
		re, err := patternRegexp(line)
		if err != nil {
			return nil, fmt.Errorf(".dockerignore:%d: %q: %w", n, sc.Text(), err)
		}
		r.re = re
		rules = append(rules, r)
	}
	return rules, sc.Err()
}

// excluded reports whether the context's entry name (a path relative to
// it) is left out: the last rule that matches it, or one of its parent
// folders, decides.
func (d dockerignore) excluded(name string) bool {
	name = strings.TrimSuffix(name, "/")
	out := false
	for _, r := range d {
		if r.matches(name) {
			out = !r.exception
		}
	}
	return out
}

func (r ignoreRule) matches(name string) bool {
	for p := name; p != "." && p != ""; p = path.Dir(p) {
		if r.re.MatchString(p) {
			return true
		}
	}
	return false
}

// patternRegexp is Go's filepath.Match pattern p, with Docker's `**`
// (any number of folders), as a regular expression of whole paths.
func patternRegexp(p string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case strings.HasPrefix(p[i:], "**/"):
			b.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		case c == '\\' && i+1 < len(p):
			i++
			b.WriteString(regexp.QuoteMeta(string(p[i])))
		case c == '[':
			end := strings.IndexByte(p[i:], ']')
			if end < 0 {
				return nil, errors.New("unterminated [")
			}
			class := p[i+1 : i+end]
			if strings.HasPrefix(class, "^") || strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + class + "]")
			i += end
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}
