package forge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/google/go-github/v60/github"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
	"golang.org/x/sync/errgroup"
)

// DefaultConfigPath is where CircleCI, and slipway, look for the config.
const DefaultConfigPath = ".circleci/config.yml"

// orbsDir is where a repository vendors its orbs.
const orbsDir = ".circleci/orbs"

// Bounds on what a config reads from GitHub: a config is text that a
// person wrote, and vendored orbs are a few YAML files each.
const (
	maxConfigSize = 1 << 20 // what the config language reads of one file
	maxOrbFiles   = 500
	maxOrbBytes   = 16 << 20
	maxOrbDepth   = 8
	orbFetchers   = 8
)

// Config returns the loader of the config at path (default
// .circleci/config.yml) of repo at the commit sha, with the orbs the
// repository vendors under .circleci/orbs/ found first.
//
// A config that is missing, too large or wrong is a *workflows.Error (or
// workflows.ErrorList): the pipeline ends in error with it. GitHub not
// answering is any other error, wrapping ErrUnreachable: the start can be
// tried again. The orbs are cached under DataDir by repository and commit,
// which never change.
func (c *Client) Config(repo, sha, path string, opts workflows.LoadOptions) engine.ConfigLoader {
	return engine.ConfigFunc(func(ctx context.Context) (*workflows.Config, error) {
		return c.loadConfig(ctx, repo, sha, path, opts)
	})
}

func (c *Client) loadConfig(ctx context.Context, repo, sha, file string, opts workflows.LoadOptions) (*workflows.Config, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	if !shaRe.MatchString(sha) {
		return nil, fmt.Errorf("forge: config of %s: %q is not a full commit SHA", repo, sha)
	}
	if file == "" {
		file = DefaultConfigPath
	}
	if clean := path.Clean(file); clean != file || !filepath.IsLocal(file) {
		return nil, &workflows.Error{File: file, Msg: "not a path inside the repository"}
	}
	at := fmt.Sprintf("%s@%s", repo, short(sha))
	data, problem, err := c.getFile(ctx, owner, name, sha, file, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("forge: config %s in %s: %w", file, at, err)
	}
	switch problem {
	case "":
	case problemMissing:
		return nil, &workflows.Error{File: file, Msg: fmt.Sprintf("no config at %s in %s", file, at)}
	default:
		return nil, &workflows.Error{File: file, Msg: fmt.Sprintf("%s in %s: %s", file, at, problem)}
	}
	root, cleanup, err := c.orbs(ctx, owner, name, sha)
	if err != nil {
		var werr *workflows.Error
		if errors.As(err, &werr) {
			return nil, err
		}
		return nil, fmt.Errorf("forge: orbs of %s: %w", at, err)
	}
	defer cleanup()
	// The cache folder holds .circleci/orbs as the repository does, so
	// that with its prefix cut the paths in errors are the repository's.
	opts.OrbDirs = append([]string{filepath.Join(root, filepath.FromSlash(orbsDir))}, opts.OrbDirs...)
	cfg, err := workflows.LoadContext(ctx, file, data, opts)
	if err != nil {
		return nil, relocate(err, root+string(filepath.Separator))
	}
	return cfg, nil
}

// relocate cuts the cache folder from the paths in a config's errors, so
// that they name .circleci/orbs/... as the repository does: both in
// positions and in advice ("save its packed YAML as ...").
func relocate(err error, prefix string) error {
	fix := func(e *workflows.Error) *workflows.Error {
		c := *e
		c.File = strings.TrimPrefix(c.File, prefix)
		c.Msg = strings.ReplaceAll(c.Msg, prefix, "")
		return &c
	}
	var list workflows.ErrorList
	if errors.As(err, &list) {
		out := make(workflows.ErrorList, len(list))
		for i, e := range list {
			out[i] = fix(e)
		}
		return out
	}
	var one *workflows.Error
	if errors.As(err, &one) {
		return fix(one)
	}
	return fmt.Errorf("forge: load config: %s", strings.ReplaceAll(err.Error(), prefix, ""))
}

// problemMissing is getFile's problem for a path that is not in the commit.
const problemMissing = "missing"

// getFile fetches a file at a commit through the contents API (and the
// blobs API for a file too large for it to inline). A file that is not
// there, is a folder, or is larger than limit is a problem, said in words;
// err means GitHub did not answer as it should.
func (c *Client) getFile(ctx context.Context, owner, name, sha, p string, limit int64) (data []byte, problem string, err error) {
	fc, dc, _, err := c.gh.Repositories.GetContents(ctx, owner, name, p, &github.RepositoryContentGetOptions{Ref: sha})
	switch {
	case err != nil && httpStatus(err) == 404:
		return nil, problemMissing, nil
	case errors.Is(err, github.ErrPathForbidden):
		return nil, "a path with .. in it cannot be read", nil
	case err != nil && unreachable(err):
		return nil, "", fmt.Errorf("%w: %w", ErrUnreachable, err)
	case err != nil:
		return nil, "", err
	case dc != nil || fc == nil:
		return nil, "is a folder, not a file", nil
	case fc.GetType() != "file":
		return nil, fmt.Sprintf("is a %s, not a file", fc.GetType()), nil
	case int64(fc.GetSize()) > limit:
		return nil, fmt.Sprintf("is %s; slipway reads files of up to %s", size(int64(fc.GetSize())), size(limit)), nil
	}
	if fc.GetEncoding() == "none" || fc.Content == nil && fc.GetSize() > 0 {
		data, _, err = c.gh.Git.GetBlobRaw(ctx, owner, name, fc.GetSHA())
		if err != nil {
			if unreachable(err) {
				return nil, "", fmt.Errorf("%w: %w", ErrUnreachable, err)
			}
			return nil, "", err
		}
	} else {
		s, err := fc.GetContent()
		if err != nil {
			return nil, "", fmt.Errorf("contents of %s: %w", p, err)
		}
		data = []byte(s)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Sprintf("is %s; slipway reads files of up to %s", size(int64(len(data))), size(limit)), nil
	}
	return data, "", nil
}

// size says a number of bytes for people.
func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// orbs returns a folder holding the commit's .circleci/orbs (empty when
// the repository vendors none): the cached one under DataDir, fetched
// once; without DataDir, a temporary one that cleanup removes.
func (c *Client) orbs(ctx context.Context, owner, name, sha string) (root string, cleanup func(), err error) {
	if c.dataDir == "" {
		tmp, err := os.MkdirTemp("", "slipway-orbs-")
		if err != nil {
			return "", nil, err
		}
		cleanup = func() { os.RemoveAll(tmp) }
		if err := c.fetchOrbs(ctx, owner, name, sha, tmp); err != nil {
			cleanup()
			return "", nil, err
		}
		return tmp, cleanup, nil
	}
	root = filepath.Join(c.dataDir, "orbs", strings.ToLower(owner), strings.ToLower(name), sha)
	err = c.single(ctx, "orbs:"+root, func(ctx context.Context) error {
		if _, err := os.Stat(root); err == nil {
			return nil
		}
		parent := filepath.Dir(root)
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return err
		}
		tmp, err := os.MkdirTemp(parent, "."+sha+".tmp-")
		if err != nil {
			return err
		}
		if err := c.fetchOrbs(ctx, owner, name, sha, tmp); err != nil {
			os.RemoveAll(tmp)
			return err
		}
		// The folder appears whole or not at all.
		if err := os.Rename(tmp, root); err != nil {
			os.RemoveAll(tmp)
			if _, serr := os.Stat(root); serr == nil {
				return nil // another process made it first
			}
			return err
		}
		c.log.Debug("cached vendored orbs", "repo", owner+"/"+name, "sha", short(sha))
		return nil
	})
	return root, func() {}, err
}

// fetchOrbs writes the commit's .circleci/orbs into dest/.circleci/orbs,
// walking the folder with the contents API: at most maxOrbFiles files,
// maxOrbBytes in all, maxOrbDepth folders deep; more is a config problem.
// Symbolic links and submodules are left out.
func (c *Client) fetchOrbs(ctx context.Context, owner, name, sha, dest string) error {
	if err := os.MkdirAll(filepath.Join(dest, filepath.FromSlash(orbsDir)), 0o755); err != nil {
		return err
	}
	type file struct {
		path string
		size int64
	}
	var files []file
	var total int64
	dirs := []string{orbsDir}
	for len(dirs) > 0 {
		dir := dirs[0]
		dirs = dirs[1:]
		_, entries, _, err := c.gh.Repositories.GetContents(ctx, owner, name, dir, &github.RepositoryContentGetOptions{Ref: sha})
		switch {
		case err != nil && httpStatus(err) == 404 && dir == orbsDir:
			return nil // nothing vendored
		case err != nil && unreachable(err):
			return fmt.Errorf("list %s: %w: %w", dir, ErrUnreachable, err)
		case err != nil:
			return fmt.Errorf("list %s: %w", dir, err)
		case entries == nil && dir == orbsDir:
			return nil // a file named like the folder: nothing vendored
		}
		for _, e := range entries {
			p := e.GetPath()
			if rel, ok := strings.CutPrefix(p, orbsDir+"/"); !ok || !filepath.IsLocal(rel) || path.Clean(p) != p {
				return fmt.Errorf("list %s: GitHub answered an entry outside it: %q", dir, p)
			}
			switch e.GetType() {
			case "dir":
				if strings.Count(p, "/")-strings.Count(orbsDir, "/") >= maxOrbDepth {
					return &workflows.Error{File: p, Msg: fmt.Sprintf("vendored orbs nest more than %d folders deep", maxOrbDepth)}
				}
				dirs = append(dirs, p)
			case "file":
				files = append(files, file{p, int64(e.GetSize())})
				total += int64(e.GetSize())
				if len(files) > maxOrbFiles {
					return &workflows.Error{File: orbsDir, Msg: fmt.Sprintf("more than %d vendored orb files; slipway reads at most %d", maxOrbFiles, maxOrbFiles)}
				}
				if total > maxOrbBytes {
					return &workflows.Error{File: orbsDir, Msg: fmt.Sprintf("vendored orbs are more than %s; slipway reads at most %s", size(maxOrbBytes), size(maxOrbBytes))}
				}
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(orbFetchers)
	for _, f := range files {
		g.Go(func() error {
			data, problem, err := c.getFile(gctx, owner, name, sha, f.path, maxOrbBytes)
			if err != nil {
				return fmt.Errorf("get %s: %w", f.path, err)
			}
			if problem != "" {
				return fmt.Errorf("get %s: %s", f.path, problem)
			}
			to := filepath.Join(dest, filepath.FromSlash(f.path))
			if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
				return err
			}
			return os.WriteFile(to, data, 0o644)
		})
	}
	return g.Wait()
}

// single runs fn for key once at a time across callers: the others wait
// for its outcome. When the one running it gave up (its ctx ended) while
// the waiting caller's ctx has not, the waiting caller runs it itself.
func (c *Client) single(ctx context.Context, key string, fn func(ctx context.Context) error) error {
	for {
		ran := false
		_, err, _ := c.fetches.Do(key, func() (any, error) {
			ran = true
			return nil, fn(ctx)
		})
		if err != nil && !ran && ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			continue
		}
		return err
	}
}
