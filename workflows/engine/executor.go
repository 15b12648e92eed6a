package engine

import (
	"context"
	"io"
	"time"

	"github.com/slipway-ci/slipway/workflows"
)

// Executor runs the steps of one job attempt somewhere: on the host, in
// Docker containers, later elsewhere.
//
// The engine drives it in this order:
//
//  1. Run is called once per attempt, with an ID never used before. It
//     returns when every step has finished or ctx is canceled. A failing
//     step is a result (JobResult.Status failed), not an error; an error
//     means the executor could not run the job at all (no engine, image
//     missing, disk full) and the engine marks the job failed with it.
//     Cancelling ctx stops the running step and, after `when: always`
//     steps are skipped, returns a result with Status canceled.
//  2. Cleanup removes whatever an attempt left behind (containers,
//     folders). The engine calls it after a restart for attempts that were
//     running when the process died. It must be safe to call repeatedly,
//     concurrently with other attempts' Run, and for IDs it never saw.
type Executor interface {
	Run(ctx context.Context, job *JobRun, log io.Writer) (JobResult, error)
	Cleanup(ctx context.Context, attemptID string) error
}

// JobRun is one attempt of a job, with everything an executor needs.
type JobRun struct {
	ID         string // attempt ID: unique, safe in file names and labels
	PipelineID string
	WorkflowID string
	JobName    string // name in the workflow
	Spec       *workflows.JobSpec
	// Env holds the variables the engine sets: CIRCLE_*, CI, and the
	// job's contexts. A job's own `environment` and a step's override them.
	Env    map[string]string
	Source Source
	// Workspace is the workflow's workspace folder, shared by its jobs
	// through persist_to_workspace and attach_workspace. CacheDir holds
	// save_cache archives shared by the project's jobs; OutputDir this
	// attempt's artifacts and test results. Each folder is made by
	// whoever first stores something in it.
	Workspace string
	CacheDir  string
	OutputDir string
	// Native carries out the job's NativeSteps; the engine sets it.
	// Executors run every other step themselves.
	Native NativeRunner
	// Restore, on a rollback's deploy job, holds what the release it goes
	// back to shipped there (image, version label, function versions:
	// the outputs its native steps reported), for native steps to point
	// the environment back at instead of building again; nil otherwise.
	Restore Outputs
}

// NativeRunner carries out a command of a built-in orb (slipway/aws,
// slipway/slack) for a job's attempt, writing what it does to its log.
// An error fails the step; the executor decides nothing else about it, so
// that native steps keep their place and `when` among the job's steps.
// What it reports (an image's digest, a version label) is stored with the
// attempt when it ends, in the same transaction.
type NativeRunner interface {
	RunNative(ctx context.Context, run *NativeRun) (Outputs, error)
}

// NativeRun is one native step of an attempt, as its executor hands it
// over: the step with its parameters, the environment a run step would
// see there, and the job's files.
type NativeRun struct {
	Job  *JobRun
	Step *workflows.NativeStep
	// Env is the step's environment: the engine's variables, the image's
	// and the job's `environment`.
	Env map[string]string
	// Files reads the job's files where its steps see them (in the
	// container, for the docker executor).
	Files Files
	// Log is the job's log; secrets are masked on their way through it.
	Log io.Writer
}

// Files reads a job's files.
type Files interface {
	// Tar streams the file or folder at path as a tar archive, its
	// entries named relative to path's parent folder. A relative path is
	// relative to the job's working directory; `~` is the job's home.
	Tar(ctx context.Context, path string) (io.ReadCloser, error)
}

// Outputs are what native steps report, by name: "ecr.image",
// "beanstalk.backend/backend-app.version", ... They are stored with the
// attempt, and a release gathers those of its deploy jobs.
type Outputs map[string]string

// Source says where `checkout` finds the commit's files: a local git
// repository and a revision in it, or a tarball of the tree. A source of
// a forge's repository (Repo set, neither GitDir nor Tarball) is fetched
// by the engine's SourceFetcher before a job that checks it out runs.
type Source struct {
	GitDir   string
	Revision string
	Tarball  string `json:",omitempty"` // path to a .tar.gz of the tree, as GitHub serves it
	Repo     string `json:",omitempty"` // "owner/name" at the forge
}

// SourceFetcher makes a forge's source ready for `checkout` on this host:
// it fetches the commit's tarball (once per commit) and says where it
// is. An error fails the job that needed it, with the reason.
type SourceFetcher interface {
	FetchSource(ctx context.Context, src Source) (Source, error)
}

// JobResult is how an attempt ended.
type JobResult struct {
	Status   string // StatusSuccess, StatusFailed or StatusCanceled
	ExitCode int    // of the step that failed, 0 on success
	Reason   string // why it failed when no exit code says it: "no output for 10m0s"
	Steps    []StepResult
}

// StepResult is how one step ended.
type StepResult struct {
	Name     string
	Status   string // success, failed, canceled, or not_run when `when` skipped it
	ExitCode int
	Started  time.Time
	Finished time.Time
}
