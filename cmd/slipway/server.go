package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	awsdeploy "github.com/slipway-ci/slipway/deploy/aws"

	"github.com/docker/docker/client"
	"golang.org/x/sync/errgroup"

	"github.com/slipway-ci/slipway/bot"
	"github.com/slipway-ci/slipway/bot/console"
	"github.com/slipway-ci/slipway/bot/slack"
	"github.com/slipway-ci/slipway/config"
	"github.com/slipway-ci/slipway/executors/docker"
	"github.com/slipway-ci/slipway/executors/local"
	"github.com/slipway-ci/slipway/forge"
	"github.com/slipway-ci/slipway/orbregistry"
	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/web"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// Server is `slipway serve`: the engine, its outbox consumers, the
// webhook intake and one HTTP listener, under one owner. cmd wires it;
// the end-to-end tests start it in-process.
type Server struct {
	cfg      *config.Config
	log      *slog.Logger
	db       *store.DB
	engine   *engine.Engine
	exec     engine.Executor
	closeExe func()
	// closeDocker closes the Docker engine's client, after the executor.
	closeDocker func()
	github      *forge.Client
	intake      *forge.Intake
	slack       *slack.Adapter // nil without a slack section
	threads     *bot.Notifier  // the Slack threads; nil without Slack
	metrics     *web.Metrics
	ln          net.Listener
	http        *http.Server
}

// ServerOptions are what tests set beyond the config.
type ServerOptions struct {
	Logger *slog.Logger
	// Executor replaces the one the config names.
	Executor engine.Executor
	// Listener replaces listening on http.addr (tests pass one on port 0).
	Listener net.Listener
	// RetryMin and RetryMax bound the outbox's and the intake's backoff.
	RetryMin, RetryMax time.Duration
	// AWSPoll is how often slipway/aws looks at a deploy it waits for;
	// deploy/aws's default when zero.
	AWSPoll time.Duration
}

// NewServer opens the store and makes everything the config asks for;
// Run runs it. It starts no work.
func NewServer(ctx context.Context, cfg *config.Config, opts ServerOptions) (_ *Server, err error) {
	s := &Server{cfg: cfg, log: opts.Logger, exec: opts.Executor, closeExe: func() {}}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	// What was made before a failure is closed: the store, the executor,
	// the Docker client.
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	if s.db, err = store.Open(ctx, cfg.Store.Path); err != nil {
		return nil, err
	}
	// One client of the Docker engine, when one answers, for the docker
	// executor and slipway/aws's image builds.
	cli, dockerErr := dockerClient(ctx)
	if cli != nil {
		s.closeDocker = func() { cli.Close() }
	}
	if s.exec == nil {
		if s.exec, s.closeExe, err = serverExecutor(ctx, cfg, cli, dockerErr, s.log); err != nil {
			return nil, err
		}
	}
	// slipway/aws: AWS as the SDK's configuration says, overridden per job
	// by its contexts' AWS_* variables; images built and pushed by the
	// Docker engine.
	awsOpts := awsdeploy.Options{Logger: s.log.With("component", "aws"), Poll: opts.AWSPoll}
	if cli != nil {
		awsOpts.Docker = cli
	} else {
		s.log.Warn("no Docker engine answers: aws/ecr-push can only find images already in ECR", "err", dockerErr)
	}
	gh := forge.Options{APIURL: cfg.GitHub.APIURL, Token: string(cfg.GitHub.Token), AppID: cfg.GitHub.AppID,
		PrivateKey: []byte(cfg.GitHub.PrivateKey), InstallationID: cfg.GitHub.InstallationID,
		DataDir: filepath.Join(cfg.DataDir, "github"), Logger: s.log.With("component", "github")}
	if s.github, err = forge.New(gh); err != nil {
		return nil, err
	}
	s.metrics = web.NewMetrics(s.db, web.MetricsOptions{Logger: s.log.With("component", "metrics")})
	s.db.ObserveWrites(s.metrics.ObserveStoreTx)
	key := []byte(cfg.HTTP.LinkKey)
	if len(key) == 0 {
		if key, err = web.StoredKey(ctx, s.db.KV("web")); err != nil {
			return nil, err
		}
	}
	// Links posted in threads and statuses open their pipeline's pages
	// for link_ttl, without signing in.
	link := func(pipelineID string) string {
		return web.SignedLink(key, cfg.HTTP.PublicURL, "/pipelines/"+pipelineID, cfg.HTTP.LinkTTL)
	}
	notifiers := map[string]engine.Notifier{
		"github": s.metrics.CountDeliveries("github", forge.NewNotifier(s.github, s.db.KV("github"), forge.NotifierOptions{
			TargetURL: func(ev engine.Event) string { return link(ev.PipelineID) },
			Logger:    s.log.With("component", "github"),
		})),
		"metrics": s.metrics.Notifier(),
	}
	load := workflows.LoadOptions{OrbDirs: []string{filepath.Join(cfg.DataDir, "orbs")}, Limits: cfg.Limits, Cache: s.db.OrbCache()}
	if !cfg.Orbs.Offline {
		load.Registry = orbregistry.New(cfg.Orbs.Registry, orbregistry.Options{Token: string(cfg.Orbs.Token)})
	}
	engineApps := cfg.EngineApps()
	var apps []*bot.App
	for _, name := range slices.Sorted(maps.Keys(cfg.Apps)) {
		a := cfg.Apps[name]
		apps = append(apps, &bot.App{App: engineApps[name], Channel: a.Channel, ConfigPath: a.ConfigPath, DeployWorkflow: a.DeployWorkflow})
	}
	var people forge.People
	var directory web.Directory
	words := console.Words()
	if cfg.Slack != nil {
		// The chat: its adapter is the threads' chat, the bot's directory
		// and the intake's way to know people; the bot is attached to it
		// once the engine exists.
		s.slack, err = slack.New(slack.Options{AppToken: string(cfg.Slack.AppToken), BotToken: string(cfg.Slack.BotToken),
			APIURL: cfg.Slack.APIURL, Inbox: s.db, Users: cfg.Users, Logger: s.log.With("component", "slack"),
			RetryMin: opts.RetryMin, RetryMax: opts.RetryMax, RateLimited: s.metrics.SlackRateLimited})
		if err != nil {
			return nil, err
		}
		words = slack.Words()
		s.threads = bot.NewNotifier(bot.NotifierOptions{Chat: s.slack, KV: s.db.KV("slack"), Store: s.db, Apps: apps,
			Words: words, Logger: s.log.With("component", "threads"),
			Link: func(pipelineID, _ string) string { return link(pipelineID) }})
		notifiers["slack"] = s.metrics.CountDeliveries("slack", s.threads)
		people, directory = s.slack, s.slack
	}
	s.engine = engine.New(engine.Options{
		Store: s.db, Executor: s.exec, ExecutorName: executorName(cfg, opts.Executor), Notifiers: notifiers,
		Logger: s.log.With("component", "engine"), Apps: engineApps, Contexts: cfg.EngineContexts(),
		Parallelism: cfg.Parallelism, DataDir: cfg.DataDir, Sources: s.github, Continuations: continuations(load),
		Natives:  map[string]engine.NativeRunner{engine.OrbAWS: awsdeploy.New(awsOpts)},
		RetryMin: opts.RetryMin, RetryMax: opts.RetryMax,
	})
	if s.slack != nil {
		s.slack.Attach(bot.New(bot.Options{Engine: s.engine, Store: s.db, Repos: forgeRepos{gh: s.github, load: load},
			Directory: s.slack, Apps: apps, Words: words, Logger: s.log.With("component", "bot")}), s.threads)
	}
	var intakeApps []forge.App
	for _, a := range cfg.Apps {
		intakeApps = append(intakeApps, forge.App{Name: a.Name, Repo: a.Repo, ConfigPath: a.ConfigPath, CancelSuperseded: a.CancelSuperseded})
	}
	s.intake = forge.NewIntake(s.db, s.engine, s.github, intakeApps, forge.IntakeOptions{
		Load: load, People: people, Logger: s.log.With("component", "intake"), RetryMin: opts.RetryMin, RetryMax: opts.RetryMax,
	})
	receiver, err := forge.NewReceiver(string(cfg.GitHub.WebhookSecret), s.db, forge.ReceiverOptions{
		Wake: s.intake.Wake, Logger: s.log.With("component", "webhooks"),
	})
	if err != nil {
		return nil, err
	}
	dashboard, err := web.New(web.Options{Store: s.db, Engine: s.engine, Apps: engineApps, DataDir: cfg.DataDir,
		PublicURL: cfg.HTTP.PublicURL, Key: key, Auth: web.Auth{Users: dashboardUsers(cfg.HTTP.Auth.Users),
			TrustedHeader: cfg.HTTP.Auth.TrustedHeader, TrustedProxies: cfg.HTTP.Auth.TrustedProxies, HeaderUsers: cfg.HTTP.Auth.HeaderUsers},
		Directory: directory, Words: words, Metrics: s.metrics, Checks: s.checks(), Logger: s.log.With("component", "web")})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/github", receiver)
	mux.Handle("/", dashboard)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	s.ln = opts.Listener
	if s.ln == nil {
		if s.ln, err = net.Listen("tcp", cfg.HTTP.Addr); err != nil {
			return nil, fmt.Errorf("http.addr: %w", err)
		}
	}
	return s, nil
}

// dashboardUsers are the config's dashboard users as the dashboard takes
// them.
func dashboardUsers(users map[string]config.DashboardUser) map[string]web.User {
	out := make(map[string]web.User, len(users))
	for name, u := range users {
		out[name] = web.User{PasswordHash: string(u.PasswordHash), ChatID: u.ChatID}
	}
	return out
}

// checks are what /readyz looks at: the store answers, the engine's
// writes go through, the executor can run jobs, Slack is connected.
func (s *Server) checks() []web.Check {
	cs := []web.Check{
		{Name: "store", Func: s.db.Ping},
		{Name: "engine", Func: func(context.Context) error { return s.engine.StoreError() }},
	}
	if p, ok := s.exec.(interface{ Ping(context.Context) error }); ok {
		cs = append(cs, web.Check{Name: "executor", Func: p.Ping})
	}
	if s.slack != nil {
		cs = append(cs, web.Check{Name: "slack", Func: func(context.Context) error { return s.slack.Connected() }})
	}
	return cs
}

// executorName is what attempts record as their executor.
func executorName(cfg *config.Config, given engine.Executor) string {
	if given != nil {
		return "custom"
	}
	if cfg.Executor == "" {
		return "auto"
	}
	return cfg.Executor
}

// dockerClient is a client of the Docker engine DOCKER_HOST names (the
// local one by default), nil with the reason when none answers.
func dockerClient(ctx context.Context) (*client.Client, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Ping(pctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// serverExecutor makes the executor the config names; "" picks docker
// when cli, a Docker engine that answered, is not nil, else local.
func serverExecutor(ctx context.Context, cfg *config.Config, cli *client.Client, dockerErr error, log *slog.Logger) (engine.Executor, func(), error) {
	kind := cfg.Executor
	switch {
	case kind == "docker" && cli == nil:
		return nil, nil, fmt.Errorf("executor docker: no Docker engine answers: %w", dockerErr)
	case kind == "" && cli != nil:
		kind = "docker"
	case kind == "":
		log.Warn("no Docker engine answers; jobs run on this host with the local executor", "err", dockerErr)
		kind = "local"
	}
	if kind == "docker" {
		opts := docker.Options{Logger: log.With("component", "docker"), NetworkPool: cfg.Parallelism}
		if img, err := docker.EnsureHolderImage(ctx, cli, docker.DebianBusybox); err == nil {
			opts.HolderImage = img
		}
		exe := docker.New(cli, opts)
		return exe, func() {
			cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			exe.Close(cctx)
		}, nil
	}
	l := log.With("component", "local")
	exe, err := local.New(local.Options{Dir: filepath.Join(cfg.DataDir, "attempts"), Logger: l,
		User: cfg.Local.User, Users: cfg.Local.Users, AllowRoot: cfg.Local.AllowRoot, MaxProcesses: cfg.Local.MaxProcesses})
	if err != nil {
		return nil, nil, fmt.Errorf("executor local: %w (slipway.yml: local.user, local.users or local.allow_root)", err)
	}
	return exe, closeLocal(exe, l), nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx ends, then stops taking work, lets running jobs
// finish for shutdown_grace, and returns; what is left is recovered at
// the next start. Its goroutines (the HTTP listener, the intake, the
// engine's loops) all end before it returns.
func (s *Server) Run(ctx context.Context) error {
	defer s.close()
	if s.slack != nil {
		id, err := s.slack.Check(ctx)
		if err != nil {
			return err
		}
		s.log.Info("slack connected", "bot", id.UserID, "team", id.Team)
	}
	if err := s.engine.Start(ctx); err != nil {
		return err
	}
	s.log.Info("slipway serving", "addr", s.Addr(), "apps", len(s.cfg.Apps), "public_url", s.cfg.HTTP.PublicURL)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := s.http.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error { return s.intake.Run(gctx) })
	if s.slack != nil {
		g.Go(func() error { return s.slack.Run(gctx) })
		g.Go(func() error { return s.threads.Run(gctx) })
	}
	g.Go(func() error {
		<-gctx.Done()
		s.log.Info("slipway stopping: no new work; running jobs get the shutdown grace", "grace", s.cfg.ShutdownGrace)
		hctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return s.http.Shutdown(hctx)
	})
	err := g.Wait()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	if serr := s.engine.Shutdown(sctx); serr != nil {
		s.log.Warn("jobs still running at the end of the shutdown grace were left to recovery", "err", serr)
	}
	return err
}

func (s *Server) close() {
	if s.closeExe != nil {
		s.closeExe()
	}
	if s.closeDocker != nil {
		s.closeDocker()
	}
	if s.db != nil {
		s.db.Close()
	}
}
