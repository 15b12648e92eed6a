package engine

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/slipway-ci/slipway/workflows"
)

// States a job passes through before it ends with one of the statuses a
// `requires` entry may name (StatusSuccess ... StatusUnauthorized).
const (
	// StatusBlocked: waiting for the jobs it requires.
	StatusBlocked = "blocked"
	// StatusQueued: ready, waiting for a free slot or its environment's lock.
	StatusQueued = "queued"
	// StatusRunning: an attempt is in an executor.
	StatusRunning = "running"
	// StatusOnHold: an approval job waiting for a decision; a workflow or
	// pipeline with nothing left to do but wait for one.
	StatusOnHold = "on_hold"
	// StatusError: a pipeline whose config could not be loaded or
	// planned; it has no workflows.
	StatusError = "error"
)

// Approval decisions.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalRejected = "rejected"
	ApprovalExpired  = "expired"
	ApprovalCanceled = "canceled"
)

// ErrNotFound is returned (wrapped) by stores and the engine for a
// pipeline, job or approval that does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned (wrapped) by CreatePipeline for an ID in use.
var ErrExists = errors.New("already exists")

// Terminal reports whether a job status is final.
func Terminal(status string) bool {
	switch status {
	case workflows.StatusSuccess, workflows.StatusFailed, workflows.StatusCanceled, workflows.StatusNotRun, workflows.StatusUnauthorized, workflows.StatusSkipped:
		return true
	}
	return false
}

// NewPipeline is what a trigger asks to run: the plan and who and what it is for.
type NewPipeline struct {
	ID     string
	App    string
	Repo   string // "owner/name"
	Author string // who pushed or typed the command
	// Authors are everyone the change is from, as chat identities where
	// they could be matched (UnknownAuthor where not); none of them may
	// approve it where self-approval is forbidden. Default: Author.
	Authors []string
	Trigger workflows.Trigger
	Source  Source
	Plan    *workflows.Plan
	// Envs maps "workflow/job" to the environment of App that the job
	// deploys to; the engine fills it from its job contexts.
	Envs map[string]string
	// IDs of the workflows and jobs, in plan order; the engine fills them.
	WorkflowIDs []string
	JobIDs      [][]string
	Created     time.Time
	// Error, when set, is why the config could not be planned: the
	// pipeline is stored ended, in StatusError, with no workflows.
	Error string
	// RerunOf is the number of the pipeline this one runs again.
	RerunOf int
	// Commit describes the commit for people.
	Commit CommitInfo
}

// CommitInfo is what people see of a pipeline's commit.
type CommitInfo struct {
	Title  string `json:"title,omitempty"`  // the message's first line
	Author string `json:"author,omitempty"` // the commit's author, as the forge names them
	URL    string `json:"url,omitempty"`    // the commit's page
}

// PipelineRecord is a pipeline as stored.
type PipelineRecord struct {
	ID       string
	App      string
	Number   int
	Repo     string
	Author   string
	Authors  []string // see NewPipeline.Authors
	Trigger  workflows.Trigger
	Source   Source
	Status   string
	Error    string // why it ended in StatusError
	RerunOf  int    // the number of the pipeline it runs again
	Commit   CommitInfo
	Created  time.Time
	Finished time.Time
}

// AuthorList is everyone the change is from.
func (p *PipelineRecord) AuthorList() []string {
	if len(p.Authors) > 0 {
		return p.Authors
	}
	return []string{p.Author}
}

// WorkflowRecord is a workflow of a pipeline as stored.
type WorkflowRecord struct {
	ID         string
	PipelineID string
	Name       string
	Status     string
	Canceled   bool // a cancel was asked; nothing new starts
	Created    time.Time
	Finished   time.Time
}

// JobRecord is a job of a workflow as stored, with its latest attempt.
type JobRecord struct {
	ID         string
	PipelineID string
	WorkflowID string
	Name       string
	Job        string
	Type       string
	Requires   map[string][]string
	Context    []string
	Env        string // environment of the pipeline's app it deploys to
	Status     string
	Reason     string // why it failed or waits, in words
	Attempt    int    // number of the latest attempt, 0 before the first
	AttemptID  string
	ExitCode   int
	Started    time.Time
	Finished   time.Time
}

// AttemptRecord is one run of a job in an executor.
type AttemptRecord struct {
	ID         string
	JobID      string
	PipelineID string
	Number     int
	BuildNum   int
	Executor   string
	Status     string
	ExitCode   int
	Reason     string
	Started    time.Time
	Finished   time.Time
	Steps      []StepResult
	// Outputs are what its native steps reported.
	Outputs Outputs
}

// ApprovalRecord is the decision an approval job waits for.
type ApprovalRecord struct {
	ID         int64
	JobID      string
	PipelineID string
	// Envs are the environments downstream jobs deploy to; Approvers
	// who may approve for them.
	Envs      []string
	Approvers Approvers
	AllowSelf bool
	Author    string
	Status    string
	DecidedBy string
	Reason    string
	Created   time.Time
	Decided   time.Time
	Expires   time.Time
}

// Deployment is an app's version that reached an environment.
type Deployment struct {
	ID         string
	App        string
	Env        string
	Commit     string
	Version    string
	PipelineID string
	JobID      string
	AttemptID  string
	StartedBy  string
	ApprovedBy string
	Outcome    string
	Created    time.Time
}

// Release is what one pipeline deployed to one environment, however many
// deploy jobs it took; numbered per environment. History and rollback
// work on releases.
type Release struct {
	ID         string
	App        string
	Env        string
	Number     int
	PipelineID string
	Commit     string
	Version    string
	StartedBy  string
	ApprovedBy string // comma-separated
	// Outcome is StatusRunning while its deploy jobs run, then
	// StatusSuccess when they all succeeded, else StatusFailed (one
	// failed) or StatusCanceled (stopped before they all ran).
	Outcome  string
	Rollback bool // started by /rollback
	// Artifacts are what its deploy jobs' native steps reported: the
	// image, the Beanstalk version label, the Lambda versions a rollback
	// to it points the environment back at.
	Artifacts Outputs
	Created   time.Time
	Finished  time.Time
}

// EnvLock is who holds an environment: a deploy job or a person.
type EnvLock struct {
	App    string
	Env    string
	Holder string // user for a manual lock, job ID otherwise
	Reason string
	Manual bool
	JobID  string
	Since  time.Time
}

// AuditEntry records one decision: who did what to what, and the outcome.
type AuditEntry struct {
	At      time.Time
	Actor   string
	Action  string // "approve", "reject", "cancel", "rerun", "lock", "unlock"
	Subject string
	Detail  string
}

// PipelineState is a pipeline with its workflows and jobs, in plan order.
type PipelineState struct {
	Pipeline  PipelineRecord
	Workflows []WorkflowRecord
	Jobs      []JobRecord
}

// Store keeps the engine's state. Every method that changes state does so
// in one transaction; Update groups several changes in one.
type Store interface {
	// Update runs fn in one write transaction; fn's error rolls it back.
	Update(ctx context.Context, fn func(tx StoreTx) error) error
	// ActivePipelines lists the IDs of unfinished pipelines, oldest first.
	ActivePipelines(ctx context.Context) ([]string, error)
	// PipelineState reads a pipeline, its workflows and jobs.
	PipelineState(ctx context.Context, id string) (*PipelineState, error)
	// Pipeline reads a pipeline's record alone.
	Pipeline(ctx context.Context, id string) (*PipelineRecord, error)
	// JobSpec reads what a job runs; nil for approval and no-op jobs.
	JobSpec(ctx context.Context, jobID string) (*workflows.JobSpec, error)
	// PendingApprovals lists the job IDs of approvals waiting for a decision.
	PendingApprovals(ctx context.Context) ([]string, error)
	// RunningAttempts lists attempts that were left running.
	RunningAttempts(ctx context.Context) ([]AttemptRecord, error)
	// Attempts lists a job's attempts, oldest first.
	Attempts(ctx context.Context, jobID string) ([]AttemptRecord, error)
	// Approval returns the latest approval of an approval job.
	Approval(ctx context.Context, jobID string) (*ApprovalRecord, error)
	// Deployments lists an environment's deployments, newest first.
	Deployments(ctx context.Context, app, env string) ([]Deployment, error)
	// Releases lists an environment's releases, newest first.
	Releases(ctx context.Context, app, env string) ([]Release, error)
	// SetConsumers names the outbox's consumers: every event added from
	// then on waits for each of them, on its own.
	SetConsumers(ctx context.Context, names []string) error
	// DueEvents returns a consumer's undelivered events, oldest first, of
	// the pipelines whose oldest undelivered event is due by now (parked
	// events aside); at most limit.
	DueEvents(ctx context.Context, consumer string, now time.Time, limit int) ([]Event, error)
	// NextEventDue is when a consumer's earliest undelivered event is
	// due; zero when none.
	NextEventDue(ctx context.Context, consumer string) (time.Time, error)
	MarkEventsDelivered(ctx context.Context, consumer string, seqs []int64, at time.Time) error
	DeferEvent(ctx context.Context, consumer string, seq int64, next time.Time, cause string) error
	// ParkEvent sets aside an event its consumer refused for good: it is
	// kept, with the cause, and holds nothing back.
	ParkEvent(ctx context.Context, consumer string, seq int64, cause string) error
	// CreateJobLog opens the log of an attempt for writing.
	CreateJobLog(ctx context.Context, attemptID string) (io.WriteCloser, error)
}

// StoreTx is one write transaction of a Store.
type StoreTx interface {
	// ReserveNumber gives pipeline id the next number of its app, or the
	// one reserved for it before: asking again is harmless.
	ReserveNumber(ctx context.Context, app, id string) (int, error)
	// CreatePipeline stores p with its reserved number (else a new one),
	// and its workflows and jobs (blocked); ErrExists when p.ID is in use.
	CreatePipeline(ctx context.Context, p *NewPipeline) (*PipelineRecord, error)
	PipelineState(ctx context.Context, id string) (*PipelineState, error)
	// Pipeline, Workflow and Job read one record, for decisions that
	// need no more than that.
	Pipeline(ctx context.Context, id string) (*PipelineRecord, error)
	Workflow(ctx context.Context, id string) (*WorkflowRecord, error)
	Job(ctx context.Context, id string) (*JobRecord, error)
	// JobSpec reads what a job runs; nil for approval and no-op jobs.
	JobSpec(ctx context.Context, jobID string) (*workflows.JobSpec, error)
	SetPipelineStatus(ctx context.Context, id, status string, at time.Time) error
	SetWorkflowStatus(ctx context.Context, id, status string, at time.Time) error
	SetWorkflowCanceled(ctx context.Context, id string, canceled bool) error
	// SetJobStatus changes a job that is not running; at sets its end
	// time when status is terminal.
	SetJobStatus(ctx context.Context, jobID, status, reason string, at time.Time) error
	// StartAttempt records a new attempt (its Number and BuildNum
	// assigned here) and marks its job running.
	StartAttempt(ctx context.Context, a *AttemptRecord, app string) error
	// FinishAttempt records how an attempt ended and ends its job.
	FinishAttempt(ctx context.Context, a *AttemptRecord) error
	CreateApproval(ctx context.Context, a *ApprovalRecord) error
	Approval(ctx context.Context, jobID string) (*ApprovalRecord, error)
	DecideApproval(ctx context.Context, a *ApprovalRecord) error
	RecordDeployment(ctx context.Context, d *Deployment) error
	// StartRelease records the release of a pipeline to an environment
	// with the next number there, unless it exists; it returns it.
	StartRelease(ctx context.Context, r *Release) (*Release, error)
	// Release reads the release of a pipeline to an environment; ErrNotFound.
	Release(ctx context.Context, pipelineID, env string) (*Release, error)
	// SaveRelease records a release's outcome, who approved it, when,
	// and its artifacts.
	SaveRelease(ctx context.Context, r *Release) error
	EnvLock(ctx context.Context, app, env string) (*EnvLock, error) // nil when free
	SetEnvLock(ctx context.Context, l *EnvLock) error
	DeleteEnvLock(ctx context.Context, app, env string) error
	// EnqueueDeploy puts a job in its environment's queue; repeating it is harmless.
	EnqueueDeploy(ctx context.Context, app, env, jobID, pipelineID string, at time.Time) error
	// DeployQueue lists the job IDs waiting for an environment, in arrival order.
	DeployQueue(ctx context.Context, app, env string) ([]QueuedDeploy, error)
	DequeueDeploy(ctx context.Context, jobID string) error
	// AddEvents puts events in the outbox and sets their Seq.
	AddEvents(ctx context.Context, events []Event) error
	Audit(ctx context.Context, e AuditEntry) error
	// AfterCommit runs fn once the transaction committed, before any
	// later transaction of the store commits, so that what fns do
	// happens in commit order. fn must not call the store.
	AfterCommit(fn func())
}

// QueuedDeploy is a job waiting for an environment's lock (or a serial
// group's, see serial.go).
type QueuedDeploy struct {
	JobID      string
	PipelineID string
	QueuedAt   time.Time
}
