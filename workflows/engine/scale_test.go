package engine_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// The engine's cost per job does not grow with the pipeline: memory
// allocated per job in a workflow of 2,000 parallel jobs is about what it
// is in one of 200. (Each step of a 10,000-job matrix once copied and
// indexed the whole pipeline: 23.5 ms a job against 1 ms at 100 jobs.)
// Bytes allocated stand in for time, which a loaded machine would blur;
// BenchmarkEngineScale measures the time.
func TestEngineCostPerJobIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 2,200 jobs")
	}
	perJob := func(n int) float64 {
		ctx := context.Background()
		db, err := store.Open(ctx, filepath.Join(t.TempDir(), "slipway.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		exe := &fakeExecutor{run: func(context.Context, *engine.JobRun, io.Writer) (engine.JobResult, error) {
			return engine.JobResult{Status: workflows.StatusSuccess}, nil
		}}
		e := engine.New(engine.Options{Store: db, Executor: exe, Parallelism: 4, DataDir: t.TempDir()})
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer e.Shutdown(ctx)
		jobs := make([]*workflows.PlannedJob, n)
		for i := range jobs {
			jobs[i] = build(fmt.Sprint("j", i))
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		p, err := e.Submit(ctx, engine.PipelineRequest{App: "scale", Repo: "acme/scale", Author: "alice",
			Plan: &workflows.Plan{Workflows: []*workflows.PlannedWorkflow{wf("w", jobs...)}}})
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		st, err := e.WaitFinished(wctx, p.ID)
		if err != nil || st.Pipeline.Status != workflows.StatusSuccess {
			t.Fatalf("%d jobs: %v %s", n, err, st.Pipeline.Status)
		}
		runtime.ReadMemStats(&after)
		return float64(after.TotalAlloc-before.TotalAlloc) / float64(n)
	}
	small, large := perJob(200), perJob(2000)
	t.Logf("allocated per job: %.0f bytes at 200 jobs, %.0f at 2,000", small, large)
	if large > 2*small {
		t.Errorf("a job of a 2,000-job pipeline allocates %.0f bytes, %.1f times one of a 200-job pipeline", large, large/small)
	}
}
