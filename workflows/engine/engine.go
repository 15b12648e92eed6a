package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Options configure an Engine. Store and Executor are required.
type Options struct {
	Store    Store
	Executor Executor
	// ExecutorName is recorded on each attempt ("local", "docker").
	ExecutorName string
	// Notifiers hear every event through the outbox, each at its own
	// pace, by name ("github", "slack"); none drops them (they are still
	// kept in the store).
	Notifiers map[string]Notifier
	Clock     Clock        // default: the system clock
	IDs       IDs          // default: random
	Logger    *slog.Logger // default: discard
	Apps      map[string]*App
	Contexts  map[string]*Context
	// Parallelism is how many jobs run at once, across pipelines; default 4.
	Parallelism int
	// ApprovalTTL is how long an approval waits before it expires; default 7 days.
	ApprovalTTL time.Duration
	// DataDir holds workflow workspaces, caches and job outputs.
	DataDir string
	// RetryMin and RetryMax bound the outbox's exponential backoff;
	// defaults 1s and 5m.
	RetryMin, RetryMax time.Duration
	// Tick is how often approvals are checked for expiry; default 1 minute.
	Tick time.Duration
	// Sources fetches the commits of a forge's repositories for
	// checkout; nil when every source is local.
	Sources SourceFetcher
	// Natives carry out the steps of built-in orbs, by orb name
	// (OrbAWS); slipway/slack is the engine's own.
	Natives map[string]NativeRunner
	// Continuations loads the configs that setup pipelines continue
	// with; nil when setup pipelines are not continued (see
	// continuation.go).
	Continuations ContinuationLoader
}

// Engine runs pipelines durably: every decision is a transaction in the
// Store before it takes effect, so that a new Engine on the same store
// resumes where a dead one stopped.
//
// Its goroutines are: one scheduler loop and one outbox loop, both
// started by Start and ended by Shutdown; and one per running job attempt,
// ended when the executor returns (Shutdown waits for them, then cancels
// them when its context ends).
type Engine struct {
	store    Store
	exec     Executor
	execName string
	clock    Clock
	ids      IDs
	log      *slog.Logger
	apps     map[string]*App
	contexts map[string]*Context
	parallel int
	ttl      time.Duration
	dataDir  string
	retryMin time.Duration
	retryMax time.Duration
	tick     time.Duration
	natives  *nativeSteps
	sources  SourceFetcher

	mu       sync.Mutex
	dirty    map[string]bool // pipelines to advance
	full     map[string]bool // pipelines to advance looking at every job (see progress)
	waiting  map[string]bool // pipelines with queued jobs, advanced when a slot or lock frees
	running  map[string]*attemptRun
	ended    []endedAttempt // results for the scheduler to record
	changed  chan struct{}  // closed and replaced on every state change
	stopping bool
	// round is held by the scheduler while it advances pipelines, so
	// that Shutdown, once stopping is set, can wait for a round that
	// may still launch attempts before it waits for the attempts.
	round sync.Mutex

	trouble  trouble              // store failures, see trouble.go
	dags     dags                 // see dag.go
	progress map[string]*progress // owned by the scheduler loop
	// serialHeld are the serial groups attempts hold, by attempt ID;
	// owned by the scheduler loop (see serial.go).
	serialHeld map[string]serialLock
	consumers  []*consumer // see outbox.go
	refs       refs
	wake       chan struct{} // scheduler loop
	jobs       sync.WaitGroup
	abandon    context.CancelFunc // cancels running attempts at the end of Shutdown
	jobsCtx    context.Context    // parent of attempts; canceled by abandon
	stopLoops  context.CancelFunc
	loops      sync.WaitGroup
	started    bool
}

// attemptRun is an attempt in an executor, owned by its goroutine.
type attemptRun struct {
	ctx       context.Context // canceled by Cancel, or by Shutdown when it gives up
	cancel    context.CancelFunc
	abandoned bool // set by Shutdown: the result is not recorded
}

// endedAttempt is an attempt's result handed to the scheduler, which
// records it in the transaction that decides what follows and then
// says on recorded whether that worked.
type endedAttempt struct {
	attempt  AttemptRecord
	recorded chan error
}

// randomIDs are 20 random hex digits: unique across processes, which
// matters because a restarted engine must never reuse an attempt ID.
type randomIDs struct{}

func (randomIDs) NewID() string {
	var b [10]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now().UTC() }

// New returns an engine; Start runs it.
func New(opts Options) *Engine {
	e := &Engine{
		store: opts.Store, exec: opts.Executor, execName: opts.ExecutorName,
		clock: opts.Clock, ids: opts.IDs, log: opts.Logger, apps: opts.Apps, contexts: opts.Contexts,
		parallel: opts.Parallelism, ttl: opts.ApprovalTTL, dataDir: opts.DataDir,
		retryMin: opts.RetryMin, retryMax: opts.RetryMax, tick: opts.Tick, sources: opts.Sources,
		dirty: map[string]bool{}, full: map[string]bool{}, progress: map[string]*progress{}, waiting: map[string]bool{}, running: map[string]*attemptRun{},
		changed: make(chan struct{}), wake: make(chan struct{}, 1),
	}
	if e.clock == nil {
		e.clock = systemClock{}
	}
	if e.ids == nil {
		e.ids = randomIDs{}
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.parallel <= 0 {
		e.parallel = 4
	}
	if e.ttl <= 0 {
		e.ttl = 7 * 24 * time.Hour
	}
	if e.dataDir == "" {
		e.dataDir = filepath.Join(os.TempDir(), "slipway")
	}
	if e.retryMin <= 0 {
		e.retryMin = time.Second
	}
	if e.retryMax <= 0 {
		e.retryMax = 5 * time.Minute
	}
	if e.tick <= 0 {
		e.tick = time.Minute
	}
	if e.execName == "" {
		e.execName = "executor"
	}
	e.natives = newNativeSteps(e, opts.Natives)
	e.trouble.log = e.log
	e.consumers = newConsumers(e.withContinuations(opts.Notifiers, opts.Continuations))
	e.jobsCtx, e.abandon = context.WithCancel(context.Background())
	return e
}

// Start recovers from a previous process (see recover) and starts the
// scheduler and outbox loops. They run until Shutdown.
func (e *Engine) Start(ctx context.Context) error {
	if e.started {
		return errors.New("engine: already started")
	}
	e.started = true
	if err := e.store.SetConsumers(ctx, e.consumerNames()); err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	if err := e.recover(ctx); err != nil {
		return err
	}
	loopCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	e.stopLoops = stop
	e.loops.Add(1 + len(e.consumers))
	go func() {
		defer e.loops.Done()
		e.schedule(loopCtx)
	}()
	for _, c := range e.consumers {
		go func() {
			defer e.loops.Done()
			e.deliver(loopCtx, c)
		}()
	}
	return nil
}

// Shutdown stops starting jobs, waits for running ones to finish until
// ctx ends, then cancels them without recording their end: the next Start
// treats them as interrupted. It then stops the loops.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.stopping = true
	e.mu.Unlock()
	done := make(chan struct{})
	go func() {
		// A round that began before stopping was set may still launch
		// attempts; once it is over, nothing more joins e.jobs.
		e.round.Lock()
		e.round.Unlock()
		e.jobs.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		e.mu.Lock()
		for _, r := range e.running {
			r.abandoned = true
		}
		e.mu.Unlock()
		e.abandon()
		<-done
	}
	if e.stopLoops != nil {
		e.stopLoops()
	}
	e.loops.Wait()
	return err
}

// markDirty asks the scheduler to advance a pipeline, looking at every
// job: something other than the scheduler may have changed it.
func (e *Engine) markDirty(id string) {
	e.mu.Lock()
	e.dirty[id], e.full[id] = true, true
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// broadcast wakes everyone waiting in Wait.
func (e *Engine) broadcast() {
	e.mu.Lock()
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

// Wait returns the pipeline's state once cond holds for it, checking after
// every change the engine makes. It reads the whole state at each change:
// waiting for a pipeline's end is WaitSettled's or WaitFinished's job.
func (e *Engine) Wait(ctx context.Context, pipelineID string, cond func(*PipelineState) bool) (*PipelineState, error) {
	var st *PipelineState
	err := e.waitChange(ctx, func() (bool, error) {
		var err error
		st, err = e.store.PipelineState(ctx, pipelineID)
		return err == nil && cond(st), err
	})
	return st, err
}

// WaitSettled returns the pipeline's state once it has nothing left to
// do by itself (see Settled), reading only the pipeline's record at each
// change: its cost does not grow with the pipeline's jobs.
func (e *Engine) WaitSettled(ctx context.Context, pipelineID string) (*PipelineState, error) {
	return e.waitRecord(ctx, pipelineID, func(p *PipelineRecord) bool { return p.Status != StatusRunning })
}

// WaitFinished returns the pipeline's state once it ended, as WaitSettled.
func (e *Engine) WaitFinished(ctx context.Context, pipelineID string) (*PipelineState, error) {
	return e.waitRecord(ctx, pipelineID, func(p *PipelineRecord) bool { return !p.Finished.IsZero() })
}

func (e *Engine) waitRecord(ctx context.Context, pipelineID string, cond func(*PipelineRecord) bool) (*PipelineState, error) {
	err := e.waitChange(ctx, func() (bool, error) {
		p, err := e.store.Pipeline(ctx, pipelineID)
		return err == nil && cond(p), err
	})
	st, serr := e.store.PipelineState(context.WithoutCancel(ctx), pipelineID)
	if err == nil {
		err = serr
	}
	return st, err
}

// waitChange calls check after every change the engine makes until it
// says done, fails, or ctx ends.
func (e *Engine) waitChange(ctx context.Context, check func() (bool, error)) error {
	for {
		e.mu.Lock()
		ch := e.changed
		e.mu.Unlock()
		if done, err := check(); done || err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Settled reports whether a pipeline has nothing left to do by itself:
// it finished, or it waits for an approval.
func Settled(st *PipelineState) bool {
	return st.Pipeline.Status != StatusRunning
}

// changedPipeline asks for a pipeline to be advanced after a change made
// outside the scheduler, and tells waiters and the outbox.
func (e *Engine) changedPipeline(id string) {
	if id != "" {
		e.markDirty(id)
	}
	e.broadcast()
}

func (e *Engine) kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Clock tells the time; tests pass a fake one.
type Clock interface {
	Now() time.Time
}

// IDs makes unique identifiers, safe in file names.
type IDs interface {
	NewID() string
}
