package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/slipway-ci/slipway/bot"
	"github.com/slipway-ci/slipway/forge"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// forgeRepos are the apps' GitHub repositories as the chat's bot.Repos.
type forgeRepos struct {
	gh   *forge.Client
	load workflows.LoadOptions
}

var _ bot.Repos = forgeRepos{}

func (f forgeRepos) Resolve(ctx context.Context, app *bot.App, ref string) (bot.Commit, error) {
	c, err := f.gh.ResolveRef(ctx, app.Repo, ref)
	switch {
	case errors.Is(err, forge.ErrNoSuchRef):
		return bot.Commit{}, fmt.Errorf("%w: %w", bot.ErrNoSuchRef, err)
	case errors.Is(err, forge.ErrUnreachable):
		return bot.Commit{}, fmt.Errorf("%w: %w", bot.ErrUnreachable, err)
	case err != nil:
		return bot.Commit{}, err
	}
	return bot.Commit{SHA: c.SHA, Branch: c.Branch, Tag: c.Tag, Title: c.Title}, nil
}

func (f forgeRepos) Config(app *bot.App, sha string) engine.ConfigLoader {
	return f.gh.Config(app.Repo, sha, app.ConfigPath, f.load)
}

func (f forgeRepos) Source(app *bot.App, sha string) engine.Source {
	return engine.Source{Repo: app.Repo, Revision: sha}
}
