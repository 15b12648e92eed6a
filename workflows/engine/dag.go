package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/slipway-ci/slipway/workflows"
)

// dag is a pipeline's jobs as a graph, indexed for the scheduler's
// questions. A pipeline's jobs and their requires never change, so it is
// built once per pipeline and shared by every step of it (building it for
// each step of a 10,000-job pipeline was most of the engine's cost). It
// holds positions in the state's Jobs and Workflows, which keep plan
// order, never the records: those belong to a transaction.
type dag struct {
	byID   map[string]int // job ID -> index
	byName map[string]int // "workflowID/name" -> index
	wfs    map[string]int // workflow ID -> index
	wfOf   []int          // job index -> workflow index
	wfJobs [][]int        // workflow index -> its job indexes
	ups    [][]int        // job index -> the jobs it requires directly, in plan order
	deps   [][]int        // job index -> the jobs requiring it directly, in plan order
	// ids are the job IDs, to tell a dag from another pipeline's.
	ids []string
}

func newDAG(st *PipelineState) *dag {
	d := &dag{byID: make(map[string]int, len(st.Jobs)), byName: make(map[string]int, len(st.Jobs)),
		wfs: make(map[string]int, len(st.Workflows)), wfOf: make([]int, len(st.Jobs)),
		wfJobs: make([][]int, len(st.Workflows)), ups: make([][]int, len(st.Jobs)), deps: make([][]int, len(st.Jobs)),
		ids: make([]string, len(st.Jobs))}
	for i, w := range st.Workflows {
		d.wfs[w.ID] = i
	}
	for i, j := range st.Jobs {
		d.byID[j.ID] = i
		d.byName[j.WorkflowID+"/"+j.Name] = i
		d.wfOf[i] = d.wfs[j.WorkflowID]
		d.wfJobs[d.wfOf[i]] = append(d.wfJobs[d.wfOf[i]], i)
		d.ids[i] = j.ID
	}
	for i, j := range st.Jobs {
		for name := range j.Requires {
			if u, ok := d.byName[j.WorkflowID+"/"+name]; ok {
				d.ups[i] = append(d.ups[i], u)
				d.deps[u] = append(d.deps[u], i)
			}
		}
	}
	for i := range d.ups {
		slices.Sort(d.ups[i])
		slices.Sort(d.deps[i])
	}
	return d
}

// fits reports whether d was built for st's jobs.
func (d *dag) fits(st *PipelineState) bool {
	n := len(st.Jobs)
	return len(d.ids) == n && (n == 0 || d.ids[0] == st.Jobs[0].ID && d.ids[n-1] == st.Jobs[n-1].ID)
}

// dags caches the dags of the pipelines the engine is working on.
type dags struct {
	mu sync.Mutex
	m  map[string]*dag
}

// dagsMax bounds the dags held; past it the cache starts over.
const dagsMax = 512

func (c *dags) get(st *PipelineState) *dag {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.m[st.Pipeline.ID]; d != nil && d.fits(st) {
		return d
	}
	if c.m == nil || len(c.m) >= dagsMax {
		c.m = map[string]*dag{}
	}
	d := newDAG(st)
	c.m[st.Pipeline.ID] = d
	return d
}

func (c *dags) forget(pipelineID string) {
	c.mu.Lock()
	delete(c.m, pipelineID)
	c.mu.Unlock()
}

// pipelineView is a pipeline's state seen through its dag.
type pipelineView struct {
	*PipelineState
	d *dag
}

// view indexes st for the scheduler's questions.
func (e *Engine) view(st *PipelineState) *pipelineView {
	return &pipelineView{PipelineState: st, d: e.dags.get(st)}
}

func (v *pipelineView) job(id string) *JobRecord {
	if i, ok := v.d.byID[id]; ok {
		return &v.Jobs[i]
	}
	return nil
}

func (v *pipelineView) workflow(id string) *WorkflowRecord {
	if i, ok := v.d.wfs[id]; ok {
		return &v.Workflows[i]
	}
	return nil
}

// named is the job of a workflow by its name there; nil when none.
func (v *pipelineView) named(workflowID, name string) *JobRecord {
	if i, ok := v.d.byName[workflowID+"/"+name]; ok {
		return &v.Jobs[i]
	}
	return nil
}

func (v *pipelineView) index(j *JobRecord) int { return v.d.byID[j.ID] }

// upstream lists every job j requires, directly or not, nearest first.
func (v *pipelineView) upstream(j *JobRecord) []*JobRecord {
	return v.walk(v.index(j), v.d.ups)
}

// downstream lists every job that requires j, directly or not, nearest first.
func (v *pipelineView) downstream(j *JobRecord) []*JobRecord {
	return v.walk(v.index(j), v.d.deps)
}

// walk visits the jobs reachable from job i through next, breadth first.
func (v *pipelineView) walk(i int, next [][]int) []*JobRecord {
	var out []*JobRecord
	seen := map[int]bool{i: true}
	for q := []int{i}; len(q) > 0; q = q[1:] {
		for _, k := range next[q[0]] {
			if !seen[k] {
				seen[k] = true
				out = append(out, &v.Jobs[k])
				q = append(q, k)
			}
		}
	}
	return out
}

// requiresMet says whether j can be decided yet (wait), and if so how:
// status is "" when every job it requires ended in a status it accepts.
// Otherwise j will never run and status says how it ends: not_run when a
// job it waited for in vain failed, was canceled, rejected or not run
// itself; skipped when each such job ended well but went another way (a
// success where j requires a failure, or a skip). reason names the job.
func (v *pipelineView) requiresMet(j *JobRecord) (status string, wait bool, reason string) {
	names := make([]string, 0, len(j.Requires))
	for name := range j.Requires {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		u := v.named(j.WorkflowID, name)
		if u == nil {
			return workflows.StatusNotRun, false, fmt.Sprintf("requires %q, which is not in the workflow", name)
		}
		if !Terminal(u.Status) {
			return "", true, ""
		}
	}
	for _, name := range names {
		u := v.named(j.WorkflowID, name)
		if accepts(j.Requires[name], u.Status) {
			continue
		}
		r := fmt.Sprintf("%s ended %s", name, u.Status)
		if u.Status != workflows.StatusSuccess && u.Status != workflows.StatusSkipped {
			return workflows.StatusNotRun, false, r
		}
		if status == "" {
			status, reason = workflows.StatusSkipped, r
		}
	}
	return status, false, reason
}

// accepts reports whether an upstream status satisfies a requires entry:
// plain requires mean success; "terminal" accepts any end. A skipped job
// counts as not_run, the status CircleCI reports its skipped jobs with.
func accepts(want []string, status string) bool {
	if len(want) == 0 {
		return status == workflows.StatusSuccess
	}
	if status == workflows.StatusSkipped {
		status = workflows.StatusNotRun
	}
	return slices.Contains(want, status) || slices.Contains(want, workflows.StatusTerminal)
}

// tally counts statuses by what they mean for a rollup.
type tally struct {
	blocked, queued, running, hold, failed, canceled int
}

// add counts status n times (n = -1 takes one away).
func (t *tally) add(status string, n int) {
	switch status {
	case StatusBlocked:
		t.blocked += n
	case StatusQueued:
		t.queued += n
	case StatusRunning:
		t.running += n
	case StatusOnHold:
		t.hold += n
	case workflows.StatusFailed, workflows.StatusUnauthorized:
		t.failed += n
	case workflows.StatusCanceled:
		t.canceled += n
	}
}

// status is a workflow's status from its jobs' tally (or a pipeline's
// from its workflows'): running while anything can still move by
// itself, on hold when only approvals are left, then failed, canceled
// or success. Jobs not run or skipped add nothing: a not_run job is
// behind one that already decides the outcome, a skipped job behind one
// that went well. As in CircleCI, a failed job fails its workflow even
// when a `requires` status form handles the failure.
func (t tally) status() string {
	switch {
	case t.hold > 0 && t.queued == 0 && t.running == 0:
		return StatusOnHold
	case t.blocked+t.queued+t.running+t.hold > 0:
		return StatusRunning
	case t.failed > 0:
		return workflows.StatusFailed
	case t.canceled > 0:
		return workflows.StatusCanceled
	}
	return workflows.StatusSuccess
}

// rollupStatus is tally.status over a list of statuses.
func rollupStatus(statuses []string) string {
	var t tally
	for _, s := range statuses {
		t.add(s, 1)
	}
	return t.status()
}

// jobState loads the pipeline a job belongs to.
func (e *Engine) jobState(ctx context.Context, tx StoreTx, pipelineID, jobID string) (*pipelineView, error) {
	st, err := tx.PipelineState(ctx, pipelineID)
	if err != nil {
		return nil, err
	}
	v := e.view(st)
	if v.job(jobID) == nil {
		return nil, fmt.Errorf("job %s: %w", jobID, ErrNotFound)
	}
	return v, nil
}
