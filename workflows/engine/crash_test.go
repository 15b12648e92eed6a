package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// The crash test runs a pipeline in a worker process (this test binary,
// re-executed), which stops at its Nth kill point and says so; the parent
// kills it with SIGKILL, then runs workers on the same store until the
// pipeline ends. Kill points are every store write (before, inside the
// open transaction, after commit), every job while it runs, the pending
// approval, and every notification (before and after the notifier heard
// it, before the outbox recorded it).

const (
	envCrashDir = "SLIPWAY_CRASH_DIR"
	envCrashAt  = "SLIPWAY_CRASH_AT"
	crashID     = "crash-pipeline"
)

// crashPlan covers the shapes that matter: a diamond, a deploy, an
// approval, a deploy needing it, and a job that runs whatever happens.
func crashPlan() *workflows.Plan {
	report := build("report")
	report.Requires["deploy-production"] = []string{workflows.StatusTerminal}
	return &workflows.Plan{Workflows: []*workflows.PlannedWorkflow{wf("main",
		build("checkout"), build("lint", "checkout"), build("unit", "checkout"),
		withContext(build("deploy-staging", "lint", "unit"), "staging"),
		hold("hold", "deploy-staging"),
		withContext(build("deploy-production", "hold"), "production"),
		report,
	)}}
}

// killPoints counts the points a worker passes and stops at the chosen one.
type killPoints struct {
	at int64
	n  atomic.Int64
}

func (k *killPoints) pass(name string) {
	n := k.n.Add(1)
	if k.at > 0 && n == k.at {
		fmt.Fprintf(os.Stdout, "KILLPOINT %d %s\n", n, name)
		select {} // the parent's SIGKILL ends this process
	}
}

// hookedStore passes kill points around every write.
type hookedStore struct {
	engine.Store
	k *killPoints
}

func (s *hookedStore) Update(ctx context.Context, fn func(engine.StoreTx) error) error {
	s.k.pass("before update")
	err := s.Store.Update(ctx, func(tx engine.StoreTx) error {
		if err := fn(tx); err != nil {
			return err
		}
		s.k.pass("inside update")
		return nil
	})
	s.k.pass("after update")
	return err
}

func (s *hookedStore) MarkEventsDelivered(ctx context.Context, consumer string, seqs []int64, at time.Time) error {
	s.k.pass("before mark delivered")
	err := s.Store.MarkEventsDelivered(ctx, consumer, seqs, at)
	s.k.pass("after mark delivered")
	return err
}

// appendLine appends to a file shared by the worker runs of one scenario.
// A write(2) survives the writer's SIGKILL.
func appendLine(path, line string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		panic(err)
	}
}

type fileNotifier struct {
	path string
	k    *killPoints
}

func (n *fileNotifier) Notify(ctx context.Context, e engine.Event) error {
	n.k.pass("before notify")
	appendLine(n.path, fmt.Sprintf("%d %s %s", e.Seq, e.Kind, e.Data.Job))
	n.k.pass("after notify")
	return nil
}

type pidIDs struct{ n atomic.Int64 }

func (p *pidIDs) NewID() string { return fmt.Sprintf("%d-%d", os.Getpid(), p.n.Add(1)) }

// TestCrashWorker is the worker; it does nothing unless started by TestCrashRecovery.
func TestCrashWorker(t *testing.T) {
	dir := os.Getenv(envCrashDir)
	if dir == "" {
		t.Skip("run by TestCrashRecovery as a separate process")
	}
	at, _ := strconv.ParseInt(os.Getenv(envCrashAt), 10, 64)
	k := &killPoints{at: at}
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runs := filepath.Join(dir, "runs.log")
	exec := &fakeExecutor{
		run: func(ctx context.Context, job *engine.JobRun, log io.Writer) (engine.JobResult, error) {
			appendLine(runs, "run "+job.JobName+" "+job.ID)
			k.pass("job running " + job.JobName)
			return engine.JobResult{Status: workflows.StatusSuccess}, nil
		},
		cleanup: func(ctx context.Context, id string) error {
			appendLine(runs, "cleanup "+id)
			return nil
		},
	}
	e := engine.New(engine.Options{
		Store: &hookedStore{Store: db, k: k}, Executor: exec, Notifiers: map[string]engine.Notifier{"test": &fileNotifier{path: filepath.Join(dir, "events.log"), k: k}},
		IDs: &pidIDs{}, Apps: backend(), DataDir: filepath.Join(dir, "data"), Parallelism: 2, RetryMin: time.Millisecond,
	})
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PipelineState(ctx, crashID); errors.Is(err, engine.ErrNotFound) {
		if _, err := e.Submit(ctx, engine.PipelineRequest{ID: crashID, App: "backend", Repo: "acme/backend", Author: "alice",
			Trigger: workflows.Trigger{Branch: "main", Revision: "feedface"}, Plan: crashPlan()}); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		st, err := e.Wait(wctx, crashID, engine.Settled)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pipeline.Status != engine.StatusOnHold {
			break
		}
		k.pass("approval pending")
		if _, err := e.Approve(ctx, jobStatus(st, "hold").ID, engine.Actor{ID: "carol"}); err != nil {
			t.Fatal(err)
		}
	}
	for {
		if _, err := e.DeliverEvents(ctx); err != nil {
			t.Fatal(err)
		}
		next, err := db.NextEventDue(ctx, "test")
		if err != nil {
			t.Fatal(err)
		}
		if next.IsZero() {
			break
		}
	}
	if err := e.Shutdown(wctx); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "DONE %d\n", k.n.Load())
}

// runWorker runs one worker and kills it with SIGKILL at its kill point.
// It reports whether the worker finished the pipeline, and how many
// kill points it passed when it did.
func runWorker(t *testing.T, dir string, killAt int64) (done bool, points int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashWorker$", "-test.count=1")
	// A race-enabled worker would otherwise sleep a second at exit.
	cmd.Env = append(os.Environ(), envCrashDir+"="+dir, envCrashAt+"="+strconv.FormatInt(killAt, 10),
		"GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		if strings.HasPrefix(line, "KILLPOINT") {
			cmd.Process.Signal(syscall.SIGKILL)
		}
		if rest, ok := strings.CutPrefix(line, "DONE "); ok {
			done = true
			points, _ = strconv.ParseInt(rest, 10, 64)
		}
	}
	werr := cmd.Wait()
	if done && werr != nil {
		t.Fatalf("worker said DONE but exited %v\n%s\n%s", werr, strings.Join(lines, "\n"), stderr.String())
	}
	if !done {
		var ee *exec.ExitError
		if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("worker (kill at %d) ended %v without finishing\n%s\n%s", killAt, werr, strings.Join(lines, "\n"), stderr.String())
		}
	}
	return done, points
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hundreds of processes")
	}
	done, total := runWorker(t, t.TempDir(), 0)
	if !done || total == 0 {
		t.Fatal("an uninterrupted worker did not finish")
	}
	var tried, twice atomic.Int64
	var mu sync.Mutex
	byPoint := map[string]int{}
	t.Run("points", func(t *testing.T) {
		step := int64(1)
		if raceEnabled {
			step = 4
		}
		for at := int64(1); at <= total; at += step {
			t.Run(strconv.FormatInt(at, 10), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				if done, _ := runWorker(t, dir, at); done {
					return // this run passed fewer points; nothing was killed
				}
				tried.Add(1)
				// Every fifth scenario is killed again early in its recovery.
				if at%5 == 0 {
					if done, _ := runWorker(t, dir, 3); !done {
						twice.Add(1)
					}
				}
				for range 3 {
					if done, _ := runWorker(t, dir, 0); done {
						break
					}
				}
				outcome := checkCrashOutcome(t, dir)
				mu.Lock()
				byPoint[outcome]++
				mu.Unlock()
			})
		}
	})
	t.Logf("kill points tried: %d of %d passed by an uninterrupted run (%d killed twice); outcomes: %v",
		tried.Load(), total, twice.Load(), byPoint)
	fmt.Printf("crash test: %d kill points tried (%d killed twice); outcomes %v\n", tried.Load(), twice.Load(), byPoint)
}

// checkCrashOutcome checks what must hold however the workers died, and
// returns the outcome in words.
func checkCrashOutcome(t *testing.T, dir string) string {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := db.PipelineState(ctx, crashID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pipeline.Finished.IsZero() {
		t.Fatalf("pipeline did not end: %s", describe(st))
	}
	runs := readLines(t, filepath.Join(dir, "runs.log"))
	ran := map[string]int{}
	cleaned := map[string]bool{}
	for _, l := range runs {
		f := strings.Fields(l)
		switch f[0] {
		case "run":
			ran[f[1]]++
		case "cleanup":
			cleaned[f[1]] = true
		}
	}
	interrupted := 0
	for _, j := range st.Jobs {
		if !engine.Terminal(j.Status) {
			t.Errorf("job %s ended %s", j.Name, j.Status)
		}
		if ran[j.Name] > 1 {
			t.Errorf("job %s ran %d times", j.Name, ran[j.Name])
		}
		if j.Reason == "interrupted by restart" {
			interrupted++
			if !cleaned[j.AttemptID] {
				t.Errorf("interrupted attempt %s of %s was not cleaned up", j.AttemptID, j.Name)
			}
		}
		if j.Env == "" {
			continue
		}
		deps, err := db.Deployments(ctx, "backend", j.Env)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		if j.Status == workflows.StatusSuccess {
			want = 1
		}
		if len(deps) != want {
			t.Errorf("%d deployments to %s, job %s ended %s", len(deps), j.Env, j.Name, j.Status)
		}
	}
	wantStatus := workflows.StatusSuccess
	if interrupted > 0 {
		wantStatus = workflows.StatusFailed
	}
	if st.Pipeline.Status != wantStatus {
		t.Errorf("pipeline %s with %d interrupted jobs: %s", st.Pipeline.Status, interrupted, describe(st))
	}
	// At least once, in order: the first deliveries are 1, 2, 3, ... and
	// nothing is left undelivered.
	seen := map[int64]bool{}
	var next int64 = 1
	for _, l := range readLines(t, filepath.Join(dir, "events.log")) {
		seq, _ := strconv.ParseInt(strings.Fields(l)[0], 10, 64)
		if seen[seq] {
			continue
		}
		if seq != next {
			t.Errorf("event %d delivered first when %d was due", seq, next)
		}
		seen[seq] = true
		next = seq + 1
	}
	if due, err := db.DueEvents(ctx, "test", time.Now().Add(time.Hour), 10); err != nil || len(due) > 0 {
		t.Errorf("undelivered events: %+v %v", due, err)
	}
	if interrupted > 0 {
		return "failed, interrupted"
	}
	return "success"
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}
