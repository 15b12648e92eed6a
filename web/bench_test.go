package web

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/bot"
	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// fakeStore serves one pipeline state and one log from memory and a
// file, for measurements that the store's own speed would blur.
type fakeStore struct {
	st      *engine.PipelineState
	logPath string
	ended   atomic.Bool
}

func (f *fakeStore) Pipelines(ctx context.Context, _ store.PipelineFilter) ([]engine.PipelineRecord, error) {
	return []engine.PipelineRecord{f.st.Pipeline}, nil
}
func (f *fakeStore) PipelineState(ctx context.Context, id string) (*engine.PipelineState, error) {
	return f.st, nil
}
func (f *fakeStore) PipelineApprovals(ctx context.Context, id string) ([]engine.ApprovalRecord, error) {
	return nil, nil
}
func (f *fakeStore) Attempts(ctx context.Context, jobID string) ([]engine.AttemptRecord, error) {
	return nil, nil
}
func (f *fakeStore) Attempt(ctx context.Context, id string) (*engine.AttemptRecord, error) {
	a := &engine.AttemptRecord{ID: id, JobID: f.st.Jobs[0].ID, Started: time.Now()}
	if f.ended.Load() {
		a.Finished = time.Now()
	}
	return a, nil
}
func (f *fakeStore) JobLog(ctx context.Context, id string) (io.ReadCloser, error) {
	return os.Open(f.logPath)
}
func (f *fakeStore) Releases(ctx context.Context, app, env string) ([]engine.Release, error) {
	return nil, nil
}
func (f *fakeStore) EnvLocks(ctx context.Context, app string) ([]engine.EnvLock, error) {
	return nil, nil
}

type noEngine struct{ Engine }

// bigPipeline is a workflow of n jobs in layers of 50, each requiring two
// or three jobs of the layers before, in a fixed pseudo-random pattern.
func bigPipeline(n int) *engine.PipelineState {
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	st := &engine.PipelineState{Pipeline: engine.PipelineRecord{ID: "big", App: "backend", Number: 7, Status: engine.StatusRunning,
		Created: now.Add(-time.Hour), Trigger: workflows.Trigger{Branch: "main", Revision: strings.Repeat("a", 40), Source: "webhook"}},
		Workflows: []engine.WorkflowRecord{{ID: "w", PipelineID: "big", Name: "matrix", Status: engine.StatusRunning, Created: now.Add(-time.Hour)}}}
	statuses := []string{workflows.StatusSuccess, workflows.StatusSuccess, workflows.StatusFailed, engine.StatusRunning, engine.StatusBlocked}
	for i := range n {
		j := engine.JobRecord{ID: fmt.Sprintf("j%03d", i), PipelineID: "big", WorkflowID: "w", Name: fmt.Sprintf("test-shard-%03d-linux-amd64", i),
			Type: workflows.JobBuild, Status: statuses[r.IntN(len(statuses))], Started: now.Add(-30 * time.Minute), Requires: map[string][]string{}}
		if layer := i / 50; layer > 0 {
			for range 2 + r.IntN(2) {
				k := r.IntN(layer * 50) // a job of any earlier layer
				if r.IntN(3) > 0 {
					k = (layer-1)*50 + r.IntN(50) // mostly the one before
				}
				j.Requires[fmt.Sprintf("test-shard-%03d-linux-amd64", k)] = []string{workflows.StatusSuccess}
			}
		}
		st.Jobs = append(st.Jobs, j)
	}
	return st
}

func newFakeHandler(tb testing.TB, fs *fakeStore) *Handler {
	tb.Helper()
	h, err := New(Options{Store: fs, Engine: noEngine{}, Key: []byte("0123456789abcdef0123456789abcdef"),
		Auth: Auth{Users: map[string]User{"rita": {PasswordHash: passwordHash, ChatID: releaser}}}, Words: bot.Words{}})
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func renderBig(tb testing.TB, h *Handler) int {
	req := httptest.NewRequest("GET", "/pipelines/big", nil)
	req.SetBasicAuth("rita", password)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 {
		tb.Fatalf("status %d", w.Code)
	}
	return w.Body.Len()
}

// BenchmarkPipelinePage500 renders the page of a pipeline of 500 jobs:
// layout, SVG and HTML (bcrypt aside: it checks the password per request).
func BenchmarkPipelinePage500(b *testing.B) {
	h := newFakeHandler(b, &fakeStore{st: bigPipeline(500)})
	h.auth.Users = nil
	size := 0
	for b.Loop() {
		st := bigPipeline(500)
		d, err := h.pipelineView(context.Background(), st, nil, &viewer{Name: "rita", ChatID: releaser})
		if err != nil {
			b.Fatal(err)
		}
		var sb strings.Builder
		if err := pipelineHTML(d).Render(context.Background(), &sb); err != nil {
			b.Fatal(err)
		}
		size = sb.Len()
	}
	b.ReportMetric(float64(size), "page-bytes")
}

// TestPipelinePage500 renders the page of a pipeline of 500 jobs whole:
// every job is on it. How long it takes is BenchmarkPipelinePage500's.
func TestPipelinePage500(t *testing.T) {
	h := newFakeHandler(t, &fakeStore{st: bigPipeline(500)})
	req := httptest.NewRequest("GET", "/pipelines/big", nil)
	req.SetBasicAuth("rita", password)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	for i := range 500 {
		if name := fmt.Sprintf("test-shard-%03d-linux-amd64", i); !strings.Contains(w.Body.String(), name) {
			t.Fatalf("job %s is not on the page", name)
		}
	}
}

func TestLayoutCrossings(t *testing.T) {
	st := bigPipeline(500)
	l := layoutJobs(st.Jobs)
	plan := &layout{nodes: l.nodes, layers: l.layers}
	// Compared with the plan's own order in each layer.
	for ly := range plan.layers {
		plan.layers[ly] = append([]int(nil), plan.layers[ly]...)
		slicesSortInts(plan.layers[ly])
	}
	ordered := l.crossings()
	plan.renumber()
	unordered := plan.crossings()
	l.renumber()
	t.Logf("crossings: %d in plan order, %d ordered", unordered, ordered)
	if ordered >= unordered {
		t.Errorf("ordering did not reduce crossings: %d, from %d", ordered, unordered)
	}
	for _, e := range l.edges {
		if l.nodes[e.path[0]].layer >= l.nodes[e.path[len(e.path)-1]].layer {
			t.Fatalf("an arrow points back")
		}
	}
}

func slicesSortInts(s []int) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// writeLog writes size bytes of coloured log lines to path.
func writeLog(tb testing.TB, path string, size int) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	n := 0
	for i := 0; n < size; i++ {
		k, _ := fmt.Fprintf(w, "\x1b[32m%08d\x1b[0m ok  \tgithub.com/acme/backend/pkg/%d\t0.%03ds <coverage: 81.2%%> ünïcode\n", i, i%97, i%1000)
		n += k
	}
	w.Flush()
	f.Close()
}

// discard is a ResponseWriter that counts and forgets.
type discard struct {
	h http.Header
	n int64
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }
func (d *discard) WriteHeader(int)             {}
func (d *discard) Flush()                      {}

// streamLog streams a finished log whole, as an SSE response.
func streamLog(tb testing.TB, h *Handler) int64 {
	d := &discard{h: http.Header{}}
	s := &logStreamer{h: h, w: d, flush: http.NewResponseController(d).Flush, attempt: "a", ended: true, buf: make([]byte, logChunk), conv: newANSI()}
	if err := s.run(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return d.n
}

// BenchmarkLogStream100MB streams a 100 MB log: B/op is what the stream
// allocates in all, which stays flat whatever the log's size.
func BenchmarkLogStream100MB(b *testing.B) {
	path := filepath.Join(b.TempDir(), "log")
	writeLog(b, path, 100<<20)
	fs := &fakeStore{st: bigPipeline(1), logPath: path}
	fs.ended.Store(true)
	h := newFakeHandler(b, fs)
	b.SetBytes(100 << 20)
	for b.Loop() {
		streamLog(b, h)
	}
}

// TestLogStreamFlatMemory streams 100 MB and 10 MB logs: the bytes
// allocated must not grow with the log.
func TestLogStreamFlatMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("writes 110 MB; the race detector's own allocations would be counted")
	}
	alloc := map[int]uint64{}
	for _, mb := range []int{10, 100} {
		path := filepath.Join(t.TempDir(), "log")
		writeLog(t, path, mb<<20)
		fs := &fakeStore{st: bigPipeline(1), logPath: path}
		fs.ended.Store(true)
		h := newFakeHandler(t, fs)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		sent := streamLog(t, h)
		runtime.ReadMemStats(&after)
		alloc[mb] = after.TotalAlloc - before.TotalAlloc
		t.Logf("%d MB log: %d MB of events, %d KB allocated", mb, sent>>20, alloc[mb]>>10)
		if sent < int64(mb)<<20 {
			t.Errorf("sent %d bytes of a %d MB log", sent, mb)
		}
	}
	if alloc[100] > 2<<20 || alloc[100] > 2*alloc[10]+(256<<10) {
		t.Errorf("streaming allocated %d KB for 10 MB, %d KB for 100 MB: not flat", alloc[10]>>10, alloc[100]>>10)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLiveLogViewers measures what 50 viewers of one live log cost:
// the process's CPU time while a job writes its log at a steady 1000
// lines a second for 3 s, with 50 SSE clients against none. The clients
// are curl processes where curl is installed, else goroutines of this
// process whose reading is then counted against the dashboard. It
// reports the extra CPU as a share of one core.
func BenchmarkLiveLogViewers(b *testing.B) {
	run := func(viewers int) (time.Duration, time.Duration) {
		path := filepath.Join(b.TempDir(), "log")
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		fs := &fakeStore{st: bigPipeline(1), logPath: path}
		h := newFakeHandler(b, fs)
		srv := httptest.NewServer(h)
		defer srv.Close()
		var wg sync.WaitGroup
		got := make([]int64, viewers)
		curl, _ := exec.LookPath("curl")
		for i := range viewers {
			if curl != "" {
				// Out of the process: their reading is not counted.
				cmd := exec.Command(curl, "-sN", "-u", "rita:"+password, srv.URL+"/pipelines/big/jobs/j000/log?attempt=a")
				out, _ := cmd.StdoutPipe()
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				wg.Go(func() {
					got[i], _ = io.Copy(io.Discard, out)
					cmd.Wait()
				})
				continue
			}
			wg.Go(func() {
				req, _ := http.NewRequest("GET", srv.URL+"/pipelines/big/jobs/j000/log?attempt=a", nil)
				req.SetBasicAuth("rita", password)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				defer resp.Body.Close()
				got[i], _ = io.Copy(io.Discard, resp.Body)
			})
		}
		time.Sleep(500 * time.Millisecond) // connected, passwords checked
		start, cpu0 := time.Now(), cpuTime()
		tick := time.NewTicker(10 * time.Millisecond)
		line := 0
		for time.Since(start) < 3*time.Second {
			<-tick.C
			for range 10 {
				line++
				fmt.Fprintf(f, "\x1b[32m%08d\x1b[0m step output <with> some text and a path /src/acme/%d\n", line, line%31)
			}
		}
		tick.Stop()
		wall, cpu := time.Since(start), cpuTime()-cpu0
		f.Close()
		fs.ended.Store(true)
		wg.Wait()
		for i, n := range got {
			if n < int64(line)*40 {
				b.Errorf("viewer %d got %d bytes of %d lines", i, n, line)
				break
			}
		}
		return cpu, wall
	}
	for b.Loop() {
		cpu0, wall0 := run(0)
		cpu50, wall50 := run(50)
		share0 := float64(cpu0) / float64(wall0)
		share50 := float64(cpu50) / float64(wall50)
		b.ReportMetric(share0*100, "%cpu-0-viewers")
		b.ReportMetric(share50*100, "%cpu-50-viewers")
		b.ReportMetric((share50-share0)*100, "%cpu-extra")
	}
}
