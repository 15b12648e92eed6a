package store

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/slipway-ci/slipway/workflows/engine"
)

// stateCache holds the state of the pipelines this process is working
// on as its last transaction on each committed it. The scheduler reads a
// whole pipeline at each step of it; reading a 100-job pipeline from
// SQLite cost a third of a millisecond, most of the engine's own cost per
// job. Every write to a pipeline, workflow or job goes through a tx
// method that applies the same change to its transaction's copy, which
// replaces the cached one once the transaction commits; a rollback
// leaves the cache as it was. Writes by anyone else (another process on
// the same file) change PRAGMA data_version on the connection this
// process writes through, and empty the cache. It is guarded by DB.wmu.
type stateCache struct {
	states  map[string]*engine.PipelineState // by pipeline ID; never handed out
	owner   map[string]string                // job or workflow ID -> pipeline ID, for states held
	version int64                            // data_version when last checked; -1 before
	// verify makes every read from the cache also read the database and
	// fail on a difference, kept in mismatch: the tests' guard against a
	// tx method that changes a row without changing the cached state the
	// same way.
	verify   bool
	hits     int
	mismatch error
}

// stateCacheMax bounds the pipelines held; past it the cache starts over.
const stateCacheMax = 256

func newStateCache() *stateCache {
	return &stateCache{states: map[string]*engine.PipelineState{}, owner: map[string]string{}, version: -1}
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

// commit takes in the states a committed transaction read or changed.
// Finished pipelines are let go: only a rerun reads them again.
func (c *stateCache) commit(work map[string]*engine.PipelineState) {
	if len(c.states)+len(work) > stateCacheMax {
		c.clear()
	}
	for id, st := range work {
		// A state read in the transaction was moved out of the cache
		// (see tx.state) with its owner entries left: they go by the
		// transaction's copy, which names the same jobs and workflows.
		for _, w := range st.Workflows {
			delete(c.owner, w.ID)
		}
		for _, j := range st.Jobs {
			delete(c.owner, j.ID)
		}
		delete(c.states, id)
		if !st.Pipeline.Finished.IsZero() {
			continue
		}
		c.states[id] = st
		for _, w := range st.Workflows {
			c.owner[w.ID] = id
		}
		for _, j := range st.Jobs {
			c.owner[j.ID] = id
		}
	}
}

// cloneState copies st so that the copy shares no map or slice with it.
func cloneState(st *engine.PipelineState) *engine.PipelineState {
	out := &engine.PipelineState{Pipeline: st.Pipeline, Workflows: slices.Clone(st.Workflows), Jobs: slices.Clone(st.Jobs)}
	t := &out.Pipeline.Trigger
	t.Parameters = maps.Clone(t.Parameters)
	if t.Deploy != nil {
		d := *t.Deploy
		t.Deploy = &d
	}
	for i := range out.Jobs {
		j := &out.Jobs[i]
		j.Requires = cloneRequires(j.Requires)
		j.Context = slices.Clone(j.Context)
	}
	return out
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

// state returns the transaction's own copy of pipeline id's state, read
// from the cache or the database, for reading and for changing.
func (t *tx) state(ctx context.Context, id string) (*engine.PipelineState, error) {
	if st := t.work[id]; st != nil {
		return st, nil
	}
	if st := t.cache.states[id]; st != nil {
		if t.cache.verify {
			if err := t.verify(ctx, st); err != nil {
				return nil, err
			}
		}
		// Moved, not copied: commit puts it back, changed; a rollback
		// leaves it out, to be read again. Its owner entries stay, still
		// naming the right pipeline.
		delete(t.cache.states, id)
		t.work[id] = st
		return st, nil
	}
	st, err := pipelineState(ctx, t.q, id)
	if err != nil {
		return nil, err
	}
	t.work[id] = st
	return st, nil
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

// cached returns the transaction's copy of the state that holds the
// pipeline, workflow or job id, when the cache or the transaction has
// it; nil otherwise, when there is nothing to keep in step.
func (t *tx) cached(id string) *engine.PipelineState {
	pid := t.owning(id)
	if pid == "" {
		return nil
	}
	st, err := t.state(context.Background(), pid)
	if err != nil {
		return nil
	}
	return st
}

// owning names the pipeline, held by the transaction or the cache, that
// is or holds the pipeline, workflow or job id; "" when none is held.
func (t *tx) owning(id string) string {
	if t.work[id] != nil || t.cache.states[id] != nil {
		return id
	}
	if pid := t.cache.owner[id]; pid != "" && (t.work[pid] != nil || t.cache.states[pid] != nil) {
		return pid
	}
	for p, st := range t.work {
		if slices.ContainsFunc(st.Jobs, func(j engine.JobRecord) bool { return j.ID == id }) ||
			slices.ContainsFunc(st.Workflows, func(w engine.WorkflowRecord) bool { return w.ID == id }) {
			return p
		}
	}
	return ""
}

// cachedJob and cachedWorkflow are the transaction's records of a job or
// workflow, to keep in step with a change just made to the database or
// to read without a query; nil when no held state has them.
func (t *tx) cachedJob(id string) *engine.JobRecord {
	if st := t.cached(id); st != nil {
		if i := slices.IndexFunc(st.Jobs, func(j engine.JobRecord) bool { return j.ID == id }); i >= 0 {
			return &st.Jobs[i]
		}
	}
	return nil
}

func (t *tx) cachedWorkflow(id string) *engine.WorkflowRecord {
	if st := t.cached(id); st != nil {
		if i := slices.IndexFunc(st.Workflows, func(w engine.WorkflowRecord) bool { return w.ID == id }); i >= 0 {
			return &st.Workflows[i]
		}
	}
	return nil
}
