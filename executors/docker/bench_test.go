package docker_test

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/slipway-ci/slipway/executors/docker"
	"github.com/slipway-ci/slipway/executors/docker/dockertest"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// benchJob returns an attempt with a fresh ID and no folders: the
// benchmarked jobs only run commands.
func benchJob(spec *workflows.JobSpec, n int) *engine.JobRun {
	id := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), n)
	return &engine.JobRun{ID: id, PipelineID: id, WorkflowID: id, JobName: "bench", Spec: spec}
}

// dockerRun is `docker run --rm [--network NET] IMAGE cmd...` through the
// API: create, start, wait, remove; out gets the container's output from
// its logs when not nil. An empty net is the engine's default bridge.
func dockerRun(cli client.APIClient, out io.Writer, net string, cmd ...string) error {
	ctx := context.Background()
	// The engine's default log options may rotate away what a big output
	// needs kept.
	host := &container.HostConfig{
		NetworkMode: container.NetworkMode(net),
		LogConfig:   container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1g"}},
	}
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: dockertest.Image, Cmd: cmd}, host, nil, nil, "")
	if err != nil {
		return err
	}
	defer cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	wait, errc := cli.ContainerWait(ctx, c.ID, container.WaitConditionNextExit)
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return err
	}
	select {
	case w := <-wait:
		if w.StatusCode != 0 {
			return fmt.Errorf("exit %d", w.StatusCode)
		}
	case err := <-errc:
		return err
	}
	if out == nil {
		return nil
	}
	rc, err := cli.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = stdcopy.StdCopy(out, out, rc)
	return err
}

// benchNetworks are the executor's ways of giving jobs a network: the
// pool's, one per running attempt (the default), with holders started
// ahead (from the holder image, made by the benchmark) or without, and
// the engine's default bridge, which jobs of different pipelines share
// (`slipway run` puts its jobs there).
var benchNetworks = []struct {
	name string
	opts docker.Options
}{
	{"pool", docker.Options{}},
	{"pool-holders", docker.Options{HolderImage: docker.HolderImageName}},
	{"shared-bridge", docker.Options{Network: docker.DefaultNetwork}},
}

// runBench runs a job and waits for the executor's removal of its
// containers, which Run leaves to the background, as docker run --rm
// waits for its container's.
func runBench(e *docker.Executor, job *engine.JobRun, log io.Writer) error {
	res, err := e.Run(context.Background(), job, log)
	e.Settle()
	if err == nil && res.Status != workflows.StatusSuccess {
		err = fmt.Errorf("job %s: %s", res.Status, res.Reason)
	}
	return err
}

// BenchmarkTrueJob compares a one-step `true` job with `docker run --rm
// IMAGE true` on the same engine, alternating them so that both see the
// same load; ratio is the job's time over docker run's (on the engine's
// default bridge). The job runs on a network lent by the executor's pool
// (the default, isolated; a job before the timed ones makes it), joining
// a holder started ahead on it or not, and on the engine's shared bridge
// (not isolated).
//
// docker-run-user-network is the engine's own price of that isolation:
// `docker run --network NET` on a user-defined bridge, made once, over
// plain docker run. Containers on such networks start slower (the
// engine sets up its embedded DNS in each), which the pool cannot save.
func BenchmarkTrueJob(b *testing.B) {
	cli := dockertest.RequireImage(b)
	holderImage(b, cli) // for pool-holders
	for _, n := range benchNetworks {
		b.Run(n.name, func(b *testing.B) {
			e := docker.New(cli, n.opts)
			defer e.Close(context.Background())
			spec := image(run("true"))
			// Steady state: the pool makes its network once, for the
			// executor's first job, not for each.
			if err := runBench(e, benchJob(spec, -1), io.Discard); err != nil {
				b.Fatal(err)
			}
			compare(b, "job", func(i int) error { return runBench(e, benchJob(spec, i), io.Discard) },
				"dockerrun", func() error { return dockerRun(cli, nil, "", "true") })
		})
	}
	// pool-holders-idle gives the pool the idle time a server has
	// between jobs: the holder it starts for the next job once one ends
	// is started before docker run's turn (settle-ms/op, untimed),
	// rather than beside it, slowing it down (as in pool-holders). A
	// server that never idles starts no holders (see
	// BenchmarkParallel20).
	b.Run("pool-holders-idle", func(b *testing.B) {
		e := docker.New(cli, docker.Options{HolderImage: holderImage(b, cli)})
		defer e.Close(context.Background())
		spec := image(run("true"))
		if err := runBench(e, benchJob(spec, -1), io.Discard); err != nil {
			b.Fatal(err)
		}
		e.WaitHolders()
		compareSettled(b, "job", func(i int) error { return runBench(e, benchJob(spec, i), io.Discard) },
			e.WaitHolders, "dockerrun", func() error { return dockerRun(cli, nil, "", "true") })
	})
	b.Run("docker-run-user-network", func(b *testing.B) {
		ctx := context.Background()
		net, err := cli.NetworkCreate(ctx, fmt.Sprintf("slipway-bench-%d", time.Now().UnixNano()), network.CreateOptions{Driver: "bridge"})
		if err != nil {
			b.Fatal(err)
		}
		defer cli.NetworkRemove(ctx, net.ID)
		compare(b, "usernet", func(int) error { return dockerRun(cli, nil, net.ID, "true") },
			"dockerrun", func() error { return dockerRun(cli, nil, "", "true") })
	})
}

// compare runs first and then second once an iteration, so that both see
// the same load, and reports the time each took an iteration, in ms, and
// ratio, first's time over second's.
func compare(b *testing.B, firstName string, first func(i int) error, secondName string, second func() error) {
	b.Helper()
	compareSettled(b, firstName, first, nil, secondName, second)
}

// compareSettled is compare with settle, when not nil, called untimed
// after first: the time it takes is reported apart, as settle-ms/op.
func compareSettled(b *testing.B, firstName string, first func(i int) error, settle func(), secondName string, second func() error) {
	b.Helper()
	var t1, t2, ts time.Duration
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		if err := first(i); err != nil {
			b.Fatalf("%s: %v", firstName, err)
		}
		t := time.Now()
		t1 += t.Sub(t0)
		if settle != nil {
			settle()
			ts += time.Since(t)
			t = time.Now()
		}
		if err := second(); err != nil {
			b.Fatalf("%s: %v", secondName, err)
		}
		t2 += time.Since(t)
	}
	b.ReportMetric(float64(t1.Milliseconds())/float64(b.N), firstName+"-ms/op")
	b.ReportMetric(float64(t2.Milliseconds())/float64(b.N), secondName+"-ms/op")
	b.ReportMetric(float64(t1)/float64(t2), "ratio")
	if settle != nil {
		b.ReportMetric(float64(ts.Milliseconds())/float64(b.N), "settle-ms/op")
	}
}

// countingWriter counts what a job log got.
type countingWriter struct{ n atomic.Int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// BenchmarkOutput100MB compares a job printing 100 MB with a container
// printing the same and its output read back with `docker logs`. The
// MB/s column counts 100 MB against the time of both; job-ms/op and
// dockerlogs-ms/op give each its own.
func BenchmarkOutput100MB(b *testing.B) {
	cli := dockertest.RequireImage(b)
	e := docker.New(cli, docker.Options{})
	defer e.Close(context.Background())
	const size = 100_000_000
	// yes dies of SIGPIPE when head has enough, which pipefail would
	// report.
	cmd := fmt.Sprintf("{ yes 'slipway log line of seventy bytes, give or take a few, for the bench' || true; } | head -c %d", size)
	spec := image(run(cmd))
	b.SetBytes(size)
	compare(b, "job", func(i int) error {
		var out countingWriter
		if err := runBench(e, benchJob(spec, i), &out); err != nil {
			return err
		}
		if out.n.Load() < size {
			return fmt.Errorf("job log got %d bytes, want %d", out.n.Load(), size)
		}
		return nil
	}, "dockerlogs", func() error {
		var out countingWriter
		if err := dockerRun(cli, &out, "", "/bin/sh", "-c", cmd); err != nil {
			return err
		}
		if out.n.Load() != size {
			return fmt.Errorf("docker logs got %d bytes, want %d", out.n.Load(), size)
		}
		return nil
	})
}

// BenchmarkParallel20 runs 20 one-step jobs at once and reports the
// batch's wall time and the peak of the heap in use while they ran, with
// networks from the executor's pool (sized for 20 at once, as for an
// engine of parallelism 20; the first batch creates them) and on the
// shared bridge.
func BenchmarkParallel20(b *testing.B) {
	cli := dockertest.RequireImage(b)
	holderImage(b, cli) // for pool-holders
	for _, n := range benchNetworks {
		b.Run(n.name, func(b *testing.B) {
			opts := n.opts
			opts.NetworkPool = 20
			e := docker.New(cli, opts)
			defer e.Close(context.Background())
			parallel20(b, e)
		})
	}
	// The floor: 20 `docker run --rm IMAGE true` at once.
	b.Run("docker-run", func(b *testing.B) {
		var total time.Duration
		for b.Loop() {
			t0 := time.Now()
			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() {
					if err := dockerRun(cli, nil, "", "true"); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
			total += time.Since(t0)
		}
		b.ReportMetric(total.Seconds()/float64(b.N), "batch-s/op")
	})
}

func parallel20(b *testing.B, e *docker.Executor) {
	spec := image(run("echo hello from a parallel job; true"))
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		// Samples until the benchmark ends.
		defer close(sampled)
		var ms runtime.MemStats
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		var wg sync.WaitGroup
		for n := range 20 {
			wg.Go(func() {
				if err := runBench(e, benchJob(spec, i*100+n), io.Discard); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		total += time.Since(t0)
	}
	close(stop)
	<-sampled
	b.ReportMetric(total.Seconds()/float64(b.N), "batch-s/op")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
}
