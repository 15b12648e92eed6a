package forge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// IntakeStore is what the intake needs of the store: the deliveries the
// Receiver kept, and a record of how each was handled.
type IntakeStore interface {
	PendingInbox(ctx context.Context, source string, now time.Time, limit int) ([]engine.InboxItem, error)
	NextInboxDue(ctx context.Context, source string) (time.Time, error)
	HandledInbox(ctx context.Context, source, id, result string, at time.Time) error
	RetryInbox(ctx context.Context, source, id string, next time.Time, cause string) error
}

// Starter starts pipelines: the engine.
type Starter interface {
	StartPipeline(ctx context.Context, req engine.StartRequest) (engine.Started, error)
	CancelSuperseded(ctx context.Context, p *engine.PipelineRecord) ([]int, error)
}

// Configs gives the config of a repository at a commit: the Client.
type Configs interface {
	Config(repo, sha, path string, opts workflows.LoadOptions) engine.ConfigLoader
}

// People matches GitHub people to chat identities, so that a pushed
// change's authors are the people who press the chat's buttons.
type People interface {
	// Identify returns the chat identity of a GitHub person, by login or
	// email; "" when none matches.
	Identify(ctx context.Context, login, email string) (string, error)
}

// App is what the intake needs of an app: its repository, where its
// config lives, and whether a push cancels the branch's older pipelines.
type App struct {
	Name             string
	Repo             string // "owner/name"
	ConfigPath       string // default .circleci/config.yml
	CancelSuperseded bool
}

// IntakeOptions configure an Intake.
type IntakeOptions struct {
	// Load is how configs are loaded: the server's orb folder, machine jobs.
	Load workflows.LoadOptions
	// People, when set, names a push's authors as chat identities.
	People People
	Logger *slog.Logger
	Now    func() time.Time
	// RetryMin and RetryMax bound the wait before a delivery whose
	// handling failed (GitHub unreachable) is tried again; 1s and 5m.
	RetryMin, RetryMax time.Duration
}

// Intake turns the deliveries the Receiver kept into pipelines, from the
// store, so that a delivery acknowledged before a crash is handled after
// it. A push of a branch or tag starts a pipeline of the app whose repo
// it is, at the pushed commit, with an ID derived from the delivery's:
// handling a delivery again (after a crash between the start and its
// record) finds the pipeline it started. Its one goroutine is Run's.
type Intake struct {
	store   IntakeStore
	starter Starter
	configs Configs
	apps    map[string]App // by lowercased repo
	load    workflows.LoadOptions
	people  People
	log     *slog.Logger
	now     func() time.Time
	min     time.Duration
	max     time.Duration
	wake    chan struct{}
}

// NewIntake returns an intake for apps.
func NewIntake(st IntakeStore, starter Starter, configs Configs, apps []App, opts IntakeOptions) *Intake {
	in := &Intake{store: st, starter: starter, configs: configs, apps: map[string]App{}, load: opts.Load, people: opts.People,
		log: opts.Logger, now: opts.Now, min: opts.RetryMin, max: opts.RetryMax, wake: make(chan struct{}, 1)}
	for _, a := range apps {
		if a.ConfigPath == "" {
			a.ConfigPath = ".circleci/config.yml"
		}
		in.apps[strings.ToLower(a.Repo)] = a
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	if in.now == nil {
		in.now = func() time.Time { return time.Now().UTC() }
	}
	if in.min <= 0 {
		in.min = time.Second
	}
	if in.max <= 0 {
		in.max = 5 * time.Minute
	}
	return in
}

// Wake tells the intake that a delivery was stored.
func (in *Intake) Wake() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// Run handles deliveries as they come until ctx ends.
func (in *Intake) Run(ctx context.Context) error {
	for {
		if _, err := in.HandlePending(ctx); err != nil && ctx.Err() == nil {
			in.log.Error("handle webhook deliveries", "err", err)
		}
		wait := in.max
		if next, err := in.store.NextInboxDue(ctx, inboxSource); err == nil && !next.IsZero() {
			wait = min(max(next.Sub(in.now()), 10*time.Millisecond), in.max)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-in.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// HandlePending handles the deliveries due now, oldest first, and says
// how many it handled.
func (in *Intake) HandlePending(ctx context.Context) (int, error) {
	n := 0
	for {
		items, err := in.store.PendingInbox(ctx, inboxSource, in.now(), 50)
		if err != nil || len(items) == 0 {
			return n, err
		}
		for _, it := range items {
			log := in.log.With("delivery", it.ID, "event", it.Kind)
			result, err := in.handle(ctx, it, log)
			if err != nil {
				wait := in.min << min(it.Attempts, 20)
				wait = min(wait, in.max)
				log.Warn("webhook delivery not handled; will retry", "attempt", it.Attempts+1, "retry_in", wait, "err", err)
				if err := in.store.RetryInbox(ctx, inboxSource, it.ID, in.now().Add(wait), err.Error()); err != nil {
					return n, err
				}
				continue
			}
			log.Info("webhook delivery handled", "result", result)
			if err := in.store.HandledInbox(ctx, inboxSource, it.ID, result, in.now()); err != nil {
				return n, err
			}
			n++
		}
	}
}

// zeroSHA is the "before" or "after" of a push that created or deleted a ref.
const zeroSHA = "0000000000000000000000000000000000000000"

// handle handles one delivery; an error means "try again later".
func (in *Intake) handle(ctx context.Context, it engine.InboxItem, log *slog.Logger) (string, error) {
	if it.Kind != "push" {
		return "ignored: not a push", nil
	}
	var ev github.PushEvent
	if err := json.Unmarshal(it.Payload, &ev); err != nil {
		return "ignored: malformed push payload: " + err.Error(), nil
	}
	repo := ev.GetRepo().GetFullName()
	app, ok := in.apps[strings.ToLower(repo)]
	if !ok {
		log.Info("push for a repository no app is configured for", "repo", repo)
		return fmt.Sprintf("ignored: no app for repository %q", repo), nil
	}
	ref, sha := ev.GetRef(), ev.GetAfter()
	var branch, tag string
	switch {
	case strings.HasPrefix(ref, "refs/heads/"):
		branch = strings.TrimPrefix(ref, "refs/heads/")
	case strings.HasPrefix(ref, "refs/tags/"):
		tag = strings.TrimPrefix(ref, "refs/tags/")
	default:
		return fmt.Sprintf("ignored: a push of %q, neither a branch nor a tag", ref), nil
	}
	if ev.GetDeleted() || sha == zeroSHA || sha == "" {
		return fmt.Sprintf("ignored: %q was deleted", ref), nil
	}
	if !isSHA(sha) {
		return fmt.Sprintf("ignored: %q is not a commit SHA", sha), nil
	}
	t := workflows.Trigger{Branch: branch, Tag: tag, Revision: sha, Source: "webhook", ProjectURL: ev.GetRepo().GetHTMLURL()}
	if before := ev.GetBefore(); before != zeroSHA && isSHA(before) {
		t.BaseRevision = before
	}
	hc := ev.GetHeadCommit()
	title, _, _ := strings.Cut(hc.GetMessage(), "\n")
	authors := in.authors(ctx, &ev, log)
	started, err := in.starter.StartPipeline(ctx, engine.StartRequest{
		ID:  "gh-" + it.ID,
		App: app.Name, Repo: app.Repo, Author: authors[0], Authors: authors, Trigger: t,
		Source: engine.Source{Repo: app.Repo, Revision: sha},
		Config: in.configs.Config(app.Repo, sha, app.ConfigPath, in.load),
		Commit: engine.CommitInfo{Title: title, Author: hc.GetAuthor().GetName(), URL: hc.GetURL()},
	})
	if err != nil {
		return "", err
	}
	p := started.Pipeline
	switch {
	case p == nil:
		return "nothing runs for this push", nil
	case started.ConfigErr != nil:
		return fmt.Sprintf("pipeline %d: config error: %v", p.Number, started.ConfigErr), nil
	}
	result := fmt.Sprintf("pipeline %d", p.Number)
	if started.Existing {
		result += " (started before)"
	}
	if app.CancelSuperseded && branch != "" {
		canceled, err := in.starter.CancelSuperseded(ctx, p)
		if err != nil {
			return "", err
		}
		if len(canceled) > 0 {
			result += fmt.Sprintf("; canceled superseded pipelines %v", canceled)
		}
	}
	return result, nil
}

// authors are who a push's change is from: the pusher and the head
// commit's author, as chat identities where People matches them, else as
// engine.UnknownAuthor; without People, the pusher's login.
func (in *Intake) authors(ctx context.Context, ev *github.PushEvent, log *slog.Logger) []string {
	login := pusher(ev)
	if in.people == nil {
		return []string{login}
	}
	ca := ev.GetHeadCommit().GetAuthor()
	var out []string
	for _, p := range [][2]string{{login, ev.GetPusher().GetEmail()}, {ca.GetLogin(), ca.GetEmail()}} {
		if p[0] == "" && p[1] == "" {
			continue
		}
		id, err := in.people.Identify(ctx, p[0], p[1])
		if err != nil {
			// The chat being down delays no pipeline: the author counts
			// as unknown, which the approval then says.
			log.Warn("author not matched to a chat user", "login", p[0], "err", err)
		}
		if id == "" {
			name := p[0]
			if name == "" {
				name = p[1]
			}
			id = engine.UnknownAuthor(name)
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		out = []string{engine.UnknownAuthor(login)}
	}
	return out
}

// pusher is who pushed: the sender's login, else the pusher's name
// (which GitHub sets to the login on pushes).
func pusher(ev *github.PushEvent) string {
	if l := ev.GetSender().GetLogin(); l != "" {
		return l
	}
	if n := ev.GetPusher().GetName(); n != "" {
		return n
	}
	return "unknown"
}

func isSHA(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
