package forge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/google/go-github/v60/github"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// KV is where the Notifier remembers what it posted and the IDs GitHub
// gave its deployments, across restarts (store.KV is one).
type KV interface {
	Get(ctx context.Context, key string) (string, bool, error)
	Put(ctx context.Context, key, value string) error
}

// NotifierOptions configure a Notifier.
type NotifierOptions struct {
	// TargetURL links a status to slipway's page of the event's pipeline
	// or job; nil, or an answer that is not an http(s) URL, links nothing.
	TargetURL func(ev engine.Event) string
	Logger    *slog.Logger
}

// Notifier is the engine's "github" consumer: it reports a pipeline's
// jobs as commit statuses (context slipway/<workflow>/<job>), a pipeline
// whose config failed as the status "slipway", and deploy jobs as GitHub
// deployments.
//
// The outbox delivers each event at least once and retries failures, so
// every call to GitHub is recorded in the KV once it worked and skipped
// when the event comes again. A GitHub that is down, or rate limits,
// delays statuses (plain errors, engine.RetryAfter); a request GitHub
// refuses for good (a 404 or 422: repository gone, commit unknown) parks
// the event (engine.Permanent) and never holds back the next ones.
type Notifier struct {
	c         *Client
	kv        KV
	targetURL func(ev engine.Event) string
	log       *slog.Logger

	// mu makes one event at a time: the outbox does already, and the
	// deployment records are read, changed and written back.
	mu sync.Mutex
}

var _ engine.Notifier = (*Notifier)(nil)

// NewNotifier makes the GitHub notifier.
func NewNotifier(c *Client, kv KV, opts NotifierOptions) *Notifier {
	logger := opts.Logger
	if logger == nil {
		logger = c.log
	}
	return &Notifier{c: c, kv: kv, targetURL: opts.TargetURL, log: logger.With("notifier", "github")}
}

// Commit status states and the description's limit, GitHub's.
const (
	statePending = "pending"
	stateSuccess = "success"
	stateFailure = "failure"
	stateError   = "error"
	maxDesc      = 140
)

// Notify reports one event to GitHub. Events of pipelines that are not of
// a GitHub repository (slipway run's "local/x", a revision that is not a
// SHA) are ignored.
func (n *Notifier) Notify(ctx context.Context, ev engine.Event) error {
	p := ev.Pipeline
	if !gitHubPipeline(p) {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	d := ev.Data
	var o outcome
	switch ev.Kind {
	case engine.EventJobStarted:
		if !o.next(n.jobStatus(ctx, ev, statePending, "running", "pending-running")) {
			return o.err()
		}
		if d.Env != "" {
			o.next(n.deployStarted(ctx, ev))
		}
	case engine.EventApprovalNeeded:
		o.next(n.jobStatus(ctx, ev, statePending, "waiting for approval", "pending-approval"))
	case engine.EventJobWaiting:
		o.next(n.jobStatus(ctx, ev, statePending, "queued: "+d.Reason, "pending-queued"))
	case engine.EventJobFinished:
		state, desc, ok := finishedStatus(d)
		if !ok {
			return nil
		}
		if !o.next(n.jobStatus(ctx, ev, state, desc, state)) {
			return o.err()
		}
		if d.Env != "" && d.AttemptID != "" && d.Status != workflows.StatusSuccess {
			o.next(n.deployFailed(ctx, ev))
		}
	case engine.EventPipelineFinished:
		if d.Status == engine.StatusError {
			key := statusKey(ev, "", stateError)
			if !o.next(n.status(ctx, ev, key, "slipway", stateError, d.Reason)) {
				return o.err()
			}
		}
		o.next(n.deployFinished(ctx, ev))
	}
	return o.err()
}

// outcome gathers the results of an event's calls: a permanent failure
// does not keep the event's other calls from being made; any other
// failure stops them, and the event comes again.
type outcome struct {
	permanent []error
	retry     error
}

// next records err and says whether to go on.
func (o *outcome) next(err error) bool {
	var perm *engine.PermanentError
	switch {
	case err == nil:
		return true
	case errors.As(err, &perm):
		o.permanent = append(o.permanent, perm.Err)
		return true
	default:
		o.retry = err
		return false
	}
}

func (o *outcome) err() error {
	if o.retry != nil {
		return o.retry
	}
	if len(o.permanent) > 0 {
		return engine.Permanent(errors.Join(o.permanent...))
	}
	return nil
}

// gitHubPipeline says whether p runs a commit of a GitHub repository:
// "owner/name" at a full SHA. slipway run names its repositories
// "local/<name>", which no GitHub account may hold here.
func gitHubPipeline(p engine.PipelineRef) bool {
	owner, _, err := splitRepo(p.Repo)
	return err == nil && !strings.EqualFold(owner, "local") && shaRe.MatchString(p.Revision)
}

// finishedStatus is the commit status of a job that ended.
func finishedStatus(d engine.EventData) (state, desc string, ok bool) {
	switch d.Status {
	case workflows.StatusSuccess:
		return stateSuccess, "succeeded", true
	case workflows.StatusFailed:
		switch {
		case d.ExitCode != 0:
			return stateFailure, fmt.Sprintf("failed (exit %d)", d.ExitCode), true
		case d.Reason != "":
			return stateFailure, d.Reason, true
		}
		return stateFailure, "failed", true
	case workflows.StatusUnauthorized:
		if d.Reason != "" {
			return stateFailure, d.Reason, true
		}
		return stateFailure, "not authorized", true
	case workflows.StatusCanceled:
		return stateError, "canceled", true
	case workflows.StatusNotRun:
		if d.Reason != "" {
			return stateError, "not run: " + d.Reason, true
		}
		return stateError, "not run", true
	case workflows.StatusSkipped:
		return stateSuccess, "skipped", true
	}
	return "", "", false
}

// statusKey names one transition of a job (or, with job "", of the
// pipeline): its attempt when it ran, else the event itself (Seq), so
// that a redelivered event is recognized and a rerun's transitions are
// new ones.
func statusKey(ev engine.Event, job, tag string) string {
	attempt := ev.Data.AttemptID
	if attempt == "" {
		attempt = "e" + strconv.FormatInt(ev.Seq, 10)
	}
	if job == "" {
		job = "-"
	}
	return fmt.Sprintf("status/%s/%s/%s/%s", ev.PipelineID, job, attempt, tag)
}

func (n *Notifier) jobStatus(ctx context.Context, ev engine.Event, state, desc, tag string) error {
	d := ev.Data
	if d.Job == "" || d.Workflow == "" {
		return nil
	}
	job := d.JobID
	if job == "" {
		job = d.Workflow + "/" + d.Job
	}
	return n.status(ctx, ev, statusKey(ev, job, tag), "slipway/"+d.Workflow+"/"+d.Job, state, desc)
}

// status posts a commit status once per key.
func (n *Notifier) status(ctx context.Context, ev engine.Event, key, context, state, desc string) error {
	p := ev.Pipeline
	owner, name, _ := splitRepo(p.Repo)
	return n.once(ctx, key, func() error {
		st := &github.RepoStatus{State: &state, Context: &context, Description: github.String(describe(desc))}
		if u := n.target(ev); u != "" {
			st.TargetURL = &u
		}
		if _, _, err := n.c.gh.Repositories.CreateStatus(ctx, owner, name, p.Revision, st); err != nil {
			return fmt.Errorf("forge: status %s %s on %s@%s: %w", context, state, p.Repo, short(p.Revision), err)
		}
		n.log.Debug("posted status", "repo", p.Repo, "sha", short(p.Revision), "context", context, "state", state)
		return nil
	})
}

// once runs post unless key says it was done, and records it when it
// worked. Its error is classified for the outbox.
func (n *Notifier) once(ctx context.Context, key string, post func() error) error {
	_, done, err := n.kv.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("forge: notifier: %w", err)
	}
	if done {
		return nil
	}
	if err := post(); err != nil {
		return forOutbox(err)
	}
	if err := n.kv.Put(ctx, key, "posted"); err != nil {
		return fmt.Errorf("forge: notifier: %w", err)
	}
	return nil
}

// target is the event's link, when it is one GitHub takes: an invalid
// target_url would make GitHub refuse the status itself.
func (n *Notifier) target(ev engine.Event) string {
	if n.targetURL == nil {
		return ""
	}
	s := n.targetURL(ev)
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return s
}

// describe fits a text into a status description: one line, at most 140
// characters (GitHub refuses more), cut with an ellipsis.
func describe(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			lines = append(lines, l)
		}
	}
	s = strings.Join(lines, "; ")
	if r := []rune(s); len(r) > maxDesc {
		s = string(r[:maxDesc-1]) + "…"
	}
	return s
}

// forOutbox tells the outbox what to do with a failed call to GitHub:
// wait what a rate limit asks (RetryAfter); park the event for good when
// GitHub refused the request itself (Permanent: 400, 404, 409, 410, 422,
// a repository gone or a request it will never take); else try again
// with backoff (a network error, a 5xx, and 401/403, which an operator
// mends by fixing credentials or permissions: the statuses are late, not
// lost).
func forOutbox(err error) error {
	if d, ok := rateLimited(err); ok {
		return engine.RetryAfter(err, d)
	}
	switch httpStatus(err) {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusGone, http.StatusUnprocessableEntity:
		return engine.Permanent(err)
	}
	return err
}
