package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/slipway-ci/slipway/workflows"
)

// ConfigLoader reads the config a pipeline runs, at its commit: from a
// file (slipway run), from the forge (a push), from the repository at a
// resolved ref (/deploy). A *workflows.Error or workflows.ErrorList is a
// problem of the config, reported as the pipeline's outcome; any other
// error means the config could not be read at all (the forge is down),
// and the start can be tried again.
type ConfigLoader interface {
	LoadConfig(ctx context.Context) (*workflows.Config, error)
}

// ConfigFunc is a ConfigLoader made of a function.
type ConfigFunc func(ctx context.Context) (*workflows.Config, error)

// LoadConfig calls f.
func (f ConfigFunc) LoadConfig(ctx context.Context) (*workflows.Config, error) { return f(ctx) }

// ConfigError is a config that could not be read or planned for a
// pipeline: what the pipeline ended with, in StatusError.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// StartRequest asks for a pipeline of an app's commit.
type StartRequest struct {
	// ID, when set, is the pipeline's ID: derived by the caller from what
	// asked for it (a webhook delivery, a chat command), so that asking
	// twice, as after a crash, starts one pipeline.
	ID     string
	App    string // may name no configured app: then nothing deploys
	Repo   string // "owner/name"
	Author string
	// Authors are everyone the change is from (see NewPipeline.Authors).
	Authors []string
	// Trigger is what the plan sees; its ID and Number are the
	// pipeline's, set here.
	Trigger workflows.Trigger
	Source  Source
	Config  ConfigLoader
	// Workflows, when set, keeps only these workflows of the plan: the
	// app's deploy workflow, for /deploy and /rollback.
	Workflows []string
	// RerunOf is the number of the pipeline this one runs again.
	RerunOf int
	// Commit describes the commit for people.
	Commit CommitInfo
}

// Started is what StartPipeline did.
type Started struct {
	// Pipeline is the pipeline started, or the one the request's ID had
	// started before; nil when nothing runs for the trigger (every
	// workflow filtered out).
	Pipeline *PipelineRecord
	// Existing says the request's ID had started Pipeline before.
	Existing bool
	// ConfigErr is set when the config could not be read or planned:
	// Pipeline then ended in StatusError with it, and runs nothing.
	ConfigErr error
}

// StartPipeline is the one way a pipeline starts, whoever asks (a push,
// /deploy, /rollback, a rerun, slipway run): it reserves the pipeline's
// ID and number, loads the config, plans it with the pipeline's own
// values (`<< pipeline.number >>` included) and stores the plan, in that
// order. A config that cannot be planned is an outcome, not an error: a
// pipeline that ended in StatusError with the reason, for the outbox's
// consumers to report. An error means nothing was started, and the
// request may be tried again with the same ID.
func (e *Engine) StartPipeline(ctx context.Context, req StartRequest) (Started, error) {
	id := req.ID
	if id == "" {
		id = e.ids.NewID()
	} else if p, err := e.store.Pipeline(ctx, id); err == nil {
		return Started{Pipeline: p, Existing: true}, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Started{}, fmt.Errorf("engine: start: %w", err)
	}
	var number int
	if err := e.update(ctx, func(tx StoreTx) error {
		var err error
		number, err = tx.ReserveNumber(ctx, req.App, id)
		return err
	}); err != nil {
		return Started{}, fmt.Errorf("engine: start: %w", err)
	}
	t := req.Trigger
	t.ID, t.Number = id, number
	preq := PipelineRequest{ID: id, App: req.App, Repo: req.Repo, Author: req.Author, Authors: req.Authors, Trigger: t, Source: req.Source,
		RerunOf: req.RerunOf, Commit: req.Commit}
	cfg, err := req.Config.LoadConfig(ctx)
	if err == nil {
		preq.Plan, err = cfg.Plan(t)
	}
	if cfgErr := err; cfgErr != nil {
		var one *workflows.Error
		var list workflows.ErrorList
		if !errors.As(cfgErr, &one) && !errors.As(cfgErr, &list) {
			return Started{}, fmt.Errorf("engine: start: config: %w", cfgErr)
		}
		preq.Plan, preq.Error = &workflows.Plan{}, cfgErr.Error()
		p, err := e.create(ctx, preq)
		if err != nil {
			return Started{}, err
		}
		return Started{Pipeline: p, ConfigErr: &ConfigError{Err: cfgErr}}, nil
	}
	if len(req.Workflows) > 0 {
		preq.Plan.Workflows = slices.DeleteFunc(preq.Plan.Workflows, func(w *workflows.PlannedWorkflow) bool {
			return !slices.Contains(req.Workflows, w.Name)
		})
	}
	if len(preq.Plan.Workflows) == 0 {
		return Started{}, nil
	}
	p, err := e.create(ctx, preq)
	if errors.Is(err, ErrExists) {
		// Another start with this ID won the race.
		p, err = e.store.Pipeline(ctx, id)
		return Started{Pipeline: p, Existing: true}, err
	}
	return Started{Pipeline: p}, err
}

// PipelineRequest asks for a planned pipeline to run.
type PipelineRequest struct {
	// ID, when set, is the pipeline's ID instead of a new one, so that a
	// caller retrying a submit (a redelivered webhook) cannot start the
	// pipeline twice: the second submit fails with ErrExists.
	ID      string
	App     string // may name no configured app: then nothing deploys
	Repo    string // "owner/name"
	Author  string
	Authors []string // see NewPipeline.Authors
	Trigger workflows.Trigger
	Source  Source
	Plan    *workflows.Plan
	// Error, when set, is why the config could not be planned: the
	// pipeline is stored ended in StatusError, with no workflows.
	Error string
	// RerunOf is the number of the pipeline this one runs again.
	RerunOf int
	// Commit describes the commit for people.
	Commit CommitInfo
}

// Submit stores a new pipeline of a plan already made; it runs once the
// engine is started. Front ends start pipelines with StartPipeline, which
// plans with the pipeline's own number; Submit is for plans made by hand.
func (e *Engine) Submit(ctx context.Context, req PipelineRequest) (*PipelineRecord, error) {
	if req.Plan == nil || len(req.Plan.Workflows) == 0 {
		return nil, errors.New("engine: submit: the plan has no workflows")
	}
	return e.create(ctx, req)
}

// create stores a pipeline with its first events, in one transaction.
func (e *Engine) create(ctx context.Context, req PipelineRequest) (*PipelineRecord, error) {
	now := e.clock.Now()
	p := &NewPipeline{
		ID: req.ID, App: req.App, Repo: req.Repo, Author: req.Author, Authors: req.Authors, Trigger: req.Trigger,
		Source: req.Source, Plan: req.Plan, Envs: map[string]string{}, Created: now, Error: req.Error, RerunOf: req.RerunOf, Commit: req.Commit,
	}
	if p.ID == "" {
		p.ID = e.ids.NewID()
	}
	app := e.apps[req.App]
	for _, w := range req.Plan.Workflows {
		p.WorkflowIDs = append(p.WorkflowIDs, e.ids.NewID())
		ids := make([]string, len(w.Jobs))
		for i, j := range w.Jobs {
			ids[i] = e.ids.NewID()
			if app == nil {
				continue
			}
			for _, c := range j.Context {
				if _, ok := app.Environments[c]; ok {
					p.Envs[w.Name+"/"+j.Name] = c
					break
				}
			}
		}
		p.JobIDs = append(p.JobIDs, ids)
	}
	p.Trigger.ID = p.ID
	events := []Event{{PipelineID: p.ID, Kind: EventPipelineCreated, At: now, Data: EventData{Actor: req.Author}}}
	if req.Error != "" {
		events = append(events, Event{PipelineID: p.ID, Kind: EventPipelineFinished, At: now,
			Data: EventData{Status: StatusError, Reason: req.Error}})
	}
	var rec *PipelineRecord
	err := e.update(ctx, func(tx StoreTx) error {
		var err error
		if rec, err = tx.CreatePipeline(ctx, p); err != nil {
			return err
		}
		e.refs.put(rec.Ref())
		return tx.AddEvents(ctx, events)
	})
	if err != nil {
		return nil, fmt.Errorf("engine: submit: %w", err)
	}
	if req.Error == "" {
		e.markDirty(rec.ID)
	}
	return rec, nil
}
