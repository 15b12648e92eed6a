// Package docker runs CircleCI `docker:` jobs in containers through the
// Docker Engine API, as CircleCI runs them: one long-lived primary
// container per job in which every step executes, and the job's other
// images as service containers that share the primary's network, so that
// a step reaches them on localhost.
//
// A run step ends when its command exits. Processes it started that still
// hold its output are then killed (the engine delays the container's later
// execs while they live); processes that redirected their output, and
// `background` steps, run until the job ends.
//
// Every container an attempt creates carries the label LabelAttempt with
// the attempt's ID; the attempt removes them when it ends, whatever
// happens (in the background once its log is whole, which Close waits
// for), and Cleanup removes what a crashed process left. The bridge
// networks that keep jobs apart belong to the Executor, which lends each
// to one attempt at a time and removes them on Close, as it does the
// holders it may start on them (see netPool): those carry the pool's
// label, and Cleanup removes the one an attempt's containers joined.
package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/slipway-ci/slipway/executors"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// Labels put on everything an attempt creates.
const (
	LabelAttempt  = "org.slipway.attempt"
	LabelPipeline = "org.slipway.pipeline"
	LabelWorkflow = "org.slipway.workflow"
	LabelJob      = "org.slipway.job"
)

// DefaultNetwork is the engine's default network (its bridge on Linux)
// for Options.Network: where `docker run` puts a container, and where
// one starts the soonest and is removed the soonest, the engine having
// set up the bridge and its DNS once. Jobs there share it with each
// other and with every container so started.
const DefaultNetwork = "default"

// Resources are the limits of a job's primary container.
type Resources = executors.Resources

// DefaultResourceClasses follow CircleCI's docker resource classes.
var DefaultResourceClasses = executors.DefaultResourceClasses

// Options configure an Executor. The zero value is usable.
type Options struct {
	// Logger receives the executor's own events (not job output);
	// slog.Default when nil.
	Logger *slog.Logger
	// ResourceClasses maps a job's resource_class to limits;
	// DefaultResourceClasses when nil. A class missing from it fails the
	// job.
	ResourceClasses map[string]Resources
	// DefaultResourceClass applies to jobs that name none; "medium" when
	// empty.
	DefaultResourceClass string
	// RemoteDocker lets setup_remote_docker give a job the host's engine by
	// mounting DockerSocket into its primary container. That makes the
	// job root on the host, so it is off unless the operator trusts every
	// config this server runs.
	RemoteDocker bool
	// DockerSocket is the host path of the engine's socket;
	// /var/run/docker.sock when empty.
	DockerSocket string
	// Network names an existing network for every job's primary
	// container, shared by all jobs: they can reach each other's
	// services. When empty, each running attempt has a bridge network to
	// itself, lent from a pool that the Executor keeps. DefaultNetwork is
	// the engine's own, where `docker run` puts containers.
	Network string
	// NetworkPool is how many idle networks the Executor keeps for later
	// attempts; DefaultNetworkPool when zero. Set it to the engine's
	// parallelism, so that every attempt finds one ready: attempts beyond
	// it get a network created for them and removed after.
	NetworkPool int
	// HolderImage, when set, lets the network pool start each attempt's
	// network namespace while it idles, in a container of this image
	// that the attempt's containers join; jobs then start as fast as on
	// the default bridge (see netPool). It must have /bin/sh and sleep,
	// be present on the engine (the executor does not pull it), and be
	// trusted: its process shares the namespace of jobs of every
	// pipeline in turn. busybox will do.
	HolderImage string
	// Registries holds the server's registry credentials by registry host
	// ("docker.io", "123456789012.dkr.ecr.eu-west-1.amazonaws.com"). An
	// image's own `auth` wins over them.
	Registries map[string]workflows.RegistryAuth
	// PullTimeout bounds the pull of one missing image; 10m when zero.
	PullTimeout time.Duration
	// CleanupTimeout bounds the removal of an attempt's containers after
	// it ends, even when it was canceled; 1m when zero.
	CleanupTimeout time.Duration
	// CacheMaxBytes, WorkspaceMaxBytes and OutputMaxBytes limit one cache
	// archive, one workspace layer, and an attempt's artifacts and test
	// results; the executors package's defaults when zero.
	CacheMaxBytes     int64
	WorkspaceMaxBytes int64
	OutputMaxBytes    int64
}

// Executor runs jobs in containers of one Docker engine. It is safe for
// concurrent use by several attempts.
type Executor struct {
	client client.APIClient
	opts   Options
	log    *slog.Logger

	nets *netPool // nil when opts.Network is set

	first sync.Once // see firstRun

	mu      sync.Mutex
	ncpu    int  // the engine's CPU count, once known
	closing bool // Close was called: nothing more in the background
	// busy counts the work being done in the background (see
	// inBackground); idle is signalled, with mu, when it drops to 0.
	busy int
	idle *sync.Cond
}

var _ engine.Executor = (*Executor)(nil)

// New returns an Executor that talks to the engine through c, created by
// the caller with client.WithAPIVersionNegotiation so that older engines
// work.
func New(c client.APIClient, opts Options) *Executor {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ResourceClasses == nil {
		opts.ResourceClasses = DefaultResourceClasses
	}
	if opts.DefaultResourceClass == "" {
		opts.DefaultResourceClass = "medium"
	}
	if opts.DockerSocket == "" {
		opts.DockerSocket = "/var/run/docker.sock"
	}
	if opts.PullTimeout == 0 {
		opts.PullTimeout = 10 * time.Minute
	}
	if opts.CleanupTimeout == 0 {
		opts.CleanupTimeout = time.Minute
	}
	if opts.NetworkPool <= 0 {
		opts.NetworkPool = DefaultNetworkPool
	}
	e := &Executor{client: c, opts: opts, log: opts.Logger.With("executor", "docker")}
	e.idle = sync.NewCond(&e.mu)
	if opts.Network == "" {
		e.nets = newNetPool(c, e.log, opts.NetworkPool, opts.HolderImage)
	}
	return e
}

// Close waits for the executor's background work, then removes its idle
// networks and their holders, waiting for those being started. Call it
// once every Run has returned; the
// network of a Run still going is removed when it ends, and a Run
// started after Close fails.
func (e *Executor) Close(ctx context.Context) error {
	e.mu.Lock()
	e.closing = true
	e.mu.Unlock()
	e.waitBackground()
	if e.nets == nil {
		return nil
	}
	return e.nets.close(ctx)
}

// inBackground runs f in a goroutine that Close waits for, or, once
// Close was called, before it returns. f must return within a bounded
// time (it has the executor's CleanupTimeout).
func (e *Executor) inBackground(f func()) {
	e.mu.Lock()
	closing := e.closing
	if !closing {
		e.busy++
	}
	e.mu.Unlock()
	if closing {
		f()
		return
	}
	go func() {
		f()
		e.mu.Lock()
		e.busy--
		if e.busy == 0 {
			e.idle.Broadcast()
		}
		e.mu.Unlock()
	}()
}

// waitBackground waits until no work goes on in the background. (A
// WaitGroup would not do: Runs may add work while a test waits.)
func (e *Executor) waitBackground() {
	e.mu.Lock()
	for e.busy > 0 {
		e.idle.Wait()
	}
	e.mu.Unlock()
}

// firstRun prepares the executor at its first Run; later ones wait
// until it has. It settles the API version the client speaks: the
// client negotiates it on its first request unless told, and does so
// without a lock, racing with any request made beside it. Then it has
// the attempts' containers that dead processes left removed (see
// sweepAttempts), in the background: the attempt need not wait for the
// list call. A pool sweeps on its first lease, its networks and holders
// too.
func (e *Executor) firstRun(ctx context.Context) {
	e.first.Do(func() {
		e.client.NegotiateAPIVersion(ctx)
		if e.nets != nil {
			return
		}
		e.inBackground(func() {
			ctx, cancel := context.WithTimeout(context.Background(), e.opts.CleanupTimeout)
			defer cancel()
			sweepAttempts(ctx, e.client, e.log)
		})
	})
}

// Run runs the job's steps in its containers; see engine.Executor.
func (e *Executor) Run(ctx context.Context, job *engine.JobRun, log io.Writer) (engine.JobResult, error) {
	// Attempt IDs are label values and workspace layer names here.
	if err := executors.CheckAttemptID(job.ID); err != nil {
		return engine.JobResult{Status: workflows.StatusFailed}, fmt.Errorf("docker: %w", err)
	}
	if job.Spec == nil || len(job.Spec.Docker) == 0 {
		return engine.JobResult{Status: workflows.StatusFailed}, fmt.Errorf("docker: job %q has no docker image", job.JobName)
	}
	e.firstRun(ctx)
	j := &jobRun{e: e, job: job, spec: job.Spec, log: executors.NewSyncWriter(log)}
	defer j.teardown(ctx)
	if err := j.start(ctx); err != nil {
		if ctx.Err() != nil {
			return engine.JobResult{Status: workflows.StatusCanceled, Reason: "canceled"}, nil
		}
		fmt.Fprintf(j.log, "docker: %v\n", err)
		return engine.JobResult{Status: workflows.StatusFailed, Reason: err.Error()}, err
	}
	return j.steps(ctx), nil
}

// Cleanup removes every container, network and volume labelled with
// attemptID. Safe to repeat and to call for IDs never seen. The network a
// crashed process had lent the attempt is removed by the next executor's
// first Run, with the rest of that process's pool.
func (e *Executor) Cleanup(ctx context.Context, attemptID string) error {
	if err := executors.CheckAttemptID(attemptID); err != nil {
		return fmt.Errorf("docker: cleanup: %w", err)
	}
	return e.removeLabelled(ctx, attemptID)
}

// Leftovers lists the attempts that have containers, networks or volumes
// on the engine, so that a restarted server can clean up those it no
// longer runs, whether or not its store remembers them.
func (e *Executor) Leftovers(ctx context.Context) ([]string, error) {
	f := filters.NewArgs(filters.Arg("label", LabelAttempt))
	seen := map[string]bool{}
	cs, err := e.client.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("docker: list leftovers: %w", err)
	}
	for _, c := range cs {
		seen[c.Labels[LabelAttempt]] = true
	}
	nets, err := e.client.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("docker: list leftovers: %w", err)
	}
	for _, n := range nets {
		seen[n.Labels[LabelAttempt]] = true
	}
	vols, err := e.client.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("docker: list leftovers: %w", err)
	}
	for _, v := range vols.Volumes {
		seen[v.Labels[LabelAttempt]] = true
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// stepError is a step that failed for a reason other than a command's
// exit code; its message goes to the job log and JobResult.Reason.
type stepError struct {
	code   int
	reason string
}

func (e *stepError) Error() string { return e.reason }

func failf(format string, args ...any) error {
	return &stepError{code: -1, reason: fmt.Sprintf(format, args...)}
}

// exitError is a command that exited non-zero.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exited with code %d", e.code) }

// errCanceled reports a step stopped by the job's cancellation.
var errCanceled = errors.New("canceled")
