package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"

	"github.com/slipway-ci/slipway/bot"
	awsdeploy "github.com/slipway-ci/slipway/deploy/aws"
	"github.com/slipway-ci/slipway/executors/docker"
	"github.com/slipway-ci/slipway/executors/local"
	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

const runUsage = "usage: slipway run FILE [--branch B | --tag T] [--sha S] [--repo DIR] [--param k=v]... [--allow-machine] [--executor local|docker [--remote-docker]] [--approve | --reject] [--deploy] [--logs] [--json]"

// runCommand is `slipway run`: plan the config for a push and run every
// workflow on this machine, through the same engine as the bot, with its
// state in a temporary store. Exit 0 only when every workflow succeeded.
func runCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// Progress is printed by the engine's outbox loop and by the
	// approval prompts, logs by any goroutine: one lock per writer.
	stdout, stderr = &syncWriter{w: stdout}, &syncWriter{w: stderr}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf configFlags
	cf.register(fs)
	var tf triggerFlags
	tf.register(fs)
	repo := fs.String("repo", ".", "git repository that `checkout` copies")
	executor := fs.String("executor", "local", "where jobs run: local (on this machine) or docker (in containers of the Docker engine)")
	remoteDocker := fs.Bool("remote-docker", false, "let setup_remote_docker give jobs this machine's Docker engine (docker jobs become root on it)")
	approve := fs.Bool("approve", false, "approve every approval job")
	reject := fs.Bool("reject", false, "reject every approval job")
	asJSON := fs.Bool("json", false, "end with the outcome as JSON; progress goes to stderr")
	parallel := fs.Int("parallelism", 4, "jobs run at once")
	logs := fs.Bool("logs", false, "print every job's log when it ends (a failed job's last lines are always printed)")
	deploy := fs.Bool("deploy", false, "carry out slipway/aws steps for real, with this machine's AWS configuration (the SDK's environment variables and shared config) and Docker engine; without it they are dry runs")
	files, err := parseArgs(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(files) != 1 || (*approve && *reject) {
		fmt.Fprintln(stderr, runUsage)
		return 2
	}
	if *executor != "local" && *executor != "docker" {
		fmt.Fprintf(stderr, "slipway run: executor %q is not available; use --executor local or docker\n", *executor)
		return 2
	}
	if fi, err := os.Stat(*repo); err != nil || !fi.IsDir() {
		fmt.Fprintf(stderr, "slipway run: --repo %s is not a folder\n", *repo)
		return 2
	}
	src, head := gitSource(ctx, *repo)
	if tf.sha != "" && src.GitDir != "" {
		// checkout copies the commit the pipeline says it runs.
		full := gitOutput(ctx, *repo, "rev-parse", "--verify", "--quiet", tf.sha+"^{commit}")
		if full == "" {
			fmt.Fprintf(stderr, "slipway run: --sha %s is not a commit of %s\n", tf.sha, src.GitDir)
			return 2
		}
		tf.sha, src.Revision = full, full
	}
	if tf.branch == "" && tf.tag == "" {
		tf.branch = head
		if tf.branch == "" || tf.branch == "HEAD" {
			tf.branch = "main"
		}
	}
	if tf.sha == "" {
		tf.sha = src.Revision
	}
	trig, err := tf.trigger()
	if err != nil {
		fmt.Fprintln(stderr, "slipway run:", err)
		return 2
	}
	if src.Revision == "" {
		src.Revision = trig.Revision
	}
	cfg, err := cf.load(ctx, files[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	progress := stdout
	if *asJSON {
		progress = stderr
	}
	r := &localRun{
		stdin: bufio.NewReader(stdin), progress: progress, stderr: stderr,
		approve: *approve, reject: *reject, who: localUser(),
	}
	return r.run(ctx, runSpec{file: files[0], repo: *repo, src: src, trig: trig, cfg: cfg, load: cf.options(files[0]), parallel: *parallel, asJSON: *asJSON,
		executor: *executor, remoteDocker: *remoteDocker, logs: *logs, deploy: *deploy}, stdout)
}

type runSpec struct {
	file     string
	repo     string
	src      engine.Source
	trig     workflows.Trigger
	cfg      *workflows.Config
	load     workflows.LoadOptions // how cfg was loaded, for the configs it continues with
	parallel int
	asJSON   bool
	executor string // "local" or "docker"
	// remoteDocker lets docker jobs' setup_remote_docker mount this
	// machine's engine.
	remoteDocker bool
	logs         bool // print every job's log, not only failed ones' tails
	// deploy carries out slipway/aws steps for real instead of as dry
	// runs.
	deploy bool
}

// words are the chat's words, for a terminal.
var words = bot.Words{}

// localRun is one `slipway run`: its terminal and its answers to approvals.
type localRun struct {
	stdin    *bufio.Reader
	progress io.Writer
	stderr   io.Writer
	approve  bool
	reject   bool
	who      string
	pending  chan lineRead // a read of stdin under way
}

func (r *localRun) run(ctx context.Context, spec runSpec, stdout io.Writer) int {
	tmp, release, err := runDir(os.TempDir())
	if err != nil {
		fmt.Fprintln(r.stderr, "slipway run:", err)
		return 1
	}
	defer release()
	logger := slog.New(slog.NewTextHandler(r.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The executor starts (its folder swept, its cgroups probed) while
	// the store opens: each takes a one-job run about a millisecond.
	type executor struct {
		exe   engine.Executor
		close func()
		err   error
	}
	exeReady := make(chan executor, 1)
	go func() {
		exe, closeExe, err := newExecutor(ctx, spec, filepath.Join(tmp, "attempts"), logger)
		exeReady <- executor{exe, closeExe, err}
	}()
	db, err := store.OpenScratch(ctx, filepath.Join(tmp, "slipway.db"))
	x := <-exeReady
	if err == nil {
		defer db.Close()
	}
	if x.err == nil {
		defer x.close()
	}
	for _, err := range []error{err, x.err} {
		if err != nil {
			fmt.Fprintln(r.stderr, "slipway run:", err)
			return 1
		}
	}
	exe := x.exe
	var aws engine.NativeRunner = dryRunAWS{}
	if spec.deploy {
		runner, closeRunner := deployRunner(ctx, logger, r.stderr)
		defer closeRunner()
		aws = runner
	}
	contexts := map[string]*engine.Context{}
	pr := &progressPrinter{w: r.progress, started: map[string]time.Time{}, logs: db, allLogs: spec.logs}
	e := engine.New(engine.Options{
		Store: db, Executor: exe, ExecutorName: spec.executor, Notifiers: map[string]engine.Notifier{"terminal": pr}, Logger: logger,
		Natives:  map[string]engine.NativeRunner{engine.OrbAWS: aws},
		Contexts: contexts, Parallelism: spec.parallel, DataDir: filepath.Join(tmp, "data"),
		Continuations: continuations(spec.load),
		RetryMin:      10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
	})
	// The pipeline is stored before the engine starts running it, so
	// that the contexts its jobs name are known first.
	name := filepath.Base(absDir(spec.repo))
	started, err := e.StartPipeline(ctx, engine.StartRequest{
		App: name, Repo: "local/" + name, Author: r.who, Trigger: spec.trig, Source: spec.src,
		Config: engine.ConfigFunc(func(context.Context) (*workflows.Config, error) { return spec.cfg, nil }),
	})
	switch {
	case err != nil:
		fmt.Fprintln(r.stderr, "slipway run:", err)
		return 1
	case started.ConfigErr != nil:
		fmt.Fprintln(r.stderr, started.ConfigErr)
		return 1
	case started.Pipeline == nil:
		fmt.Fprintln(r.progress, "nothing runs for this trigger")
		if spec.asJSON {
			fmt.Fprintln(stdout, `{"workflows":[]}`)
		}
		return 0
	}
	rec := started.Pipeline
	// Contexts live in the server's config; here they exist, empty, so
	// that jobs naming them run without their variables.
	st, err := db.PipelineState(ctx, rec.ID)
	if err != nil {
		fmt.Fprintln(r.stderr, "slipway run:", err)
		return 1
	}
	for _, j := range st.Jobs {
		for _, c := range j.Context {
			if contexts[c] == nil {
				contexts[c] = &engine.Context{Name: c}
				fmt.Fprintf(r.stderr, "note: context %s has no variables on this machine\n", c)
			}
		}
	}
	if err := e.Start(ctx); err != nil {
		fmt.Fprintln(r.stderr, "slipway run:", err)
		return 1
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		e.Shutdown(sctx)
	}()
	st, err = r.drive(ctx, e, db, rec.ID)
	if err != nil {
		fmt.Fprintln(r.stderr, "slipway run:", err)
		return 1
	}
	flush(context.WithoutCancel(ctx), e, db)
	out := summarize(st)
	if spec.asJSON {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(out); err != nil {
			fmt.Fprintln(r.stderr, "slipway run:", err)
			return 1
		}
	} else {
		for _, w := range out.Workflows {
			fmt.Fprintf(stdout, "workflow %s: %s\n", w.Name, w.Status)
		}
	}
	for _, w := range out.Workflows {
		if w.Status != workflows.StatusSuccess {
			return 1
		}
	}
	return 0
}

// drive waits for the pipeline to settle, answering approvals, until it ends.
// When ctx ends (Ctrl-C) the pipeline is canceled.
func (r *localRun) drive(ctx context.Context, e *engine.Engine, db *store.DB, id string) (*engine.PipelineState, error) {
	for {
		st, err := e.WaitSettled(ctx, id)
		if ctx.Err() != nil {
			return r.cancel(e, id)
		}
		if err != nil {
			return nil, err
		}
		if st.Pipeline.Status != engine.StatusOnHold {
			return st, nil
		}
		flush(ctx, e, db) // print what happened before asking
		answered := false
		for _, j := range st.Jobs {
			if j.Status != engine.StatusOnHold {
				continue
			}
			yes, ok := r.ask(ctx, j.Name)
			if ctx.Err() != nil {
				return r.cancel(e, id)
			}
			if !ok {
				continue
			}
			answered = true
			decide := e.Reject
			if yes {
				decide = e.Approve
			}
			d, err := decide(ctx, j.ID, engine.Actor{ID: r.who})
			if err != nil {
				return nil, err
			}
			action := "reject"
			if yes {
				action = "approve"
			}
			if d.Applied {
				fmt.Fprintf(r.progress, "%s: %s\n", j.Name, words.Decided(d, r.who))
			} else {
				fmt.Fprintf(r.progress, "%s: %s\n", j.Name, words.Refusal(action, d))
			}
		}
		if !answered {
			return st, nil // nobody to ask: the workflow stays on hold
		}
	}
}

func (r *localRun) cancel(e *engine.Engine, id string) (*engine.PipelineState, error) {
	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	if _, err := e.Cancel(ctx, id, engine.Actor{ID: r.who}); err != nil {
		return nil, err
	}
	return e.WaitFinished(ctx, id)
}

// ask decides an approval job: by flag, or by asking on the terminal. ok
// is false when there is no answer (stdin closed, or ctx ended: Ctrl-C).
func (r *localRun) ask(ctx context.Context, job string) (yes, ok bool) {
	switch {
	case r.approve:
		return true, true
	case r.reject:
		return false, true
	}
	fmt.Fprintf(r.progress, "%s is waiting for approval. Approve? [y/N] ", job)
	line, err := r.readLine(ctx)
	if err != nil && line == "" {
		fmt.Fprintln(r.progress)
		return false, false
	}
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes", true
}

// lineRead is a line of stdin and the error that ended it.
type lineRead struct {
	line string
	err  error
}

// readLine reads a line of stdin unless ctx ends first. A read cannot be
// interrupted, so it goes on in its own goroutine; a line it gets after
// ctx ended answers the next question.
func (r *localRun) readLine(ctx context.Context) (string, error) {
	if r.pending == nil {
		ch := make(chan lineRead, 1)
		r.pending = ch
		go func() {
			line, err := r.stdin.ReadString('\n')
			ch <- lineRead{line, err}
		}()
	}
	select {
	case l := <-r.pending:
		r.pending = nil
		return l.line, l.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// flush delivers the events still in the outbox, so that every progress
// line is printed before the summary.
func flush(ctx context.Context, e *engine.Engine, db *store.DB) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if _, err := e.DeliverEvents(ctx); err != nil {
			return
		}
		next, err := db.NextEventDue(ctx, "terminal")
		if err != nil || next.IsZero() {
			return
		}
	}
}

// progressPrinter prints a line as each job starts and ends, and the
// log of a job that failed.
type progressPrinter struct {
	mu      sync.Mutex
	w       io.Writer
	started map[string]time.Time
	logs    *store.DB
	allLogs bool // every job's whole log, not a failed one's tail
}

// failedLogLines is how much of a failed job's log is printed, as in
// its Slack thread.
const failedLogLines = 20

func (p *progressPrinter) Notify(ctx context.Context, ev engine.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := ev.Data
	switch ev.Kind {
	case engine.EventJobStarted:
		p.started[d.JobID] = time.Now()
		fmt.Fprintf(p.w, "%s/%s: started\n", d.Workflow, d.Job)
	case engine.EventJobFinished:
		line := fmt.Sprintf("%s/%s: %s", d.Workflow, d.Job, d.Status)
		if t, ok := p.started[d.JobID]; ok {
			line += fmt.Sprintf(" in %s", time.Since(t).Round(time.Millisecond))
			delete(p.started, d.JobID)
		}
		switch {
		case d.ExitCode > 0:
			line += fmt.Sprintf(" (exit %d)", d.ExitCode)
		case d.Reason != "":
			line += " (" + d.Reason + ")"
		}
		fmt.Fprintln(p.w, line)
		switch {
		case p.allLogs:
			p.printLog(ctx, d.AttemptID, 0)
		case d.Status == workflows.StatusFailed:
			p.printLog(ctx, d.AttemptID, failedLogLines)
		}
	case engine.EventApprovalNeeded:
		fmt.Fprintf(p.w, "%s/%s: on hold, waiting for approval\n", d.Workflow, d.Job)
	case engine.EventJobWaiting:
		fmt.Fprintf(p.w, "%s/%s: waiting: %s\n", d.Workflow, d.Job, d.Reason)
	case engine.EventChatMessage:
		fmt.Fprintf(p.w, "%s: message for the commit's thread: %s\n", d.Job, d.Message)
	}
	return nil
}

// printLog prints an attempt's log indented, its last n lines when n > 0.
func (p *progressPrinter) printLog(ctx context.Context, attemptID string, n int) {
	if attemptID == "" {
		return
	}
	r, err := p.logs.JobLog(ctx, attemptID)
	if err != nil {
		return // a job that never started has no log
	}
	defer r.Close()
	if err := writeLog(p.w, r, n); err != nil {
		fmt.Fprintf(p.w, "    (the log could not be read to its end: %v)\n", err)
	}
}

// syncWriter serializes writes from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// runOutput is the --json shape other programs rely on.
type runOutput struct {
	Workflows []runWorkflow `json:"workflows"`
}

type runWorkflow struct {
	Name   string   `json:"name"`
	Status string   `json:"status"` // success|failed|canceled|on_hold
	Jobs   []runJob `json:"jobs"`
}

type runJob struct {
	Name   string `json:"name"`
	Status string `json:"status"` // success|failed|canceled|not_run|blocked|skipped
}

func summarize(st *engine.PipelineState) runOutput {
	out := runOutput{Workflows: []runWorkflow{}}
	for _, w := range st.Workflows {
		rw := runWorkflow{Name: w.Name, Status: w.Status, Jobs: []runJob{}}
		if rw.Status == engine.StatusRunning {
			rw.Status = engine.StatusOnHold
		}
		for _, j := range st.Jobs {
			if j.WorkflowID != w.ID {
				continue
			}
			s := j.Status
			switch s {
			case workflows.StatusUnauthorized:
				s = workflows.StatusFailed
			case engine.StatusOnHold, engine.StatusQueued, engine.StatusRunning:
				// An approval nobody answered, and what waits behind it.
				s = engine.StatusBlocked
			}
			rw.Jobs = append(rw.Jobs, runJob{Name: j.Name, Status: s})
		}
		out.Workflows = append(out.Workflows, rw)
	}
	return out
}

// gitSource is where `checkout` copies from: dir's HEAD, when dir is a
// git repository; and the branch HEAD is on ("HEAD" when detached). One
// git process answers both.
func gitSource(ctx context.Context, dir string) (engine.Source, string) {
	sha, branch := gitHead(ctx, dir)
	if sha == "" {
		return engine.Source{}, ""
	}
	return engine.Source{GitDir: absDir(dir), Revision: sha}, branch
}

func gitOutput(ctx context.Context, dir string, args ...string) string {
	out, err := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func absDir(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir
	}
	return abs
}

func localUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "local"
}

// newExecutor makes the executor spec names, and what closes it.
func newExecutor(ctx context.Context, spec runSpec, dir string, logger *slog.Logger) (engine.Executor, func(), error) {
	if spec.executor == "docker" {
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, nil, err
		}
		// One pipeline runs here, the developer's own: its jobs go on the
		// engine's default bridge, as `docker run` and `circleci local
		// execute` put them, rather than on networks of their own. A
		// network costs a one-job run more than the job (its creation,
		// its containers' slower start, and its removal, which the
		// process must wait for), and a pool's holders pay off only
		// when started while the engine idles, which a run that ends
		// after its last job never does. What is given up: its jobs
		// running at the same time, and the host's other containers on
		// that bridge, can reach each other. The server keeps one
		// network per running attempt.
		opts := docker.Options{Logger: logger, RemoteDocker: spec.remoteDocker, Network: docker.DefaultNetwork}
		exe := docker.New(cli, opts)
		return exe, func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := exe.Close(ctx); err != nil {
				logger.Error("close the docker executor", "err", err)
			}
			cli.Close()
		}, nil
	}
	// On a developer's machine the jobs are the developer's own: as root
	// too, they run as root, and without a process limit, which on a
	// cgroup v1 host costs a one-shot run 8 ms (a thread joining the pids
	// cgroup waits for an RCU grace period). Their processes are still
	// tracked and killed at the job's end.
	exe, err := local.New(local.Options{Dir: dir, Logger: logger, RemoteDocker: spec.remoteDocker, AllowRoot: true, MaxProcesses: -1})
	if err != nil {
		return nil, nil, err
	}
	return exe, closeLocal(exe, logger), nil
}

// closeLocal closes a local executor, waiting up to a minute for what it
// removes in the background.
func closeLocal(exe *local.Executor, log *slog.Logger) func() {
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := exe.Close(ctx); err != nil {
			log.Error("close the local executor", "err", err)
		}
	}
}

// deployRunner is slipway/aws for `slipway run --deploy`: AWS as this
// machine's SDK configuration says (jobs' contexts are empty here), and
// images built and pushed by its Docker engine when one answers.
func deployRunner(ctx context.Context, logger *slog.Logger, stderr io.Writer) (engine.NativeRunner, func()) {
	opts := awsdeploy.Options{Logger: logger}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = cli.Ping(pctx)
		cancel()
		if err == nil {
			opts.Docker = cli
			return awsdeploy.New(opts), func() { cli.Close() }
		}
		cli.Close()
	}
	fmt.Fprintf(stderr, "note: no Docker engine answers (%v): ecr-push steps can only find images already in ECR\n", err)
	return awsdeploy.New(opts), func() {}
}

// dryRunAWS stands in for slipway/aws on a developer's machine: unless
// told --deploy, `slipway run` does not deploy, so each step says what
// the server would do.
type dryRunAWS struct{}

func (dryRunAWS) RunNative(ctx context.Context, run *engine.NativeRun) (engine.Outputs, error) {
	s := run.Step
	keys := slices.Sorted(maps.Keys(s.Params))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%q", k, s.Params[k])
	}
	_, err := fmt.Fprintf(run.Log, "%s %s (dry run: slipway run does not deploy):%s\n", s.Orb, s.Command, b.String())
	return nil, err
}
