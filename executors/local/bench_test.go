package local

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// BenchmarkOneStepJob runs a one-step `true` job through the executor
// (attempt folder, script file, default shell, process group, cleanup)
// beside the physical floor, a bare `sh -c true`; the difference is the
// executor's cost per job.
func BenchmarkOneStepJob(b *testing.B) {
	// The default shell is bash, which starts several times slower than
	// dash's sh; the sh variant compares like with like.
	// Debian's sh (dash) has no pipefail, hence plain -e.
	for _, shell := range []string{"", "/bin/sh -e"} {
		name := "executor-default-shell"
		if shell != "" {
			name = "executor-sh"
		}
		b.Run(name, func(b *testing.B) {
			e, err := New(Options{Dir: b.TempDir(), AllowRoot: true})
			if err != nil {
				b.Fatal(err)
			}
			spec := &workflows.JobSpec{Shell: shell, Steps: []workflows.Step{run("true")}}
			for i := 0; b.Loop(); i++ {
				job := &engine.JobRun{ID: "bench-" + strconv.Itoa(i), JobName: "bench", Spec: spec}
				res, err := e.Run(context.Background(), job, io.Discard)
				if err != nil || res.Status != workflows.StatusSuccess {
					b.Fatalf("Run = %+v, %v", res, err)
				}
			}
		})
	}
	for _, argv := range [][]string{{"sh", "-c", "true"}, {"bash", "-eo", "pipefail", "-c", "true"}} {
		b.Run(argv[0]+"-c-true", func(b *testing.B) {
			for b.Loop() {
				if err := exec.Command(argv[0], argv[1:]...).Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOneStepJobPaired alternates an executor job and a bare spawn
// of the same shell in each iteration and reports both, so that the two
// are measured under the same machine load: on a shared machine, ns/op of
// separate benchmarks moves more with the neighbours than with the code.
// It runs with attempt folders on the test's temporary disk and, where
// there is one, on tmpfs (/dev/shm): a fresh folder per job costs a few
// metadata operations, and on a busy journaling file system those
// dominate the executor's overhead.
func BenchmarkOneStepJobPaired(b *testing.B) {
	bases := map[string]string{"disk": b.TempDir()}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		shm, err := os.MkdirTemp("/dev/shm", "slipway-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(shm) })
		bases["tmpfs"] = shm
	}
	for _, name := range []string{"disk", "tmpfs"} {
		base, ok := bases[name]
		if !ok {
			continue
		}
		b.Run(name, func(b *testing.B) { benchPaired(b, Options{Dir: base, AllowRoot: true}) })
	}
	// As a server runs them: slipway as root, each job as a user of its
	// own.
	if os.Geteuid() == 0 {
		dir := b.TempDir()
		for d := dir; d != os.TempDir(); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		b.Run("disk-users", func(b *testing.B) {
			benchPaired(b, Options{Dir: filepath.Join(dir, "attempts"), Users: []string{"65534", "65533:65533"}})
		})
	}
}

func benchPaired(b *testing.B, opts Options) {
	e, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close(context.Background()) })
	spec := &workflows.JobSpec{Shell: "/bin/sh -e", Steps: []workflows.Step{run("true")}}
	var inExec, inSpawn time.Duration
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		job := &engine.JobRun{ID: "bench-" + strconv.Itoa(i), JobName: "bench", Spec: spec}
		res, err := e.Run(context.Background(), job, io.Discard)
		if err != nil || res.Status != workflows.StatusSuccess {
			b.Fatalf("Run = %+v, %v", res, err)
		}
		mid := time.Now()
		if err := exec.Command("sh", "-c", "true").Run(); err != nil {
			b.Fatal(err)
		}
		inExec += mid.Sub(start)
		inSpawn += time.Since(mid)
	}
	n := float64(b.N)
	b.ReportMetric(float64(inExec.Nanoseconds())/n, "executor-ns/job")
	b.ReportMetric(float64(inSpawn.Nanoseconds())/n, "sh-ns/spawn")
	b.ReportMetric(float64((inExec-inSpawn).Nanoseconds())/n, "overhead-ns/job")
}
