package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/workflows"
)

// Dynamic configuration (a config with `setup: true`): a job of the setup
// pipeline continues it with another config and pipeline parameters
// (circleci/continuation's continue, which the config language compiles
// to steps that leave them under the attempt's artifacts, in
// workflows.ContinuationDir). Once that job ended, the engine starts the
// continued pipeline, through StartPipeline, with CircleCI's rules:
//
//   - one continuation for a setup pipeline: the continued pipeline's ID
//     is derived from the setup pipeline's (ContinuationID), so that a
//     second continue, a rerun of the job, or the same job's end heard
//     again after a crash starts nothing more;
//   - within six hours of the setup pipeline's creation;
//   - the continuation's parameters may not be ones the setup pipeline
//     was triggered with, which it keeps;
//   - the continued config may not itself be a setup config.
//
// A continuation that breaks a rule is still a pipeline, ended in
// StatusError with the reason, so that people see why nothing ran. The
// continued pipeline is a pipeline of its own (CircleCI continues the
// same pipeline): same commit, author and source, its own number.
//
// The work is an outbox consumer ("continuation") that hears job.finished
// events: it is told at least once of every job's end, across crashes.

// ContinuationWindow is how long after its creation a setup pipeline may
// be continued (CircleCI's six hours).
const ContinuationWindow = 6 * time.Hour

// ContinuationID is the ID of the pipeline that continues setup pipeline
// id.
func ContinuationID(id string) string { return id + "-continued" }

// ContinuationLoader loads the config a setup pipeline's job continued
// with, as that pipeline's own config was loaded: the same vendored orb
// folders, orb registry and operator settings. name is the config's
// path in the repository; a problem of the config is returned as a
// *workflows.Error or workflows.ErrorList.
type ContinuationLoader interface {
	LoadContinuation(ctx context.Context, setup *PipelineRecord, name string, src []byte) (*workflows.Config, error)
}

// ContinuationFunc is a ContinuationLoader made of a function.
type ContinuationFunc func(ctx context.Context, setup *PipelineRecord, name string, src []byte) (*workflows.Config, error)

// LoadContinuation calls f.
func (f ContinuationFunc) LoadContinuation(ctx context.Context, setup *PipelineRecord, name string, src []byte) (*workflows.Config, error) {
	return f(ctx, setup, name, src)
}

// withContinuations adds the continuation consumer to the notifiers when
// the engine can load continued configs.
func (e *Engine) withContinuations(notifiers map[string]Notifier, load ContinuationLoader) map[string]Notifier {
	if load == nil {
		return notifiers
	}
	n := maps.Clone(notifiers)
	if n == nil {
		n = map[string]Notifier{}
	}
	n["continuation"] = &continuer{e: e, load: load}
	return n
}

// continuer starts the pipelines that setup pipelines continue into.
type continuer struct {
	e    *Engine
	load ContinuationLoader
}

func (c *continuer) Notify(ctx context.Context, ev Event) error {
	if ev.Kind != EventJobFinished || ev.Data.AttemptID == "" {
		return nil
	}
	// Where execute puts an attempt's outputs (JobRun.OutputDir).
	dir := filepath.Join(c.e.dataDir, "output", ev.Data.AttemptID, "artifacts", filepath.FromSlash(workflows.ContinuationDir))
	src, err := os.ReadFile(filepath.Join(dir, workflows.ContinuationConfig))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // the job did not continue
	}
	if err != nil {
		return err
	}
	// Only the steps the config language compiles for continue store
	// artifacts there, and only in a setup config.
	spec, err := c.e.store.JobSpec(ctx, ev.Data.JobID)
	if err != nil {
		return err
	}
	if spec == nil || !slices.ContainsFunc(spec.Steps, func(s workflows.Step) bool {
		return s.StoreArtifacts != nil && s.StoreArtifacts.Destination == workflows.ContinuationDir
	}) {
		return nil
	}
	setup, err := c.e.store.Pipeline(ctx, ev.PipelineID)
	if err != nil {
		return err
	}
	id := ContinuationID(setup.ID)
	if _, err := c.e.store.Pipeline(ctx, id); err == nil {
		c.e.log.Info("pipeline already continued: this continuation starts nothing", "pipeline", setup.ID, "job", ev.Data.Job)
		return nil
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	name := workflows.ContinuationConfig
	if p, err := os.ReadFile(filepath.Join(dir, workflows.ContinuationConfigPath)); err == nil && len(p) > 0 {
		name = string(p)
	}
	params, perr := continuationParams(dir)
	t := setup.Trigger
	t.Parameters = maps.Clone(t.Parameters)
	if t.Parameters == nil {
		t.Parameters = map[string]any{}
	}
	var refusal string
	switch {
	case perr != nil:
		refusal = perr.Error()
	case ev.At.Sub(setup.Created) > ContinuationWindow:
		refusal = fmt.Sprintf("the pipeline was continued %s after it was created; a setup pipeline is continued within %s", ev.At.Sub(setup.Created).Round(time.Minute), ContinuationWindow)
	}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if _, ok := t.Parameters[k]; ok && refusal == "" {
			refusal = fmt.Sprintf("continuation parameter %q was given when the pipeline was triggered; a continuation adds parameters, it does not change them", k)
		}
		t.Parameters[k] = params[k]
	}
	load := func(ctx context.Context) (*workflows.Config, error) {
		if refusal != "" {
			return nil, &workflows.Error{File: name, Msg: refusal}
		}
		cfg, err := c.load.LoadContinuation(ctx, setup, name, src)
		if err != nil {
			return nil, err
		}
		if cfg.Setup() {
			return nil, &workflows.Error{File: name, Msg: "a continued config cannot be a setup config (setup: true): a pipeline is continued once"}
		}
		return cfg, nil
	}
	started, err := c.e.StartPipeline(ctx, StartRequest{
		ID: id, App: setup.App, Repo: setup.Repo, Author: setup.Author, Authors: setup.Authors,
		Trigger: t, Source: setup.Source, Config: ConfigFunc(load), Commit: setup.Commit,
	})
	if err != nil {
		return err
	}
	if started.Pipeline != nil {
		c.e.log.Info("setup pipeline continued", "pipeline", setup.ID, "continued", started.Pipeline.ID, "config", name)
	}
	return nil
}

// continuationParams reads the parameters a continue step left: a JSON
// object, and the parameter holding the files the path-filtering orb
// found changed, when the step named one.
func continuationParams(dir string) (map[string]any, error) {
	out := map[string]any{}
	raw, err := os.ReadFile(filepath.Join(dir, workflows.ContinuationParameters))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if len(strings.TrimSpace(string(raw))) > 0 {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("the continuation's parameters are not a JSON object: %v", err)
		}
		// Values are kept as text, as typed on a command line: the
		// config's declarations type them, and the pipeline's trigger
		// keeps them as they are across the store.
		for k, v := range m {
			switch x := v.(type) {
			case string:
				out[k] = x
			case bool:
				out[k] = strconv.FormatBool(x)
			case float64:
				if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
					return nil, fmt.Errorf("continuation parameter %q: %v is not a whole number", k, x)
				}
				out[k] = strconv.FormatInt(int64(x), 10)
			default:
				return nil, fmt.Errorf("continuation parameter %q: want a string, a number or a boolean", k)
			}
		}
	}
	if name, err := os.ReadFile(filepath.Join(dir, workflows.ContinuationFilesParameter)); err == nil && len(name) > 0 {
		files, err := os.ReadFile(filepath.Join(dir, workflows.ContinuationFiles))
		if err != nil {
			return nil, err
		}
		out[string(name)] = string(files)
	}
	return out, nil
}
