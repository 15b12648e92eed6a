package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/slipway-ci/slipway/bot"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// gitRepo is a local git repository as the chat's bot.Repos: what the
// console resolves refs in, reads configs from and checks out. Git is run
// with arguments, never through a shell, and refs reach it only as the
// chat's grammar lets them through.
type gitRepo struct {
	dir        string
	configPath string // in the repository; default .circleci/config.yml
	load       workflows.LoadOptions
}

var _ bot.Repos = (*gitRepo)(nil)

func (g *gitRepo) git(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", g.dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("git %s: %v: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Resolve resolves a branch, tag or SHA; "" is the current branch's head.
func (g *gitRepo) Resolve(ctx context.Context, app *bot.App, ref string) (bot.Commit, error) {
	var c bot.Commit
	if ref == "" {
		b, _ := g.git(ctx, "symbolic-ref", "--quiet", "--short", "HEAD")
		c.Branch, ref = strings.TrimSpace(string(b)), "HEAD"
	} else if _, err := g.git(ctx, "show-ref", "--verify", "--quiet", "refs/heads/"+ref); err == nil {
		c.Branch = ref
	} else if _, err := g.git(ctx, "show-ref", "--verify", "--quiet", "refs/tags/"+ref); err == nil {
		c.Tag = ref
	}
	out, err := g.git(ctx, "rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}")
	if err != nil {
		return c, fmt.Errorf("%s: %w", ref, bot.ErrNoSuchRef)
	}
	c.SHA = strings.TrimSpace(string(out))
	if t, err := g.git(ctx, "log", "-1", "--format=%s", c.SHA); err == nil {
		c.Title = strings.TrimSpace(string(t))
	}
	return c, nil
}

// info describes a commit for people.
func (g *gitRepo) info(ctx context.Context, sha string) engine.CommitInfo {
	out, err := g.git(ctx, "log", "-1", "--format=%s%n%an", sha)
	if err != nil {
		return engine.CommitInfo{}
	}
	title, author, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return engine.CommitInfo{Title: title, Author: author}
}

// Config reads the config at a commit, with the orbs vendored there.
func (g *gitRepo) Config(app *bot.App, sha string) engine.ConfigLoader {
	return engine.ConfigFunc(func(ctx context.Context) (*workflows.Config, error) {
		file := g.configPath
		if app != nil && app.ConfigPath != "" {
			file = app.ConfigPath
		}
		if file == "" {
			file = ".circleci/config.yml"
		}
		data, err := g.blob(ctx, sha, file)
		if err != nil {
			return nil, &workflows.Error{File: file, Msg: fmt.Sprintf("no config at %s in %s at %s", file, g.dir, short(sha))}
		}
		opts := g.load
		if dir, err := g.orbs(ctx, sha, path.Join(path.Dir(file), "orbs")); err == nil && dir != "" {
			defer os.RemoveAll(dir)
			opts.OrbDirs = append([]string{filepath.Join(dir, path.Dir(file), "orbs")}, opts.OrbDirs...)
		}
		return workflows.LoadContext(ctx, file, data, opts)
	})
}

// blob reads a file at a commit, following symbolic links inside the
// repository (a config kept elsewhere and linked, as this repository's
// is).
func (g *gitRepo) blob(ctx context.Context, sha, file string) ([]byte, error) {
	for range 8 {
		out, err := g.git(ctx, "ls-tree", sha, "--", file)
		if err != nil {
			return nil, err
		}
		mode, _, _ := strings.Cut(string(out), " ")
		data, err := g.git(ctx, "cat-file", "blob", sha+":"+file)
		if err != nil {
			return nil, err
		}
		if mode != "120000" {
			return data, nil
		}
		target := path.Clean(path.Join(path.Dir(file), string(data)))
		if strings.HasPrefix(target, "../") || path.IsAbs(target) {
			return nil, errors.New("a link out of the repository")
		}
		file = target
	}
	return nil, errors.New("too many links")
}

// orbs extracts the orbs vendored at a commit into a folder it returns
// ("" when there are none).
func (g *gitRepo) orbs(ctx context.Context, sha, dir string) (string, error) {
	if _, err := g.git(ctx, "cat-file", "-e", sha+":"+dir); err != nil {
		return "", nil
	}
	tmp, err := os.MkdirTemp("", "slipway-orbs-")
	if err != nil {
		return "", err
	}
	archive := exec.CommandContext(ctx, "git", "-C", g.dir, "archive", "--format=tar", sha, "--", dir)
	untar := exec.CommandContext(ctx, "tar", "-x", "-C", tmp)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", err
	}
	untar.Stdin = pipe
	if err := untar.Start(); err != nil {
		return "", err
	}
	if err := archive.Run(); err != nil {
		untar.Wait()
		os.RemoveAll(tmp)
		return "", err
	}
	if err := untar.Wait(); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return tmp, nil
}

// Source is where checkout finds a commit: this repository.
func (g *gitRepo) Source(app *bot.App, sha string) engine.Source {
	return engine.Source{GitDir: g.dir, Revision: sha}
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
