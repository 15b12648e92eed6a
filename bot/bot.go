package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// App is an app as the chat knows it: the engine's app, the channel of
// its threads and commands, and what /deploy runs.
type App struct {
	*engine.App
	Channel        string // chat channel ID; "" takes commands anywhere
	ConfigPath     string // default .circleci/config.yml
	DeployWorkflow string // default "deploy"
}

// Engine is what the chat asks of the engine.
type Engine interface {
	StartPipeline(ctx context.Context, req engine.StartRequest) (engine.Started, error)
	Approve(ctx context.Context, jobID string, by engine.Actor) (engine.Decision, error)
	Reject(ctx context.Context, jobID string, by engine.Actor) (engine.Decision, error)
	Cancel(ctx context.Context, pipelineID string, by engine.Actor) (engine.Decision, error)
	RerunJob(ctx context.Context, pipelineID, workflow, job string, by engine.Actor) (engine.Decision, error)
	Lock(ctx context.Context, app, env string, by engine.Actor, reason string) (engine.Decision, error)
	Unlock(ctx context.Context, app, env string, by engine.Actor) (engine.Decision, error)
}

// Store is what the chat reads of the store.
type Store interface {
	Pipeline(ctx context.Context, id string) (*engine.PipelineRecord, error)
	PipelineByNumber(ctx context.Context, app string, number int) (*engine.PipelineRecord, error)
	PipelineState(ctx context.Context, id string) (*engine.PipelineState, error)
	ActivePipelines(ctx context.Context) ([]string, error)
	Releases(ctx context.Context, app, env string) ([]engine.Release, error)
	EnvLocks(ctx context.Context, app string) ([]engine.EnvLock, error)
}

// Repos is where apps' code lives: GitHub for the server, a local git
// repository for the console.
type Repos interface {
	// Resolve resolves a branch, tag or SHA of app's repository ("" for
	// the default branch's head); ErrNoSuchRef or ErrUnreachable wrapped
	// when it cannot.
	Resolve(ctx context.Context, app *App, ref string) (Commit, error)
	// Config loads app's config at a commit.
	Config(app *App, sha string) engine.ConfigLoader
	// Source is where checkout finds a commit of app.
	Source(app *App, sha string) engine.Source
}

// Commit is a resolved ref.
type Commit struct {
	SHA    string
	Branch string // the ref, when it named a branch
	Tag    string // the ref, when it named a tag
	Title  string
}

// Errors of Repos.Resolve.
var (
	ErrNoSuchRef   = errors.New("no such branch, tag or commit")
	ErrUnreachable = errors.New("the repository cannot be reached")
)

// Directory tells the chat's user groups a user belongs to.
type Directory interface {
	Groups(ctx context.Context, user string) ([]string, error)
}

// Request is a command typed in a chat.
type Request struct {
	// ID is the chat's own ID for the request (a Slack envelope ID),
	// unique per request and the same when the chat delivers it again: a
	// pipeline it starts is started once.
	ID      string
	Command string // "/deploy", "/rollback", "/slipway"
	Text    string
	Channel string // where it was typed
	User    string // who typed it: a chat user ID
}

// Reply is the bot's answer to a request.
type Reply struct {
	Text string
	// Public replies go to the channel; the others only to the requester.
	Public bool
}

// Bot answers chat commands: it parses them, checks who may, and acts
// through the engine. It is the same for every chat; adapters deliver
// requests and show replies.
type Bot struct {
	engine Engine
	store  Store
	repos  Repos
	dir    Directory
	apps   map[string]*App
	words  Words
	log    *slog.Logger
}

// Options configure a Bot.
type Options struct {
	Engine    Engine
	Store     Store
	Repos     Repos
	Directory Directory // nil: nobody is in a group
	Apps      []*App
	Words     Words
	Logger    *slog.Logger
}

// New returns a bot.
func New(opts Options) *Bot {
	b := &Bot{engine: opts.Engine, store: opts.Store, repos: opts.Repos, dir: opts.Directory, apps: map[string]*App{},
		words: opts.Words, log: opts.Logger}
	for _, a := range opts.Apps {
		b.apps[a.Name] = a
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	return b
}

func private(format string, args ...any) Reply { return Reply{Text: fmt.Sprintf(format, args...)} }
func public(format string, args ...any) Reply {
	return Reply{Text: fmt.Sprintf(format, args...), Public: true}
}

// Handle answers one request. An error means the request could not be
// handled now (the store is down) and may be tried again; everything a
// person got wrong is a Reply.
func (b *Bot) Handle(ctx context.Context, req Request) (Reply, error) {
	c, err := Parse(req.Command, req.Text)
	if err != nil {
		var pe *ParseError
		errors.As(err, &pe)
		return private("%s\n%s", pe.Msg, pe.Usage), nil
	}
	if c.Verb == "help" {
		return private("%s", Usage), nil
	}
	actor, err := b.actor(ctx, req.User)
	if err != nil {
		return Reply{}, err
	}
	var app *App
	if c.App != "" || c.Verb != "status" {
		var r *Reply
		if app, r = b.app(c, req.Channel); r != nil {
			return *r, nil
		}
	}
	switch c.Verb {
	case "deploy":
		return b.deploy(ctx, req, actor, app, c)
	case "rollback":
		return b.rollback(ctx, req, actor, app, c)
	case "status":
		return b.status(ctx, app)
	case "history":
		return b.history(ctx, app, c.Env)
	case "lock", "unlock":
		return b.lock(ctx, actor, app, c)
	case "cancel", "rerun":
		return b.control(ctx, req, actor, app, c)
	}
	return private("%s", Usage), nil
}

func (b *Bot) actor(ctx context.Context, user string) (engine.Actor, error) {
	a := engine.Actor{ID: user}
	if b.dir != nil {
		groups, err := b.dir.Groups(ctx, user)
		if err != nil {
			return a, fmt.Errorf("bot: groups of %s: %w", user, err)
		}
		a.Groups = groups
	}
	return a, nil
}

// app finds the app a command is about: the one it names, else the one
// whose channel it was typed in. A command about an app that has its own
// channel is taken there only.
func (b *Bot) app(c Command, channel string) (*App, *Reply) {
	name := c.App
	if name == "" {
		for _, a := range b.apps {
			if a.Channel != "" && a.Channel == channel {
				if name != "" {
					r := private("Several apps share this channel; name the app: `/slipway %s <app> ...`.", c.Verb)
					return nil, &r
				}
				name = a.Name
			}
		}
		if name == "" {
			r := private("Name the app: `/slipway %s <app> ...`. Apps: %s.", c.Verb, b.appNames())
			return nil, &r
		}
	}
	a := b.apps[name]
	if a == nil {
		r := private("slipway knows no app %q. Apps: %s.", name, b.appNames())
		return nil, &r
	}
	if a.Channel != "" && channel != a.Channel {
		r := private("%s's commands are taken in %s, where its threads are.", a.Name, b.words.channel(a.Channel))
		return nil, &r
	}
	if c.Env != "" && a.Environments[c.Env] == nil {
		r := private("%s has no environment %q. Its environments: %s.", a.Name, c.Env, strings.Join(slices.Sorted(maps.Keys(a.Environments)), ", "))
		return nil, &r
	}
	return a, nil
}

func (b *Bot) appNames() string {
	return strings.Join(slices.Sorted(maps.Keys(b.apps)), ", ")
}

// locked says why env is locked by hand, if it is.
func (b *Bot) locked(ctx context.Context, app *App, env string) (*Reply, error) {
	locks, err := b.store.EnvLocks(ctx, app.Name)
	if err != nil {
		return nil, err
	}
	for _, l := range locks {
		if l.Env == env && l.Manual {
			r := private("%s/%s is locked by %s since %s%s. `/slipway unlock %s %s` lets deploys go again.", app.Name, env,
				b.words.mention(l.Holder), b.words.ago(l.Since), reasonSuffix(b.words.Text(l.Reason)), app.Name, env)
			return &r, nil
		}
	}
	return nil, nil
}

// reasonSuffix is ": reason", or "" without one.
func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}

func (b *Bot) deploy(ctx context.Context, req Request, actor engine.Actor, app *App, c Command) (Reply, error) {
	env := app.Environments[c.Env]
	if refusal := engine.MayDeploy(actor, env); refusal != nil {
		return private("%s", b.words.Refusal(fmt.Sprintf("deploy %s to %s", app.Name, c.Env), *refusal)), nil
	}
	if r, err := b.locked(ctx, app, c.Env); r != nil || err != nil {
		return deref(r), err
	}
	commit, err := b.repos.Resolve(ctx, app, c.Ref)
	if r := b.resolveFailed(app, c.Ref, err); r != nil {
		return *r, nil
	}
	version := c.Ref
	if version == "" {
		version = commit.SHA
	}
	t := workflows.Trigger{Branch: commit.Branch, Tag: commit.Tag, Revision: commit.SHA, Source: "chat",
		Deploy: &workflows.DeployValues{Environment: c.Env, Version: version}}
	p, r, err := b.start(ctx, req, app, t, engine.CommitInfo{Title: commit.Title}, 0)
	if r != nil || err != nil {
		return deref(r), err
	}
	return public("%s is deploying %s %s to %s: pipeline %d.", b.words.mention(actor.ID), app.Name, b.words.version(commit.SHA, c.Ref),
		c.Env, p.Number), nil
}

func deref(r *Reply) Reply {
	if r == nil {
		return Reply{}
	}
	return *r
}

// resolveFailed words a ref that did not resolve; nil when it did.
func (b *Bot) resolveFailed(app *App, ref string, err error) *Reply {
	if err == nil {
		return nil
	}
	name := ref
	if name == "" {
		name = "the default branch"
	}
	var r Reply
	switch {
	case errors.Is(err, ErrNoSuchRef):
		r = private("%s has no branch, tag or commit %q.", app.Repo, name)
	case errors.Is(err, ErrUnreachable):
		r = private("%s cannot be reached right now, so %s could not be resolved; try again in a minute.", app.Repo, name)
	default:
		b.log.Error("resolve ref", "app", app.Name, "ref", ref, "err", err)
		r = private("%s could not be resolved: internal error.", name)
	}
	return &r
}

// start starts app's deploy workflow for t, once per request.
func (b *Bot) start(ctx context.Context, req Request, app *App, t workflows.Trigger, info engine.CommitInfo, rerunOf int) (*engine.PipelineRecord, *Reply, error) {
	wf := app.DeployWorkflow
	if wf == "" {
		wf = "deploy"
	}
	sreq := engine.StartRequest{
		ID: "chat-" + req.ID, App: app.Name, Repo: app.Repo, Author: req.User, Authors: []string{req.User},
		Trigger: t, Source: b.repos.Source(app, t.Revision), Config: b.repos.Config(app, t.Revision), RerunOf: rerunOf, Commit: info,
	}
	if rerunOf == 0 {
		sreq.Workflows = []string{wf}
	}
	s, err := b.engine.StartPipeline(ctx, sreq)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case s.ConfigErr != nil:
		r := private("The config of %s at %s cannot be run: %v", app.Name, short(t.Revision), s.ConfigErr)
		return nil, &r, nil
	case s.Pipeline == nil && rerunOf == 0:
		r := private("%s's deploy workflow %q does not run for %s: the config has no such workflow, or its filters leave nothing to run.",
			app.Name, wf, short(t.Revision))
		return nil, &r, nil
	case s.Pipeline == nil:
		r := private("Nothing of %s's config runs for %s any more.", app.Name, short(t.Revision))
		return nil, &r, nil
	}
	return s.Pipeline, nil, nil
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

func (b *Bot) rollback(ctx context.Context, req Request, actor engine.Actor, app *App, c Command) (Reply, error) {
	env := app.Environments[c.Env]
	if refusal := engine.MayDeploy(actor, env); refusal != nil {
		return private("%s", b.words.Refusal(fmt.Sprintf("roll %s back in %s", app.Name, c.Env), *refusal)), nil
	}
	if r, err := b.locked(ctx, app, c.Env); r != nil || err != nil {
		return deref(r), err
	}
	releases, err := b.store.Releases(ctx, app.Name, c.Env)
	if err != nil {
		return Reply{}, err
	}
	target, why := RollbackTarget(releases, c.Target)
	if target == nil {
		return private("%s", why), nil
	}
	t := workflows.Trigger{Revision: target.Commit, Source: "chat",
		Deploy: &workflows.DeployValues{Environment: c.Env, Version: target.Version, Rollback: true}}
	var info engine.CommitInfo
	if old, err := b.store.Pipeline(ctx, target.PipelineID); err == nil {
		info = old.Commit
	}
	p, r, err := b.start(ctx, req, app, t, info, 0)
	if r != nil || err != nil {
		return deref(r), err
	}
	return public("%s is rolling %s back in %s to release #%d (%s): pipeline %d.", b.words.mention(actor.ID), app.Name, c.Env,
		target.Number, b.words.version(target.Commit, target.Version), p.Number), nil
}

// RollbackTarget picks the release a rollback goes back to among an
// environment's releases (newest first): the one named by number or
// commit, else the last good one before the current, which is the newest
// that succeeded. When there is none it says why.
func RollbackTarget(releases []engine.Release, named string) (*engine.Release, string) {
	var good []*engine.Release
	for i := range releases {
		if releases[i].Outcome == workflows.StatusSuccess {
			good = append(good, &releases[i])
		}
	}
	if len(good) == 0 {
		return nil, "Nothing was ever deployed there successfully, so there is nothing to roll back to."
	}
	current := good[0]
	if named == "" {
		for _, r := range good[1:] {
			if r.Commit != current.Commit {
				return r, ""
			}
		}
		return nil, fmt.Sprintf("There is no good release before the current one (#%d, %s) to roll back to.", current.Number, short(current.Commit))
	}
	if n, err := strconv.Atoi(named); err == nil && len(named) < 7 {
		for _, r := range releases {
			if r.Number != n {
				continue
			}
			if r.Outcome != workflows.StatusSuccess {
				return nil, fmt.Sprintf("Release #%d %s; roll back to one that succeeded.", n, outcomeWords(r.Outcome))
			}
			return &r, ""
		}
		return nil, fmt.Sprintf("There is no release #%d there.", n)
	}
	for _, r := range good {
		if strings.HasPrefix(r.Commit, named) {
			return r, ""
		}
	}
	return nil, fmt.Sprintf("%s was never deployed there successfully; to ship it, use /deploy with it.", named)
}

func outcomeWords(outcome string) string {
	switch outcome {
	case workflows.StatusFailed:
		return "failed"
	case workflows.StatusCanceled:
		return "was canceled"
	case engine.StatusRunning:
		return "is still running"
	}
	return "ended " + outcome
}

func (b *Bot) lock(ctx context.Context, actor engine.Actor, app *App, c Command) (Reply, error) {
	var d engine.Decision
	var err error
	if c.Verb == "lock" {
		d, err = b.engine.Lock(ctx, app.Name, c.Env, actor, c.Reason)
	} else {
		d, err = b.engine.Unlock(ctx, app.Name, c.Env, actor)
	}
	if err != nil {
		return Reply{}, err
	}
	where := app.Name + "/" + c.Env
	if !d.Applied {
		return private("%s", b.words.Refusal(c.Verb+" "+where, d)), nil
	}
	if c.Verb == "lock" {
		return public("%s is locked by %s%s: its deploys wait until `/slipway unlock %s %s`.", where, b.words.mention(actor.ID),
			reasonSuffix(b.words.Text(c.Reason)), app.Name, c.Env), nil
	}
	return public("%s unlocked by %s (it was locked by %s %s%s).", where, b.words.mention(actor.ID), b.words.mention(d.Actor),
		b.words.ago(d.At), reasonSuffix(b.words.Text(d.Reason))), nil
}

func (b *Bot) control(ctx context.Context, req Request, actor engine.Actor, app *App, c Command) (Reply, error) {
	p, err := b.store.PipelineByNumber(ctx, app.Name, c.Pipeline)
	if errors.Is(err, engine.ErrNotFound) {
		return private("%s has no pipeline %d.", app.Name, c.Pipeline), nil
	}
	if err != nil {
		return Reply{}, err
	}
	if c.Verb == "cancel" {
		d, err := b.engine.Cancel(ctx, p.ID, actor)
		if err != nil {
			return Reply{}, err
		}
		if !d.Applied {
			return private("%s", b.words.Refusal("cancel pipeline "+strconv.Itoa(p.Number), d)), nil
		}
		return public("Pipeline %d of %s canceled by %s.", p.Number, app.Name, b.words.mention(actor.ID)), nil
	}
	if c.Job != "" {
		return b.rerunJob(ctx, actor, app, p, c.Job)
	}
	// A whole pipeline runs again as a new pipeline of the same commit,
	// after the same checks as a cancel.
	st, err := b.store.PipelineState(ctx, p.ID)
	if err != nil {
		return Reply{}, err
	}
	if refusal := engine.MayControl(actor, app.App, p.AuthorList(), envsOf(st)); refusal != nil {
		return private("%s", b.words.Refusal("rerun pipeline "+strconv.Itoa(p.Number), *refusal)), nil
	}
	if p.Finished.IsZero() {
		return private("Pipeline %d is still %s; rerun it once it ends, or cancel it first.", p.Number, strings.ReplaceAll(p.Status, "_", " ")), nil
	}
	t := p.Trigger
	t.ID, t.Number = "", 0
	np, r, err := b.start(ctx, req, app, t, p.Commit, p.Number)
	if r != nil || err != nil {
		return deref(r), err
	}
	return public("%s reruns pipeline %d of %s as pipeline %d.", b.words.mention(actor.ID), p.Number, app.Name, np.Number), nil
}

func envsOf(st *engine.PipelineState) []string {
	var envs []string
	for _, j := range st.Jobs {
		if j.Env != "" && !slices.Contains(envs, j.Env) {
			envs = append(envs, j.Env)
		}
	}
	return envs
}

func (b *Bot) rerunJob(ctx context.Context, actor engine.Actor, app *App, p *engine.PipelineRecord, job string) (Reply, error) {
	st, err := b.store.PipelineState(ctx, p.ID)
	if err != nil {
		return Reply{}, err
	}
	var wfs []string
	for _, j := range st.Jobs {
		if j.Name == job {
			for _, w := range st.Workflows {
				if w.ID == j.WorkflowID {
					wfs = append(wfs, w.Name)
				}
			}
		}
	}
	switch len(wfs) {
	case 0:
		return private("Pipeline %d has no job %q.", p.Number, job), nil
	case 1:
	default:
		return private("Several workflows of pipeline %d have a job %q (%s); slipway cannot tell which.", p.Number, job, strings.Join(wfs, ", ")), nil
	}
	d, err := b.engine.RerunJob(ctx, p.ID, wfs[0], job, actor)
	if err != nil {
		return Reply{}, err
	}
	if !d.Applied {
		return private("%s", b.words.Refusal("rerun pipeline "+strconv.Itoa(p.Number), d)), nil
	}
	return public("%s reruns %s of pipeline %d (%d jobs).", b.words.mention(actor.ID), job, p.Number, d.Jobs), nil
}

func (b *Bot) status(ctx context.Context, only *App) (Reply, error) {
	ids, err := b.store.ActivePipelines(ctx)
	if err != nil {
		return Reply{}, err
	}
	active := map[string][]string{}
	for _, id := range ids {
		p, err := b.store.Pipeline(ctx, id)
		if err != nil {
			return Reply{}, err
		}
		active[p.App] = append(active[p.App], fmt.Sprintf("pipeline %d %s (%s, %s)", p.Number, strings.ReplaceAll(p.Status, "_", " "),
			refName(p.Trigger), short(p.Trigger.Revision)))
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(b.apps)) {
		app := b.apps[name]
		if only != nil && only != app {
			continue
		}
		lines := []string{"*" + name + "*"}
		locks, err := b.store.EnvLocks(ctx, name)
		if err != nil {
			return Reply{}, err
		}
		for _, env := range slices.Sorted(maps.Keys(app.Environments)) {
			rel, err := b.store.Releases(ctx, name, env)
			if err != nil {
				return Reply{}, err
			}
			live := "nothing deployed yet"
			for _, r := range rel {
				if r.Outcome == workflows.StatusSuccess {
					live = fmt.Sprintf("release #%d %s by %s %s", r.Number, b.words.version(r.Commit, r.Version), b.words.mention(r.StartedBy), b.words.ago(r.Finished))
					break
				}
			}
			line := fmt.Sprintf("• %s: %s", env, live)
			for _, l := range locks {
				if l.Env == env && l.Manual {
					line += fmt.Sprintf(" — locked by %s %s%s", b.words.mention(l.Holder), b.words.ago(l.Since), reasonSuffix(b.words.Text(l.Reason)))
				}
			}
			lines = append(lines, line)
		}
		if len(active[name]) == 0 {
			lines = append(lines, "• nothing running")
		}
		for _, a := range active[name] {
			lines = append(lines, "• "+a)
		}
		out = append(out, strings.Join(lines, "\n"))
	}
	return private("%s", strings.Join(out, "\n\n")), nil
}

func refName(t workflows.Trigger) string {
	switch {
	case t.Tag != "":
		return "tag " + t.Tag
	case t.Branch != "":
		return t.Branch
	}
	return "commit"
}

// historyMax bounds the releases /slipway history lists.
const historyMax = 15

func (b *Bot) history(ctx context.Context, app *App, env string) (Reply, error) {
	rel, err := b.store.Releases(ctx, app.Name, env)
	if err != nil {
		return Reply{}, err
	}
	if len(rel) == 0 {
		return private("Nothing was deployed to %s/%s yet.", app.Name, env), nil
	}
	target, _ := RollbackTarget(rel, "")
	lines := []string{fmt.Sprintf("Releases of %s to %s, newest first:", app.Name, env)}
	for i, r := range rel {
		if i == historyMax {
			lines = append(lines, fmt.Sprintf("… and %d earlier.", len(rel)-historyMax))
			break
		}
		line := fmt.Sprintf("#%d %s %s by %s", r.Number, b.words.version(r.Commit, r.Version), outcomeWords(r.Outcome), b.words.mention(r.StartedBy))
		if r.Outcome == workflows.StatusSuccess {
			line = fmt.Sprintf("#%d %s by %s", r.Number, b.words.version(r.Commit, r.Version), b.words.mention(r.StartedBy))
		}
		if r.ApprovedBy != "" {
			line += ", approved by " + b.words.mentions(strings.Split(r.ApprovedBy, ","))
		}
		line += ", " + b.words.ago(r.Created)
		if r.Rollback {
			line += " (rollback)"
		}
		if target != nil && r.ID == target.ID {
			line += " ← /rollback goes here"
		}
		lines = append(lines, line)
		lines = append(lines, b.artifacts(r.Artifacts)...)
	}
	return private("%s", strings.Join(lines, "\n")), nil
}

// artifactsMax bounds the artifacts /slipway history shows per release.
const artifactsMax = 12

// artifacts are a release's artifacts, one indented line each, by name:
// what its native steps shipped (image digests, version labels, function
// versions), which a rollback to it reuses.
func (b *Bot) artifacts(a map[string]string) []string {
	var lines []string
	for i, k := range slices.Sorted(maps.Keys(a)) {
		if i == artifactsMax {
			lines = append(lines, fmt.Sprintf("    … and %d more", len(a)-artifactsMax))
			break
		}
		v := a[k]
		if v == "" {
			v = "none"
		}
		lines = append(lines, "    "+b.words.Text(clipText(k, 100))+": `"+b.words.Text(clipText(v, 200))+"`")
	}
	return lines
}

// Press is a press of an approval's button.
type Press struct {
	User    string
	Approve bool
	// JobID is the job the pressed message is the approval request of,
	// as the adapter recorded when it posted it: never taken from the
	// button's value, which anyone could forge.
	JobID string
}

// Decide answers a press: the engine checks who may; a refusal is said
// to the presser alone. The message itself changes when the decision's
// event reaches the thread.
func (b *Bot) Decide(ctx context.Context, p Press) (Reply, error) {
	actor, err := b.actor(ctx, p.User)
	if err != nil {
		return Reply{}, err
	}
	decide, action := b.engine.Reject, "reject"
	if p.Approve {
		decide, action = b.engine.Approve, "approve"
	}
	d, err := decide(ctx, p.JobID, actor)
	if errors.Is(err, engine.ErrNotFound) {
		return private("That approval is not slipway's any more."), nil
	}
	if err != nil {
		return Reply{}, err
	}
	if !d.Applied {
		return private("%s", b.words.Refusal(action, d)), nil
	}
	return private("%s.", b.words.Decided(d, actor.ID)), nil
}
