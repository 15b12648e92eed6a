// Package local runs a job's steps on the host, in a folder of its own,
// for `slipway run` and for `machine` jobs where the operator allows it.
//
// Each attempt gets an empty folder under Options.Dir, its home:
//
//	<Dir>/<attempt ID>/          HOME, and what `~` means in working_directory and paths
//	<Dir>/<attempt ID>/project/  the default working_directory (~/project)
//	<Dir>/.steps/<pid>-<n>       the command of a running step, passed to its shell as a file
//	<Dir>/.trash/<pid>-<n>       a finished attempt's folder, being deleted or emptied (see trash)
//	<Dir>/.free/<pid>-<n>        an emptied home, for another attempt
//	<Dir>/.running/<pid>-<n>     what a running attempt holds, for whoever outlives it (see record)
//	<Dir>/.users/<uid>           a lock held while an attempt runs as that user (Options.Users)
//
// HOME points at the attempt's folder so that `cd ~/project` in a command
// and `working_directory: ~/project` agree, and so that jobs do not share
// or change the operator's own dotfiles. Step files and records are
// reused from attempt to attempt, not made and removed with each. An
// absolute working_directory or path is a host path, shared with
// everything else on the host: the local executor isolates jobs by
// folder, user and cgroup, not by namespace. It is not a sandbox: a job
// sees the host's file system, network and processes as its user may.
//
// What it does isolate:
//
//   - A job's processes, in a cgroup per attempt where the host lets
//     slipway make one (see cgroups): the job's end, a cancel, the
//     engine's Cleanup after a crash and the next executor's start kill
//     them all, however they detached; limits (processes, and memory and
//     CPU by resource_class) apply there. Elsewhere they are found by
//     process group and by SLIPWAY_ATTEMPT in their environment, which a
//     process that leaves its session and drops the variable escapes.
//   - slipway's own process: non-dumpable (Protect), so that no process
//     of its user reads its environment or memory; and, when slipway
//     runs as root, jobs run as Options.User or one of Options.Users,
//     never as root unless AllowRoot says so. The executor's own work in
//     a job's folders (checkout, caches, workspaces, artifacts) runs with
//     the job's user's rights.
//   - Jobs from each other, when each runs as a user of its own
//     (Options.Users): their homes and /proc/PID/environ, where their
//     contexts' secrets are, are closed to each other. Jobs sharing a
//     user can read both while they run.
//
// Jobs see only the variables CircleCI jobs see (the engine's CIRCLE_*
// and context variables, the job's and step's `environment`) plus PATH,
// HOME and the locale from the host, USER and LOGNAME (the job's user's,
// where slipway switches users), CIRCLE_WORKING_DIRECTORY, and
// SLIPWAY_ATTEMPT — never the rest of slipway's own environment, which
// holds its Slack, GitHub and AWS credentials.
//
// Background steps are not watched for silence: they are usually servers
// that print nothing once up, and the job's end stops them.
//
// The job log gets each step's output line by line as it is printed,
// stdout and stderr together, after a "==> <step name>" line; a step
// that fails without an exit code to say why gets a "==> <reason>" line.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/slipway-ci/slipway/executors"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

var _ engine.Executor = (*Executor)(nil)

// Options configures an Executor.
type Options struct {
	// Dir holds one folder per running attempt. Required. When jobs run
	// as User or Users, every folder above it must let them through.
	Dir    string
	Logger *slog.Logger // slog.Default() when nil
	// NoOutputTimeout applies to run steps that set none;
	// executors.DefaultNoOutputTimeout when zero.
	NoOutputTimeout time.Duration
	// Size limits; the executors package's defaults when zero.
	CacheMaxBytes     int64
	WorkspaceMaxBytes int64
	OutputMaxBytes    int64
	// Now is the clock for cache and workspace ordering; time.Now when nil.
	Now func() time.Time
	// RemoteDocker lets setup_remote_docker succeed: a job's commands run
	// on this host already and reach its Docker engine as the user
	// running them may. Off, the step fails: the config expects an
	// engine the operator did not offer.
	RemoteDocker bool

	// User is who jobs run as when slipway runs as root: a name from the
	// user database, or "uid" or "uid:gid" (a uid the database does not
	// know needs its gid). Jobs get its user and group IDs and its
	// supplementary groups; their HOME stays the attempt's folder, which
	// they own. A root job could read every process's environment,
	// slipway's tokens included, and move itself out of its cgroup. When
	// slipway does not run as root, User must be empty or its own user.
	//
	// Jobs that share a user can read each other's files and, while they
	// run, each other's /proc/PID/environ, where their contexts' secrets
	// are. Users avoids that.
	User string
	// Users, instead of User, gives each running attempt a user of its own
	// among these (written as User is), so that jobs running at the same
	// time cannot read each other's processes or homes. An attempt waits
	// while all of them have one. Slipway processes sharing these users
	// must share Dir: they claim them by locks in <Dir>/.users.
	Users []string
	// AllowRoot lets jobs run as root when slipway does and names no
	// User: for `slipway run` on a developer's machine, where the jobs
	// are the developer's own. Without it, New refuses to run root jobs.
	AllowRoot bool

	// MaxProcesses bounds the processes and threads of one attempt, where
	// the host has a pids cgroup controller for slipway;
	// DefaultMaxProcesses when zero, no limit when negative.
	MaxProcesses int
	// ResourceClasses maps a job's resource_class to memory and CPU
	// limits, applied where the host has those cgroup controllers for
	// slipway; executors.DefaultResourceClasses when nil. Where they
	// apply, a class missing from it fails the job, as in the docker
	// executor.
	ResourceClasses map[string]executors.Resources
	// DefaultResourceClass applies to jobs that name none. Empty, such
	// jobs get no memory or CPU limit.
	DefaultResourceClass string
}

// DefaultMaxProcesses is an attempt's process limit when Options set none:
// ample for parallel builds and test runs, and it stops a fork bomb.
const DefaultMaxProcesses = 4096

// Executor runs jobs on the host. It is safe for concurrent use: each
// attempt has its own folder and processes.
type Executor struct {
	opts    Options
	logger  *slog.Logger
	shell   string // CircleCI's default shell on this host
	folder  *folder
	scripts *scripts
	trash   *trash
	users   *users   // nil: jobs run as this process's user
	cg      *cgroups // nil: jobs are tracked by process group
}

// logOnce says once per process how jobs' processes are tracked.
var logOnce sync.Once

// New returns an Executor keeping attempt folders under opts.Dir. It
// stops what the attempts of dead slipway processes left running in that
// folder (see record).
func New(opts Options) (*Executor, error) {
	if opts.Dir == "" {
		return nil, errors.New("local: no folder for attempts")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	opts.Dir = dir
	if opts.NoOutputTimeout <= 0 {
		opts.NoOutputTimeout = executors.DefaultNoOutputTimeout
	}
	if opts.MaxProcesses == 0 {
		opts.MaxProcesses = DefaultMaxProcesses
	}
	if opts.ResourceClasses == nil {
		opts.ResourceClasses = executors.DefaultResourceClasses
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("executor", "local")
	us, err := jobsUsers(opts)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	if err := Protect(); err != nil {
		logger.Warn("slipway's own process stays readable by its user's processes", "err", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	f, err := folderIn(dir, logger)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	if us != nil {
		// The users' shells read their step files by path.
		if err := os.Chmod(f.scripts.dir, 0o711); err != nil {
			return nil, fmt.Errorf("local: %w", err)
		}
		for _, u := range us.all {
			if err := u.checkReach(f.scripts.dir); err != nil {
				return nil, fmt.Errorf("local: %w", err)
			}
		}
	}
	cg, why := findCgroups()
	logOnce.Do(func() {
		if cg != nil {
			logger.Info("each attempt's processes run in a cgroup of its own", cg.describe()...)
		} else {
			logger.Warn("no cgroup for attempts: their processes are tracked by process group and environment, and one that leaves its session and drops SLIPWAY_ATTEMPT outlives its job; jobs get no limits", "why", why)
		}
		if us == nil && os.Geteuid() == 0 {
			logger.Info("jobs run as root (AllowRoot): they can read every process's environment and memory, slipway's included")
		}
	})
	_, err = os.Stat("/bin/bash")
	return &Executor{
		opts:    opts,
		logger:  logger,
		shell:   executors.DefaultShell(err == nil),
		folder:  f,
		scripts: f.scripts,
		trash:   f.trash,
		users:   us,
		cg:      cg,
	}, nil
}

// jobsUsers are who opts make jobs run as: nil for this process's user.
func jobsUsers(opts Options) (*users, error) {
	specs, perAttempt := opts.Users, true
	switch {
	case opts.User != "" && len(opts.Users) > 0:
		return nil, errors.New("name the jobs' User or their Users, not both")
	case len(opts.Users) == 0 && opts.User != "":
		specs, perAttempt = []string{opts.User}, false
	}
	if os.Geteuid() != 0 {
		for _, spec := range specs {
			u, err := lookupUser(spec)
			if err != nil {
				return nil, err
			}
			if u.uid != os.Geteuid() {
				return nil, fmt.Errorf("jobs can run as %s only when slipway runs as root", u)
			}
		}
		return nil, nil
	}
	if len(specs) == 0 {
		if opts.AllowRoot {
			return nil, nil
		}
		return nil, errors.New("slipway runs as root: name the unprivileged user jobs run as (Options.User), or allow root jobs (AllowRoot) where the jobs are the machine owner's own")
	}
	return newUsers(specs, perAttempt, filepath.Join(opts.Dir, ".users"))
}

// attemptEnv marks every process of an attempt, so that the job's end,
// and Cleanup after a restart, find its processes where there are no
// cgroups to hold them.
const attemptEnv = "SLIPWAY_ATTEMPT"

// Run runs the attempt's steps in order. See engine.Executor.
func (e *Executor) Run(ctx context.Context, job *engine.JobRun, log io.Writer) (engine.JobResult, error) {
	// Attempt IDs are folder names here.
	if err := executors.CheckAttemptID(job.ID); err != nil {
		return engine.JobResult{}, fmt.Errorf("local: %w", err)
	}
	if job.Spec == nil {
		return engine.JobResult{}, fmt.Errorf("local: job %q has no spec", job.JobName)
	}
	if !e.folder.start(job.ID) {
		return engine.JobResult{}, fmt.Errorf("local: attempt %s is already running", job.ID)
	}
	defer e.folder.done(job.ID)
	j, err := e.newJob(ctx, job, log)
	if err != nil {
		if ctx.Err() != nil {
			return engine.JobResult{Status: workflows.StatusCanceled, Reason: "canceled"}, nil
		}
		return engine.JobResult{}, err
	}
	defer j.end()
	return j.runSteps(ctx), nil
}

// Cleanup kills what is left of an attempt's processes and removes its
// cgroups and folder. It is safe to call repeatedly, concurrently with
// other attempts' Run, and for attempts it never saw. An attempt that a
// live process runs, this one or another, is left alone, with an error.
//
// What is left is found from the attempt's record (see record): its
// cgroups, or without them its process groups, and the processes that
// carry its marker.
func (e *Executor) Cleanup(ctx context.Context, attemptID string) error {
	if err := executors.CheckAttemptID(attemptID); err != nil {
		return fmt.Errorf("local: cleanup: %w", err)
	}
	if e.folder.isRunning(attemptID) {
		return fmt.Errorf("local: cleanup %s: the attempt is running in this process", attemptID)
	}
	if err := e.cleanup(attemptID); err != nil {
		return fmt.Errorf("local: cleanup %s: %w", attemptID, err)
	}
	return nil
}

// cleanup removes an attempt that this process does not run, unless a
// live process does.
func (e *Executor) cleanup(attemptID string) error {
	found, err := e.folder.find(attemptID)
	if err != nil {
		return err
	}
	for _, r := range found {
		if r.owner != self() && r.owner.alive() {
			return fmt.Errorf("the attempt is running in process %d", r.owner.pid)
		}
	}
	if len(found) == 0 {
		// No record: what an older slipway left, found by its marker.
		return e.folder.remove(&record{attempt: attemptID}, "", true)
	}
	var errs []error
	for at, r := range found {
		errs = append(errs, e.folder.remove(r, at, true))
	}
	return errors.Join(errs...)
}

// Close removes the cgroups kept for later attempts and waits, up to
// ctx's end, for those of finished attempts to be removed, which happens
// in the background. Call it once every Run has returned, before the
// process exits; what it leaves, the next slipway process removes. The
// executors of one process share that work: Close does theirs too.
func (e *Executor) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		if e.cg != nil {
			if err := e.cg.drain(time.Minute); err != nil {
				e.logger.Warn("removing kept cgroups", "err", err)
			}
		}
		e.folder.reaper.wait()
		// The last homes are emptied for the next process, or removed.
		e.trash.wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("local: close: %w", ctx.Err())
	}
}

// job is one attempt being run.
type job struct {
	e      *Executor
	run    *engine.JobRun
	log    io.Writer
	logger *slog.Logger

	home, workdir string            // home is the attempt's folder
	base          map[string]string // what the executor provides under the job's env
	user          *jobUser          // nil: this process's user
	release       func()            // ends the attempt's claim on its user
	record        *recordFile       // the attempt's record
	cgroup        *attemptCgroup    // nil: tracked by process group
	sincePID      int               // without cgroups: lastPID before the job's first process

	mu         sync.Mutex
	background []*process // background steps, stopped at the job's end
}

func (e *Executor) newJob(ctx context.Context, run *engine.JobRun, log io.Writer) (*job, error) {
	lim, err := e.limits(run.Spec.ResourceClass)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	var u *jobUser
	release := func() {}
	if e.users != nil {
		if u, release, err = e.users.take(ctx, log); err != nil {
			return nil, fmt.Errorf("local: %w", err)
		}
	}
	dir := filepath.Join(e.opts.Dir, run.ID)
	home := os.FileMode(0o755)
	if u != nil {
		home = 0o700 // the job's user's
	}
	// Jobs of this process's user take an emptied home if there is one.
	reused := u == nil && e.trash.reuse(dir)
	if !reused {
		err = os.Mkdir(dir, home)
	}
	if errors.Is(err, fs.ErrExist) {
		// A folder left by an earlier Run with this ID (the engine
		// promises none, but a crash can leave one) must not leak into
		// a fresh job.
		if err := e.cleanup(run.ID); err != nil {
			release()
			return nil, fmt.Errorf("local: %s: %w", run.ID, err)
		}
		err = os.Mkdir(dir, home)
	}
	if err != nil {
		release()
		return nil, fmt.Errorf("local: %w", err)
	}
	j := &job{
		e:       e,
		run:     run,
		log:     executors.NewSyncWriter(log),
		logger:  e.logger.With("attempt", run.ID, "job", run.JobName),
		home:    dir,
		user:    u,
		release: release,
	}
	if err := j.track(lim); err != nil {
		j.end()
		return nil, fmt.Errorf("local: %w", err)
	}
	if err := j.makeHome(reused); err != nil {
		j.end()
		return nil, fmt.Errorf("local: %w", err)
	}
	j.base = map[string]string{
		"HOME":                     j.home,
		"PATH":                     "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"CIRCLE_WORKING_DIRECTORY": j.workdir,
	}
	// SHELL too: without it, bash looks its user up (nsswitch.conf,
	// nscd, /etc/passwd) as it starts, a dozen system calls a step.
	for _, k := range []string{"PATH", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "SHELL"} {
		if v, ok := os.LookupEnv(k); ok {
			j.base[k] = v
		}
	}
	if u != nil {
		delete(j.base, "USER")
		delete(j.base, "LOGNAME")
		delete(j.base, "SHELL") // the user's own, which bash finds
		if u.name != "" {
			j.base["USER"], j.base["LOGNAME"] = u.name, u.name
		}
	}
	return j, nil
}

// makeHome gives the job its home and working directory, which exists
// from the start as on CircleCI, both its user's. A reused home (see
// trash) holds an empty project folder already.
func (j *job) makeHome(reused bool) error {
	if err := j.user.chown(j.home); err != nil {
		return err
	}
	wd := j.run.Spec.WorkingDirectory
	if wd == "" {
		wd = "~/project"
	}
	j.workdir = j.resolve(j.home, wd)
	project := filepath.Join(j.home, "project")
	if j.workdir == project {
		if reused {
			return nil
		}
		// The usual case, in a folder no process of the job has
		// touched yet: made here, cheaper than as the user.
		if err := os.Mkdir(j.workdir, 0o755); err != nil {
			return err
		}
		return j.user.chown(j.workdir)
	}
	if reused {
		if err := os.Remove(project); err != nil {
			return err
		}
	}
	return j.user.do(func() error { return os.MkdirAll(j.workdir, 0o755) })
}

// track writes the attempt's record and gives it cgroups, kept ones
// where it can (see cgroups.pooled).
func (j *job) track(lim limits) (err error) {
	r := &record{attempt: j.run.ID, owner: self()}
	cg := j.e.cg
	switch {
	case cg == nil:
		j.sincePID = lastPID()
	case cg.pooled(lim):
		if kept := cg.take(lim); kept != nil {
			j.cgroup, r.cgroup = kept, kept.dirs
			break
		}
		fallthrough
	default:
		r.cgroup = cg.dirs(cg.name(), lim)
	}
	if j.record, err = j.e.folder.records.take(r); err != nil {
		if j.cgroup != nil && !cg.put(j.cgroup) {
			j.cgroup.close()
			j.e.folder.reaper.add(j.cgroup.dirs, func() {})
		}
		j.cgroup = nil
		return err
	}
	if cg != nil && j.cgroup == nil {
		j.cgroup, err = cg.create(r.cgroup, lim)
	}
	return err
}

// limits are the cgroup limits of a job of this resource class.
func (e *Executor) limits(class string) (limits, error) {
	lim := limits{pids: max(e.opts.MaxProcesses, 0)}
	if e.cg == nil {
		return lim, nil
	}
	_, memory := e.cg.limits["memory"]
	_, cpu := e.cg.limits["cpu"]
	if class == "" {
		class = e.opts.DefaultResourceClass
	}
	if class == "" || !memory && !cpu {
		return lim, nil
	}
	r, ok := e.opts.ResourceClasses[class]
	if !ok {
		return limits{}, fmt.Errorf("resource_class %q is not offered by this server", class)
	}
	if memory {
		lim.memory = r.Memory
	}
	if cpu {
		lim.cpus = min(r.CPUs, float64(runtime.NumCPU()))
	}
	return lim, nil
}

// end stops every process the job started and removes its folder; its
// cgroups and record go in the background.
func (j *job) end() {
	j.stopProcesses()
	// The user is free for another attempt once nothing of this one runs
	// as it: every process is killed, and SIGKILLed processes run none of
	// their code again.
	j.release()
	if err := j.e.trash.discard(j.home, j.user == nil); err != nil {
		j.logger.Warn("removing the attempt folder", "err", err)
	}
	if j.record == nil {
		return
	}
	records, record := j.e.folder.records, j.record
	if j.cgroup != nil && j.cgroup.pooled {
		// Blank first: no record may name a cgroup that another
		// attempt gets. What a crash then leaves in it, the next
		// process's sweep finds by its name.
		records.give(record)
		if !j.e.cg.put(j.cgroup) {
			j.cgroup.close()
			j.e.folder.reaper.add(j.cgroup.dirs, func() {})
		}
		return
	}
	var dirs []string
	if j.cgroup != nil {
		j.cgroup.close()
		dirs = j.cgroup.dirs
	}
	j.e.folder.reaper.add(dirs, func() { records.give(record) })
}

// resolve turns a path of the config into a host path: `~` is the job's
// home, a relative path is relative to dir.
func (j *job) resolve(dir, p string) string {
	switch {
	case p == "~":
		return j.home
	case strings.HasPrefix(p, "~/"):
		return filepath.Join(j.home, p[2:])
	case filepath.IsAbs(p):
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

// runSteps runs every step and says how the job ended.
func (j *job) runSteps(ctx context.Context) engine.JobResult {
	res := engine.JobResult{Status: workflows.StatusSuccess}
	failed, canceled := false, false
	for i, step := range j.run.Spec.Steps {
		sr := engine.StepResult{Name: executors.StepName(step), Status: workflows.StatusNotRun}
		if canceled || ctx.Err() != nil || !executors.ShouldRun(executors.StepWhen(step), failed) {
			// After a cancel nothing more runs, `when: always` included:
			// whoever canceled wants the job stopped now.
			canceled = canceled || ctx.Err() != nil
			res.Steps = append(res.Steps, sr)
			continue
		}
		fmt.Fprintf(j.log, "==> %s\n", sr.Name)
		sr.Started = time.Now()
		out := j.step(ctx, i, step)
		sr.Finished = time.Now()
		sr.Status, sr.ExitCode = out.status, out.exitCode
		if out.reason != "" {
			fmt.Fprintf(j.log, "==> %s\n", out.reason)
		}
		res.Steps = append(res.Steps, sr)
		switch out.status {
		case workflows.StatusCanceled:
			canceled = true
		case workflows.StatusFailed:
			if !failed {
				res.ExitCode, res.Reason = out.exitCode, out.reason
			}
			failed = true
		}
	}
	switch {
	case canceled:
		res.Status = workflows.StatusCanceled
	case failed:
		res.Status = workflows.StatusFailed
	}
	return res
}

// outcome is how one step ended.
type outcome struct {
	status   string
	exitCode int
	reason   string // why, when the exit code does not say
}

func fail(format string, args ...any) outcome {
	return outcome{status: workflows.StatusFailed, exitCode: -1, reason: fmt.Sprintf(format, args...)}
}

var success = outcome{status: workflows.StatusSuccess}

func (j *job) step(ctx context.Context, i int, s workflows.Step) outcome {
	switch {
	case s.Run != nil:
		return j.runStep(ctx, i, s.Run)
	case s.Checkout != nil:
		return j.checkout(ctx, s.Checkout)
	case s.SaveCache != nil:
		return j.saveCache(s.SaveCache)
	case s.RestoreCache != nil:
		return j.restoreCache(s.RestoreCache)
	case s.PersistToWorkspace != nil:
		return j.persist(s.PersistToWorkspace)
	case s.AttachWorkspace != nil:
		return j.attach(s.AttachWorkspace)
	case s.StoreArtifacts != nil:
		return j.storeArtifacts(s.StoreArtifacts)
	case s.StoreTestResults != nil:
		return j.storeTestResults(s.StoreTestResults)
	case s.SetupRemoteDocker != nil:
		if !j.e.opts.RemoteDocker {
			return fail("setup_remote_docker: this executor gives jobs no Docker engine (the local executor's RemoteDocker option is off)")
		}
		fmt.Fprintln(j.log, "Jobs of the local executor use this host's Docker engine")
		return success
	case s.AddSSHKeys != nil:
		return fail("add_ssh_keys: the local executor has no SSH keys configured to install")
	case s.Native != nil:
		files := executors.HostFiles{Resolve: func(p string) string { return j.resolve(j.workdir, p) }}
		if err := executors.RunNative(ctx, j.run, s.Native, executors.StepEnv(j.base, j.run, nil), files, j.log); err != nil {
			return fail("%v", err)
		}
		return success
	}
	return fail("step %d: empty step", i+1)
}
