package forge

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-github/v60/github"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// A pipeline's deploys are GitHub deployments, one per environment (and
// per run of it: a rerun deploys again). Their lifecycle:
//
//  1. the first job.started of the pipeline with that Env creates the
//     deployment (ref: the commit's SHA) and posts in_progress;
//  2. a job.finished of one of its jobs that did not succeed posts
//     failure (error when canceled), once; the deployment is over;
//  3. pipeline.finished posts success on each deployment still going,
//     and inactive on the one it replaced in that environment.
//
// The KV holds, under deploymentsKey, the pipeline's deployments by
// environment, and under activeKey the live one of each repository's
// environment; each status posted is recorded under its own key.

// deployment is what the Notifier remembers of a GitHub deployment.
type deployment struct {
	ID int64 `json:"id"`
	// Seq is the event that started it: deploys of an environment start
	// in this order (the engine's lock), whatever order their pipelines'
	// events reach GitHub in.
	Seq  int64    `json:"seq"`
	Jobs []string `json:"jobs"`           // the jobs deploying with it
	Done string   `json:"done,omitempty"` // the final state posted: success, failure, error
}

// payload is what a deployment carries to say whose it is.
type payload struct {
	Slipway struct {
		PipelineID string `json:"pipeline_id"`
		Number     int    `json:"pipeline_number"`
		AttemptID  string `json:"attempt_id"`
	} `json:"slipway"`
}

func deploymentsKey(pipelineID string) string { return "deployments/" + pipelineID }

func activeKey(repo, env string) string { return "active/" + strings.ToLower(repo) + "/" + env }

func deploymentStatusKey(id int64, state string) string {
	return "deployment-status/" + strconv.FormatInt(id, 10) + "/" + state
}

func (n *Notifier) loadDeployments(ctx context.Context, pipelineID string) (map[string]*deployment, error) {
	m := map[string]*deployment{}
	v, ok, err := n.kv.Get(ctx, deploymentsKey(pipelineID))
	if err != nil {
		return nil, fmt.Errorf("forge: notifier: %w", err)
	}
	if ok {
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			return nil, fmt.Errorf("forge: notifier: deployments of %s: %w", pipelineID, err)
		}
	}
	return m, nil
}

func (n *Notifier) saveDeployments(ctx context.Context, pipelineID string, m map[string]*deployment) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := n.kv.Put(ctx, deploymentsKey(pipelineID), string(b)); err != nil {
		return fmt.Errorf("forge: notifier: %w", err)
	}
	return nil
}

// deployStarted makes the deployment of the job's environment, unless
// one is going already, and says it is in progress.
func (n *Notifier) deployStarted(ctx context.Context, ev engine.Event) error {
	d := ev.Data
	m, err := n.loadDeployments(ctx, ev.PipelineID)
	if err != nil {
		return err
	}
	dep := m[d.Env]
	if dep == nil || dep.Done != "" {
		id, err := n.createDeployment(ctx, ev)
		if err != nil {
			return err
		}
		dep = &deployment{ID: id, Seq: ev.Seq}
		m[d.Env] = dep
	}
	if !slices.Contains(dep.Jobs, d.JobID) {
		dep.Jobs = append(dep.Jobs, d.JobID)
	}
	if err := n.saveDeployments(ctx, ev.PipelineID, m); err != nil {
		return err
	}
	desc := fmt.Sprintf("deploying %s to %s", short(ev.Pipeline.Revision), d.Env)
	return n.deploymentStatus(ctx, ev, dep.ID, "in_progress", desc)
}

// createDeployment creates the GitHub deployment of an event's job and
// environment, or finds the one an earlier delivery created before the
// process died without recording it.
func (n *Notifier) createDeployment(ctx context.Context, ev engine.Event) (int64, error) {
	p, d := ev.Pipeline, ev.Data
	owner, name, _ := splitRepo(p.Repo)
	what := fmt.Sprintf("forge: deployment of %s@%s to %s", p.Repo, short(p.Revision), d.Env)
	existing, _, err := n.c.gh.Repositories.ListDeployments(ctx, owner, name, &github.DeploymentsListOptions{
		SHA: p.Revision, Environment: d.Env, ListOptions: github.ListOptions{PerPage: 100}})
	if err != nil {
		return 0, forOutbox(fmt.Errorf("%s: list: %w", what, err))
	}
	for _, dep := range existing {
		var pl payload
		if json.Unmarshal(dep.Payload, &pl) == nil && pl.Slipway.PipelineID == ev.PipelineID && pl.Slipway.AttemptID == d.AttemptID {
			return dep.GetID(), nil
		}
	}
	var pl payload
	pl.Slipway.PipelineID, pl.Slipway.Number, pl.Slipway.AttemptID = ev.PipelineID, p.Number, d.AttemptID
	app := p.App
	if app == "" {
		app = p.Repo
	}
	who := ""
	if p.Author != "" {
		who = " by " + p.Author
	}
	req := &github.DeploymentRequest{
		Ref:         github.String(p.Revision),
		Task:        github.String("deploy"),
		AutoMerge:   github.Bool(false),
		Environment: github.String(d.Env),
		Description: github.String(describe(fmt.Sprintf("%s to %s: pipeline #%d%s", app, d.Env, p.Number, who))),
		Payload:     pl,
		// slipway gates deploys itself (approvals, environment locks):
		// GitHub must not refuse one for a commit status.
		RequiredContexts: &[]string{},
	}
	dep, _, err := n.c.gh.Repositories.CreateDeployment(ctx, owner, name, req)
	if err != nil {
		return 0, forOutbox(fmt.Errorf("%s: %w", what, err))
	}
	n.log.Info("created deployment", "repo", p.Repo, "sha", short(p.Revision), "env", d.Env, "deployment", dep.GetID())
	return dep.GetID(), nil
}

// deploymentStatus posts a deployment's status once.
func (n *Notifier) deploymentStatus(ctx context.Context, ev engine.Event, id int64, state, desc string) error {
	p := ev.Pipeline
	owner, name, _ := splitRepo(p.Repo)
	return n.once(ctx, deploymentStatusKey(id, state), func() error {
		req := &github.DeploymentStatusRequest{State: &state, Description: github.String(describe(desc))}
		if u := n.target(ev); u != "" {
			req.LogURL = &u
		}
		if state == stateSuccess {
			// Which deployment an environment runs is slipway's to
			// say (activate), for production environments too.
			req.AutoInactive = github.Bool(false)
		}
		if _, _, err := n.c.gh.Repositories.CreateDeploymentStatus(ctx, owner, name, id, req); err != nil {
			return fmt.Errorf("forge: deployment %d of %s %s: %w", id, p.Repo, state, err)
		}
		n.log.Debug("posted deployment status", "repo", p.Repo, "deployment", id, "state", state)
		return nil
	})
}

// deployFailed ends the deployment of a job that did not succeed.
func (n *Notifier) deployFailed(ctx context.Context, ev engine.Event) error {
	d := ev.Data
	m, err := n.loadDeployments(ctx, ev.PipelineID)
	if err != nil {
		return err
	}
	dep := m[d.Env]
	if dep == nil || dep.Done != "" || !slices.Contains(dep.Jobs, d.JobID) {
		return nil
	}
	state, desc := stateFailure, "failed: "+d.Job
	if _, why, ok := finishedStatus(d); ok {
		desc += ": " + why
	}
	if d.Status == workflows.StatusCanceled {
		state, desc = stateError, "canceled: "+d.Job
	}
	if err := n.deploymentStatus(ctx, ev, dep.ID, state, desc); err != nil {
		return err
	}
	dep.Done = state
	return n.saveDeployments(ctx, ev.PipelineID, m)
}

// deployFinished says that the pipeline's deployments still going
// succeeded, and retires what each replaced.
func (n *Notifier) deployFinished(ctx context.Context, ev engine.Event) error {
	m, err := n.loadDeployments(ctx, ev.PipelineID)
	if err != nil {
		return err
	}
	var o outcome
	for _, env := range slices.Sorted(maps.Keys(m)) {
		dep := m[env]
		if dep.Done != "" {
			continue
		}
		err := n.deploymentStatus(ctx, ev, dep.ID, stateSuccess, fmt.Sprintf("deployed %s to %s", short(ev.Pipeline.Revision), env))
		if err == nil {
			err = n.activate(ctx, ev, env, dep)
		}
		if !o.next(err) {
			return o.err()
		}
		dep.Done = stateSuccess
		if err := n.saveDeployments(ctx, ev.PipelineID, m); err != nil {
			return err
		}
	}
	return o.err()
}

// activate records dep as the environment's live deployment and marks
// the one it replaced inactive. A deployment that started before the live
// one (its pipeline's events were late) is the one marked inactive.
func (n *Notifier) activate(ctx context.Context, ev engine.Event, env string, dep *deployment) error {
	key := activeKey(ev.Pipeline.Repo, env)
	v, ok, err := n.kv.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("forge: notifier: %w", err)
	}
	var live deployment
	if ok {
		if err := json.Unmarshal([]byte(v), &live); err != nil {
			return fmt.Errorf("forge: notifier: %s: %w", key, err)
		}
	}
	if ok && live.ID == dep.ID {
		return nil
	}
	if ok && (live.Seq > dep.Seq || live.Seq == dep.Seq && live.ID > dep.ID) {
		return n.deploymentStatus(ctx, ev, dep.ID, "inactive", "replaced by a later deployment")
	}
	if ok {
		if err := n.deploymentStatus(ctx, ev, live.ID, "inactive", "replaced by "+short(ev.Pipeline.Revision)); err != nil {
			return err
		}
	}
	b, _ := json.Marshal(deployment{ID: dep.ID, Seq: dep.Seq})
	if err := n.kv.Put(ctx, key, string(b)); err != nil {
		return fmt.Errorf("forge: notifier: %w", err)
	}
	return nil
}
