package engine_test

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/executors/local"
	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// shTrue is a job of one `true` step run by /bin/sh -e, the same program
// the floor spawns, so that the difference is the engine's and the
// executor's own cost.
func shTrue(name string, requires ...string) *workflows.PlannedJob {
	j := build(name, requires...)
	j.Spec = &workflows.JobSpec{Executor: workflows.ExecutorMachine, Shell: "/bin/sh -e",
		Steps: []workflows.Step{{Run: &workflows.RunStep{Command: "true", When: workflows.WhenOnSuccess}}}}
	return j
}

// BenchmarkEngineOverhead runs workflows of `true` jobs through the
// engine, the SQLite store and the local executor, one job at a time, and
// in the same iteration as many bare `sh -c true` spawns (the physical
// floor). It reports both per job and their difference, the overhead:
// scheduling, state transactions, events, logs, attempt folders.
func BenchmarkEngineOverhead(b *testing.B) {
	for _, shape := range []struct {
		name string
		n    int
		plan func() *workflows.PlannedWorkflow
	}{
		{"1-job", 1, func() *workflows.PlannedWorkflow { return wf("w", shTrue("j")) }},
		{"100-job-chain", 100, func() *workflows.PlannedWorkflow {
			jobs := []*workflows.PlannedJob{shTrue("j0")}
			for i := 1; i < 100; i++ {
				jobs = append(jobs, shTrue(fmt.Sprint("j", i), fmt.Sprint("j", i-1)))
			}
			return wf("w", jobs...)
		}},
		{"100-job-fan-out", 100, func() *workflows.PlannedWorkflow {
			var jobs []*workflows.PlannedJob
			for i := range 100 {
				jobs = append(jobs, shTrue(fmt.Sprint("j", i)))
			}
			return wf("w", jobs...)
		}},
	} {
		for _, executor := range []string{"local", "none"} {
			b.Run(shape.name+"/"+executor, func(b *testing.B) { benchEngine(b, executor, shape.n, shape.plan) })
		}
	}
}

// benchEngine runs the benchmark with the local executor, or with none (an
// executor that returns success at once: the engine's own cost alone).
func benchEngine(b *testing.B, executor string, n int, plan func() *workflows.PlannedWorkflow) {
	ctx := context.Background()
	dir := b.TempDir()
	db, err := store.Open(ctx, filepath.Join(dir, "slipway.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var exe engine.Executor = &fakeExecutor{run: func(context.Context, *engine.JobRun, io.Writer) (engine.JobResult, error) {
		return engine.JobResult{Status: workflows.StatusSuccess}, nil
	}}
	if executor == "local" {
		exe, err = local.New(local.Options{Dir: filepath.Join(dir, "attempts"), AllowRoot: true})
		if err != nil {
			b.Fatal(err)
		}
	}
	{
		{
			// The end is heard the way Slack hears it, through the outbox,
			// rather than by polling the store, which would add the
			// poller's reads to what is measured.
			finished := make(chan string, 1)
			notifier := notifierFunc(func(ctx context.Context, ev engine.Event) error {
				if ev.Kind == engine.EventPipelineFinished {
					finished <- ev.Data.Status
				}
				return nil
			})
			e := engine.New(engine.Options{Store: db, Executor: exe, Notifiers: map[string]engine.Notifier{"test": notifier}, Parallelism: 1,
				DataDir: filepath.Join(dir, "data")})
			if err := e.Start(ctx); err != nil {
				b.Fatal(err)
			}
			defer e.Shutdown(ctx)
			var own, floor, cpu time.Duration
			for b.Loop() {
				c0 := cpuTime()
				t0 := time.Now()
				p, err := e.Submit(ctx, engine.PipelineRequest{App: "bench", Repo: "acme/bench", Author: "bench",
					Plan: &workflows.Plan{Workflows: []*workflows.PlannedWorkflow{plan()}}})
				if err != nil {
					b.Fatal(err)
				}
				if status := <-finished; status != workflows.StatusSuccess {
					st, _ := db.PipelineState(ctx, p.ID)
					b.Fatalf("pipeline %s: %s", status, describe(st))
				}
				t1 := time.Now()
				cpu += cpuTime() - c0
				for range n {
					if executor == "none" {
						break
					}
					if err := exec.Command("sh", "-c", "true").Run(); err != nil {
						b.Fatal(err)
					}
				}
				own += t1.Sub(t0)
				floor += time.Since(t1)
			}
			per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N*n) }
			b.ReportMetric(per(own), "ms/job")
			b.ReportMetric(per(floor), "floor-ms/job")
			b.ReportMetric(per(own-floor), "overhead-ms/job")
			// CPU of this process alone (not the jobs' shells): what the
			// engine costs regardless of how busy the machine is.
			b.ReportMetric(per(cpu), "self-cpu-ms/job")
		}
	}
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type notifierFunc func(ctx context.Context, ev engine.Event) error

func (f notifierFunc) Notify(ctx context.Context, ev engine.Event) error { return f(ctx, ev) }

// BenchmarkAcceptPipelines measures how fast pipelines are accepted into
// the store (what a webhook waits for before its 202): a seed-sized plan
// of 9 jobs, stored with its first event in one transaction.
func BenchmarkAcceptPipelines(b *testing.B) {
	plan := func() *workflows.Plan {
		return &workflows.Plan{Workflows: []*workflows.PlannedWorkflow{wf("main",
			shTrue("build"), shTrue("test", "build"), shTrue("migrate", "test"),
			withContext(shTrue("deploy-staging", "migrate"), "staging"), shTrue("smoke", "deploy-staging"),
			hold("hold", "smoke"), withContext(shTrue("ecr", "hold"), "production"),
			withContext(shTrue("lambda", "ecr"), "production"), withContext(shTrue("beanstalk", "ecr"), "production"))}}
	}
	for _, par := range []bool{false, true} {
		name := "sequential"
		if par {
			name = "concurrent"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			db, err := store.Open(ctx, filepath.Join(b.TempDir(), "slipway.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			e := engine.New(engine.Options{Store: db, Executor: &fakeExecutor{}, Apps: backend()})
			submit := func() {
				if _, err := e.Submit(ctx, engine.PipelineRequest{App: "backend", Repo: "acme/backend", Author: "alice",
					Trigger: workflows.Trigger{Branch: "main", Revision: "0123456789abcdef"}, Plan: plan()}); err != nil {
					b.Fatal(err)
				}
			}
			t0 := time.Now()
			if par {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						submit()
					}
				})
			} else {
				for b.Loop() {
					submit()
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "pipelines/s")
		})
	}
}

// BenchmarkEngineScale runs one workflow of n parallel jobs (a matrix),
// four at a time, through the engine and the SQLite store with an
// executor that succeeds at once: the engine's own cost per job, which
// must stay flat from 100 to 10,000 jobs.
func BenchmarkEngineScale(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ctx := context.Background()
			dir := b.TempDir()
			db, err := store.Open(ctx, filepath.Join(dir, "slipway.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			exe := &fakeExecutor{run: func(context.Context, *engine.JobRun, io.Writer) (engine.JobResult, error) {
				return engine.JobResult{Status: workflows.StatusSuccess}, nil
			}}
			finished := make(chan string, 1)
			notifier := notifierFunc(func(ctx context.Context, ev engine.Event) error {
				if ev.Kind == engine.EventPipelineFinished {
					finished <- ev.Data.Status
				}
				return nil
			})
			e := engine.New(engine.Options{Store: db, Executor: exe, Notifiers: map[string]engine.Notifier{"test": notifier}, Parallelism: 4, DataDir: filepath.Join(dir, "data")})
			if err := e.Start(ctx); err != nil {
				b.Fatal(err)
			}
			defer e.Shutdown(ctx)
			jobs := make([]*workflows.PlannedJob, n)
			for i := range jobs {
				jobs[i] = shTrue(fmt.Sprint("j", i))
			}
			var total time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := e.Submit(ctx, engine.PipelineRequest{App: "bench", Repo: "acme/bench", Author: "bench",
					Plan: &workflows.Plan{Workflows: []*workflows.PlannedWorkflow{wf("w", jobs...)}}}); err != nil {
					b.Fatal(err)
				}
				if status := <-finished; status != workflows.StatusSuccess {
					b.Fatalf("pipeline %s", status)
				}
				total += time.Since(t0)
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N*n), "ms/job")
		})
	}
}
