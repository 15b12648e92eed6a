package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/docker/docker/client"

	"github.com/slipway-ci/slipway/bot"
	"github.com/slipway-ci/slipway/bot/console"
	"github.com/slipway-ci/slipway/config"
	"github.com/slipway-ci/slipway/executors/docker"
	"github.com/slipway-ci/slipway/executors/local"
	"github.com/slipway-ci/slipway/orbregistry"
	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

const consoleUsage = "usage: slipway console [--repo DIR] [--config FILE [--app NAME]] [--executor auto|local|docker]"

// consoleGroup is the group every console user is in: the embedded
// production's approvers, so that anyone but the change's author may
// approve it.
const consoleGroup = "team"

// consoleCommand is `slipway console`: the bot in a terminal, on the git
// repository DIR, pushing its branches as GitHub would.
func consoleCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("console", flag.ContinueOnError)
	fs.SetOutput(stderr)
	repo := fs.String("repo", ".", "the git repository whose pushes the console acts out")
	cfgFile := fs.String("config", "", "a slipway.yml to use instead of the embedded defaults (its store, apps, contexts)")
	appName := fs.String("app", "", "with --config, the app DIR is (default: its only app)")
	executor := fs.String("executor", "auto", "where jobs run: local, docker, or auto (docker when an engine answers and has the config's images)")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(rest) > 0 || !slices.Contains([]string{"auto", "local", "docker"}, *executor) {
		fmt.Fprintln(stderr, consoleUsage)
		return 2
	}
	dir := absDir(*repo)
	if out := gitOutput(ctx, dir, "rev-parse", "--show-toplevel"); out == "" {
		fmt.Fprintf(stderr, "slipway console: %s is not a git repository\n", dir)
		return 2
	} else {
		dir = out
	}
	c, err := newConsole(ctx, dir, *cfgFile, *appName, *executor, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "slipway console:", err)
		return 1
	}
	defer c.close()
	if err := c.run(ctx, stdin); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "slipway console:", err)
		return 1
	}
	return 0
}

// consoleRun is one console session and what it runs on.
type consoleRun struct {
	out      io.Writer
	log      *slog.Logger
	db       *store.DB
	engine   *engine.Engine
	notifier *bot.Notifier
	chat     *console.Console
	bot      *bot.Bot
	app      *bot.App
	repo     *gitRepo
	cleanup  []func()
	pushes   int
}

func newConsole(ctx context.Context, dir, cfgFile, appName, executor string, stdout, stderr io.Writer) (*consoleRun, error) {
	c := &consoleRun{out: stdout, log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	var apps map[string]*engine.App
	var contexts map[string]*engine.Context
	var storePath, dataDir string
	c.repo = &gitRepo{dir: dir}
	orbs := config.Orbs{Registry: orbregistry.DefaultURL, Token: config.Secret(os.Getenv("CIRCLECI_TOKEN"))}
	if cfgFile == "" {
		tmp, release, err := runDir(os.TempDir())
		if err != nil {
			return nil, err
		}
		c.cleanup = append(c.cleanup, release)
		storePath, dataDir = filepath.Join(tmp, "slipway.db"), filepath.Join(tmp, "data")
		// The embedded defaults: this repository as app "app", staging
		// open to all, production protected, approved by anyone but the
		// change's author.
		c.app = &bot.App{App: &engine.App{Name: "app", Repo: "local/" + filepath.Base(dir), LockAfterRollback: true,
			Environments: map[string]*engine.Environment{
				"staging":    {Name: "staging", Context: engine.Context{Name: "staging"}, AllowSelfApproval: true},
				"production": {Name: "production", Context: engine.Context{Name: "production"}, Approvers: []string{consoleGroup}},
			}}, Channel: console.Channel}
		apps = map[string]*engine.App{"app": c.app.App}
		contexts = map[string]*engine.Context{}
	} else {
		cfg, err := config.Load(cfgFile)
		if err != nil {
			return nil, err
		}
		name := appName
		if name == "" && len(cfg.Apps) == 1 {
			for n := range cfg.Apps {
				name = n
			}
		}
		a := cfg.Apps[name]
		if a == nil {
			return nil, fmt.Errorf("--app: name one of the config's apps")
		}
		apps, contexts = cfg.EngineApps(), cfg.EngineContexts()
		c.app = &bot.App{App: apps[name], Channel: console.Channel, ConfigPath: a.ConfigPath, DeployWorkflow: a.DeployWorkflow}
		c.repo.configPath = a.ConfigPath
		c.repo.load.Limits = cfg.Limits
		orbs = cfg.Orbs
		storePath, dataDir = cfg.Store.Path, cfg.DataDir
	}
	openStore := store.Open
	if cfgFile == "" {
		openStore = store.OpenScratch // in the session's run folder
	}
	db, err := openStore(ctx, storePath)
	if err != nil {
		return nil, err
	}
	c.db = db
	c.cleanup = append(c.cleanup, func() { db.Close() })
	c.repo.load.Cache = db.OrbCache()
	if !orbs.Offline {
		c.repo.load.Registry = orbregistry.New(orbs.Registry, orbregistry.Options{Token: string(orbs.Token)})
	}
	exe, name, closeExe, err := c.executor(ctx, executor, dataDir)
	if err != nil {
		return nil, err
	}
	c.cleanup = append(c.cleanup, closeExe)
	// Contexts named by the config but defined nowhere exist, empty, as
	// in slipway run. Without a config, /deploy runs the workflow named
	// deploy, else the first that deploys to an environment.
	if cfg, err := c.repo.Config(c.app, "HEAD").LoadConfig(ctx); err == nil {
		if plan, err := cfg.Plan(workflows.Trigger{Branch: "main", Revision: "HEAD"}); err == nil {
			for _, w := range plan.Workflows {
				for _, j := range w.Jobs {
					for _, name := range j.Context {
						if contexts[name] == nil && c.app.Environments[name] == nil {
							contexts[name] = &engine.Context{Name: name}
						}
						if cfgFile == "" && c.app.DeployWorkflow == "" && c.app.Environments[name] != nil && !slices.Contains(cfg.WorkflowNames(), "deploy") {
							c.app.DeployWorkflow = w.Name
						}
					}
				}
			}
		}
	}
	c.chat = console.New(stdout)
	words := console.Words()
	c.notifier = bot.NewNotifier(bot.NotifierOptions{Chat: c.chat, KV: db.KV("console"), Store: db, Apps: []*bot.App{c.app},
		Words: words, Logger: c.log, EditEvery: 300 * time.Millisecond})
	c.engine = engine.New(engine.Options{
		Store: db, Executor: exe, ExecutorName: name, Notifiers: map[string]engine.Notifier{"console": c.notifier}, Logger: c.log,
		Natives: map[string]engine.NativeRunner{engine.OrbAWS: dryRunAWS{}}, Apps: apps, Contexts: contexts,
		Continuations: continuations(c.repo.load),
		DataDir:       dataDir, RetryMin: 50 * time.Millisecond, RetryMax: time.Second,
	})
	c.bot = bot.New(bot.Options{Engine: c.engine, Store: db, Repos: c.repo, Directory: everyone{}, Apps: []*bot.App{c.app},
		Words: words, Logger: c.log})
	return c, nil
}

// everyone puts every console user in the console's group.
type everyone struct{}

func (everyone) Groups(ctx context.Context, user string) ([]string, error) {
	return []string{consoleGroup}, nil
}

// executor makes the executor asked for: auto is docker when an engine
// answers and holds every image the repository's config names (none can
// be pulled here), else local.
func (c *consoleRun) executor(ctx context.Context, kind, dataDir string) (engine.Executor, string, func(), error) {
	if kind != "local" {
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_, err = cli.Ping(pctx)
			cancel()
		}
		if err == nil && kind == "auto" {
			if missing := c.missingImages(ctx, cli); missing != "" {
				err = fmt.Errorf("the engine lacks %s", missing)
			}
		}
		switch {
		case err == nil:
			opts := docker.Options{Logger: c.log, RemoteDocker: true}
			if img, err := docker.EnsureHolderImage(ctx, cli, docker.DebianBusybox); err == nil {
				opts.HolderImage = img
			}
			exe := docker.New(cli, opts)
			fmt.Fprintln(c.out, "Jobs run in containers of the local Docker engine.")
			return exe, "docker", func() {
				cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				exe.Close(cctx)
				cli.Close()
			}, nil
		case kind == "docker":
			return nil, "", nil, fmt.Errorf("--executor docker: %w", err)
		}
		fmt.Fprintf(c.out, "Jobs run on this machine (the local executor): %v.\n", err)
	}
	exe, err := local.New(local.Options{Dir: filepath.Join(dataDir, "attempts"), Logger: c.log, RemoteDocker: true, AllowRoot: true})
	if err != nil {
		return nil, "", nil, err
	}
	return exe, "local", closeLocal(exe, c.log), nil
}

// missingImages names an image the config at HEAD needs that the engine
// does not have; "" when it has them all.
func (c *consoleRun) missingImages(ctx context.Context, cli *client.Client) string {
	cfg, err := c.repo.Config(c.app, "HEAD").LoadConfig(ctx)
	if err != nil {
		return ""
	}
	plan, err := cfg.Plan(workflows.Trigger{Branch: "main", Revision: "HEAD"})
	if err != nil {
		return ""
	}
	for _, w := range plan.Workflows {
		for _, j := range w.Jobs {
			if j.Spec == nil {
				continue
			}
			for _, img := range j.Spec.Docker {
				if _, err := cli.ImageInspect(ctx, img.Image); err != nil {
					return img.Image
				}
			}
		}
	}
	return ""
}

func (c *consoleRun) close() {
	for i := len(c.cleanup) - 1; i >= 0; i-- {
		c.cleanup[i]()
	}
}

// run runs the session until stdin ends or ctx ends (Ctrl-C).
func (c *consoleRun) run(ctx context.Context, stdin io.Reader) error {
	if err := c.engine.Start(ctx); err != nil {
		return err
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.notifier.Run(rctx)
	}()
	defer func() {
		stop()
		<-done
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.engine.Shutdown(sctx)
	}()
	scripted := true
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			scripted = false
		}
	}
	user := localUser()
	s := &console.Session{Console: c.chat, Bot: c.bot, Notifier: c.notifier, User: user, Push: c.push, Settle: c.settle, Scripted: scripted}
	if !scripted {
		c.chat.Say("slipway console on %s: app %q, environments staging and production (production needs an approval by someone other than the change's author).", c.repo.dir, c.app.Name)
		c.chat.Say("Try `push`, then `as bob` and `approve 1`, `/slipway history %s production`, `/rollback %s production`. `help` lists the rest.", c.app.Name, c.app.Name)
	}
	return s.Run(ctx, stdin)
}

// push acts as a GitHub push of the repository's branch head.
func (c *consoleRun) push(ctx context.Context, user, branch string) (string, error) {
	commit, err := c.repo.Resolve(ctx, c.app, branch)
	if err != nil {
		return "", err
	}
	if commit.Branch == "" && branch == "" {
		commit.Branch = "main" // a detached HEAD pushes as main
	}
	if branch != "" && commit.Branch == "" {
		return "", fmt.Errorf("%q is not a branch of %s", branch, c.repo.dir)
	}
	c.pushes++
	t := workflows.Trigger{Branch: commit.Branch, Revision: commit.SHA, Source: "webhook"}
	s, err := c.engine.StartPipeline(ctx, engine.StartRequest{
		ID:  fmt.Sprintf("push-%d-%d", time.Now().UnixNano(), c.pushes),
		App: c.app.Name, Repo: c.app.Repo, Author: user, Authors: []string{user}, Trigger: t,
		Source: c.repo.Source(c.app, commit.SHA), Config: c.repo.Config(c.app, commit.SHA), Commit: c.repo.info(ctx, commit.SHA),
	})
	switch {
	case err != nil:
		return "", err
	case s.Pipeline == nil:
		return fmt.Sprintf("Pushed %s (%s): nothing runs for it.", commit.Branch, short(commit.SHA)), nil
	}
	return fmt.Sprintf("Pushed %s (%s): pipeline %d.", commit.Branch, short(commit.SHA), s.Pipeline.Number), nil
}

// settle waits until every pipeline has nothing left to do by itself,
// and the thread shows it.
func (c *consoleRun) settle(ctx context.Context) error {
	for {
		ids, err := c.db.ActivePipelines(ctx)
		if err != nil {
			return err
		}
		waiting := false
		for _, id := range ids {
			p, err := c.db.Pipeline(ctx, id)
			if err != nil {
				return err
			}
			if p.Status == engine.StatusRunning {
				waiting = true
				if _, err := c.engine.WaitSettled(ctx, id); err != nil {
					return err
				}
			}
		}
		if !waiting {
			break
		}
	}
	for range 100 {
		if _, err := c.engine.DeliverEvents(ctx); err != nil {
			return err
		}
		if next, err := c.db.NextEventDue(ctx, "console"); err != nil || next.IsZero() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.notifier.Flush(ctx)
	return nil
}
