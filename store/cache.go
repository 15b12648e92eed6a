package store

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	"github.com/slipway-ci/slipway/workflows/engine"
)

// stateCache holds the state of the pipelines this process is working
// on as its last transaction on each committed it. The scheduler reads a
// whole pipeline at each step of it; reading a 100-job pipeline from
// SQLite cost a third of a millisecond, most of the engine's own cost per
// job. Every write to a pipeline, workflow or job goes through a tx
// method that applies the same change to its transaction's state, which
// replaces the cached one once the transaction commits; a rollback
// leaves the cache without it, to be read again. Writes by anyone else
// (another process on the same file) change PRAGMA data_version on the
// connection this process writes through, and empty the cache. It is
// guarded by DB.wmu.
//
// A state is moved between the cache and a transaction, never copied,
// and finds its jobs and workflows through indexes built once, when it
// is first read or created: a step of a 10,000-job pipeline costs what a
// step of a 100-job one does.
type stateCache struct {
	states  map[string]*held  // by pipeline ID
	owner   map[string]string // job or workflow ID -> pipeline ID, for states read since the last clear
	version int64             // data_version when last checked; -1 before
	// verify makes every read from the cache also read the database and
	// fail on a difference, kept in mismatch: the tests' guard against a
	// tx method that changes a row without changing the cached state the
	// same way.
	verify   bool
	hits     int
	mismatch error
}

// held is a pipeline's state with the positions of its jobs and
// workflows, which never change.
type held struct {
	st   *engine.PipelineState
	jobs map[string]int // job ID -> index in st.Jobs
	wfs  map[string]int // workflow ID -> index in st.Workflows
}

func newHeld(st *engine.PipelineState) *held {
	h := &held{st: st, jobs: make(map[string]int, len(st.Jobs)), wfs: make(map[string]int, len(st.Workflows))}
	for i, j := range st.Jobs {
		h.jobs[j.ID] = i
	}
	for i, w := range st.Workflows {
		h.wfs[w.ID] = i
	}
	return h
}

func (h *held) job(id string) *engine.JobRecord {
	if i, ok := h.jobs[id]; ok {
		return &h.st.Jobs[i]
	}
	return nil
}

func (h *held) workflow(id string) *engine.WorkflowRecord {
	if i, ok := h.wfs[id]; ok {
		return &h.st.Workflows[i]
	}
	return nil
}

// stateCacheMax bounds the pipelines held; past it the cache starts over.
const stateCacheMax = 256

// ownerMax bounds the owner entries, which outlive the states they name.
const ownerMax = 1 << 20

func newStateCache() *stateCache {
	return &stateCache{states: map[string]*held{}, owner: map[string]string{}, version: -1}
}

func (c *stateCache) clear() {
	clear(c.states)
	clear(c.owner)
}

// check empties the cache when another connection wrote since the last
// check. It runs at the start of each transaction, on the connection
// every write of this process goes through.
func (c *stateCache) check(ctx context.Context, q runner) error {
	var v int64
	if err := q.QueryRowxContext(ctx, `PRAGMA data_version`).Scan(&v); err != nil {
		return err
	}
	if v != c.version {
		c.clear()
		c.version = v
	}
	return nil
}

// own records which pipeline a newly held state's jobs and workflows
// belong to. Entries outlive their state (after a rollback, or once the
// pipeline finished): readers check that the pipeline is still held.
func (c *stateCache) own(h *held) {
	if len(c.owner) > ownerMax {
		// Only states held right now need their entries.
		clear(c.owner)
		for _, s := range c.states {
			c.addOwner(s)
		}
	}
	c.addOwner(h)
}

func (c *stateCache) addOwner(h *held) {
	id := h.st.Pipeline.ID
	for jid := range h.jobs {
		c.owner[jid] = id
	}
	for wid := range h.wfs {
		c.owner[wid] = id
	}
}

// commit takes back the states a committed transaction read or changed.
// Finished pipelines are let go: only a rerun reads them again.
func (c *stateCache) commit(work map[string]*held) {
	if len(c.states)+len(work) > stateCacheMax {
		clear(c.states)
	}
	for id, h := range work {
		if !h.st.Pipeline.Finished.IsZero() {
			delete(c.states, id)
			continue
		}
		c.states[id] = h
	}
}

// cloneRequires copies a job's requires deeply; nil stays nil.
func cloneRequires(m map[string][]string) map[string][]string {
	if m == nil {
		return nil
	}
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

// state returns the transaction's own state of pipeline id, read from
// the cache or the database, for reading and for changing.
func (t *tx) state(ctx context.Context, id string) (*held, error) {
	if h := t.work[id]; h != nil {
		return h, nil
	}
	if h := t.cache.states[id]; h != nil {
		if t.cache.verify {
			if err := t.verify(ctx, h.st); err != nil {
				return nil, err
			}
		}
		// Moved, not copied: commit puts it back, changed; a rollback
		// leaves it out, to be read again.
		delete(t.cache.states, id)
		t.work[id] = h
		return h, nil
	}
	st, err := pipelineState(ctx, t.q, id)
	if err != nil {
		return nil, err
	}
	return t.hold(st), nil
}

// hold makes st, read or created in this transaction, the transaction's.
func (t *tx) hold(st *engine.PipelineState) *held {
	h := newHeld(st)
	t.cache.own(h)
	t.work[st.Pipeline.ID] = h
	return h
}

func (t *tx) verify(ctx context.Context, cached *engine.PipelineState) error {
	st, err := pipelineState(ctx, t.q, cached.Pipeline.ID)
	if err != nil {
		return err
	}
	t.cache.hits++
	if !reflect.DeepEqual(st, cached) {
		err := fmt.Errorf("cached state of pipeline %s differs from the database:\ncached %+v\nstored %+v", st.Pipeline.ID, cached, st)
		if t.cache.mismatch == nil {
			t.cache.mismatch = err
		}
		return err
	}
	return nil
}

// cached returns the transaction's state that is or holds the pipeline,
// workflow or job id, when the cache or the transaction has it; nil
// otherwise, when there is nothing to keep in step.
func (t *tx) cached(id string) *held {
	pid := id
	if p := t.cache.owner[id]; p != "" {
		pid = p
	}
	if t.work[pid] == nil && t.cache.states[pid] == nil {
		return nil
	}
	h, err := t.state(context.Background(), pid)
	if err != nil {
		return nil
	}
	return h
}

// cachedJob and cachedWorkflow are the transaction's records of a job or
// workflow, to keep in step with a change just made to the database or
// to read without a query; nil when no held state has them.
func (t *tx) cachedJob(id string) *engine.JobRecord {
	if h := t.cached(id); h != nil {
		return h.job(id)
	}
	return nil
}

func (t *tx) cachedWorkflow(id string) *engine.WorkflowRecord {
	if h := t.cached(id); h != nil {
		return h.workflow(id)
	}
	return nil
}
