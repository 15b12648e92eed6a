package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/slipway-ci/slipway/workflows"
)

// pipelineView indexes a PipelineState for the scheduler's questions.
type pipelineView struct {
	*PipelineState
	byID   map[string]*JobRecord
	byName map[string]*JobRecord // "workflowID/name"
	wfs    map[string]*WorkflowRecord
}

func newView(st *PipelineState) *pipelineView {
	v := &pipelineView{PipelineState: st, byID: map[string]*JobRecord{}, byName: map[string]*JobRecord{}, wfs: map[string]*WorkflowRecord{}}
	for i := range st.Jobs {
		j := &st.Jobs[i]
		v.byID[j.ID] = j
		v.byName[j.WorkflowID+"/"+j.Name] = j
	}
	for i := range st.Workflows {
		v.wfs[st.Workflows[i].ID] = &st.Workflows[i]
	}
	return v
}

func (v *pipelineView) job(id string) *JobRecord { return v.byID[id] }

func (v *pipelineView) workflow(id string) *WorkflowRecord { return v.wfs[id] }

// upstream lists every job j requires, directly or not.
func (v *pipelineView) upstream(j *JobRecord) []*JobRecord {
	var out []*JobRecord
	seen := map[string]bool{}
	var walk func(*JobRecord)
	walk = func(j *JobRecord) {
		for name := range j.Requires {
			u := v.byName[j.WorkflowID+"/"+name]
			if u == nil || seen[u.ID] {
				continue
			}
			seen[u.ID] = true
			out = append(out, u)
			walk(u)
		}
	}
	walk(j)
	return out
}

// downstream lists every job of j's workflow that requires j, directly or not.
func (v *pipelineView) downstream(j *JobRecord) []*JobRecord {
	var out []*JobRecord
	for i := range v.Jobs {
		d := &v.Jobs[i]
		if d.WorkflowID != j.WorkflowID || d.ID == j.ID {
			continue
		}
		if slices.Contains(v.upstream(d), j) {
			out = append(out, d)
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
		u := v.byName[j.WorkflowID+"/"+name]
		if u == nil {
			return workflows.StatusNotRun, false, fmt.Sprintf("requires %q, which is not in the workflow", name)
		}
		if !Terminal(u.Status) {
			return "", true, ""
		}
	}
	for _, name := range names {
		u := v.byName[j.WorkflowID+"/"+name]
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

// rollupStatus is a workflow's status from its jobs' (or a pipeline's from
// its workflows'): running while anything can still move by itself, on
// hold when only approvals are left, then failed, canceled or success.
// Jobs not run or skipped add nothing: a not_run job is behind one that
// already decides the outcome, a skipped job behind one that went well.
// As in CircleCI, a failed job fails its workflow even when a `requires`
// status form handles the failure.
func rollupStatus(statuses []string) string {
	var active, hold, failed, canceled bool
	for _, s := range statuses {
		switch s {
		case StatusQueued, StatusRunning, StatusBlocked:
			active = true
		case StatusOnHold:
			hold = true
		case workflows.StatusFailed, workflows.StatusUnauthorized:
			failed = true
		case workflows.StatusCanceled:
			canceled = true
		}
	}
	switch {
	case hold && !slices.ContainsFunc(statuses, func(s string) bool { return s == StatusQueued || s == StatusRunning }):
		return StatusOnHold
	case active || hold:
		return StatusRunning
	case failed:
		return workflows.StatusFailed
	case canceled:
		return workflows.StatusCanceled
	}
	return workflows.StatusSuccess
}

// jobState loads the pipeline a job belongs to.
func jobState(ctx context.Context, tx StoreTx, pipelineID, jobID string) (*pipelineView, error) {
	st, err := tx.PipelineState(ctx, pipelineID)
	if err != nil {
		return nil, err
	}
	v := newView(st)
	if v.job(jobID) == nil {
		return nil, fmt.Errorf("job %s: %w", jobID, ErrNotFound)
	}
	return v, nil
}
