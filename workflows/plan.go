package workflows

import "time"

// Job types, as CircleCI names them in a workflow.
const (
	JobBuild    = "build"
	JobApproval = "approval"
	JobNoOp     = "no-op"
)

// Job statuses. The first five are the ones a `requires` entry may name;
// JobTerminal stands for any of them.
const (
	StatusSuccess      = "success"
	StatusFailed       = "failed"
	StatusCanceled     = "canceled"
	StatusNotRun       = "not_run"
	StatusUnauthorized = "unauthorized"
	StatusTerminal     = "terminal"
)

// StatusSkipped is how a job ends that will never run because a job it
// requires went a way its `requires` entry excludes while nothing went
// wrong: a `failed` form after a success, or a plain requires on a job
// that was itself skipped. Unlike not_run (a job behind a failed,
// canceled or rejected one) it leaves its workflow's outcome alone. No
// `requires` entry names it: CircleCI reports such jobs as not_run, so
// the not_run and terminal forms accept it.
const StatusSkipped = "skipped"

// Trigger is what started a pipeline: the values that `pipeline.*`
// interpolation, workflow conditions and filters see.
type Trigger struct {
	ID           string // pipeline.id
	Number       int    // pipeline.number
	ProjectURL   string // pipeline.project.git_url
	ProjectType  string // pipeline.project.type, "github" by default
	Branch       string // pipeline.git.branch; empty for a tag
	Tag          string // pipeline.git.tag; empty for a branch
	Revision     string // pipeline.git.revision
	BaseRevision string // pipeline.git.base_revision
	Source       string // pipeline.trigger_source: "webhook", "api", "chat"
	// Parameters are pipeline parameter values given by whoever triggered
	// the pipeline; they are checked against the config's declarations.
	// Values are strings (as typed on a command line) or already-typed
	// bool/int values.
	Parameters map[string]any
	// Deploy is set on pipelines started from chat (/deploy, /rollback).
	Deploy *DeployValues
}

// DeployValues are the `pipeline.deploy.*` values of a chat-started pipeline.
type DeployValues struct {
	Environment string
	Version     string
	Rollback    bool
}

// Plan is what runs for one trigger: the workflows whose conditions held,
// each with the jobs that passed their filters, in dependency order.
type Plan struct {
	Workflows []*PlannedWorkflow `json:"workflows"`
	// Setup marks the plan of a setup config (`setup: true`, CircleCI's
	// dynamic configuration): its one workflow's jobs may continue the
	// pipeline with another config (continuation/continue), which the
	// engine then starts.
	Setup bool `json:"setup,omitempty"`
}

// PlannedWorkflow is one workflow of a plan.
type PlannedWorkflow struct {
	Name string        `json:"name"`
	Jobs []*PlannedJob `json:"jobs"`
}

// PlannedJob is one node of a workflow's DAG.
type PlannedJob struct {
	// Name is the job's name in the workflow, after `name:` and matrix
	// expansion; unique within the workflow.
	Name string `json:"name"`
	// Job is the definition it invokes; orb jobs as "orb/job".
	Job  string `json:"job"`
	Type string `json:"type"` // JobBuild, JobApproval or JobNoOp
	// Requires maps each upstream job's name to the statuses that satisfy
	// this job (CircleCI's status forms; plain requires mean "success").
	Requires map[string][]string `json:"requires"`
	Context  []string            `json:"context"`
	// SerialGroup names the job's serial group, pipeline values
	// interpolated: the jobs of a group run one at a time, across
	// pipelines, in the order of their pipelines. Empty for most jobs.
	SerialGroup string `json:"serial_group,omitempty"`
	// Spec is what an executor runs; nil for approval and no-op jobs.
	Spec *JobSpec `json:"-"`
}

// JobSpec is a fully compiled job: parameters substituted, commands and
// executors expanded, step conditions decided. Executors run it as is.
type JobSpec struct {
	// SerialGroup is the PlannedJob's, kept with what the job runs so
	// that the engine finds it in its store.
	SerialGroup      string            `json:"serial_group,omitempty"`
	Executor         ExecutorKind      `json:"executor"`
	Docker           []DockerImage     `json:"docker,omitempty"`
	Machine          *MachineSpec      `json:"machine,omitempty"`
	ResourceClass    string            `json:"resource_class,omitempty"`
	Parallelism      int               `json:"parallelism,omitempty"`
	Shell            string            `json:"shell,omitempty"`
	WorkingDirectory string            `json:"working_directory"`
	Environment      map[string]string `json:"environment,omitempty"`
	Steps            []Step            `json:"steps"`
}

// ExecutorKind says where a job runs.
type ExecutorKind string

// Executor kinds a config can ask for.
const (
	ExecutorDocker  ExecutorKind = "docker"
	ExecutorMachine ExecutorKind = "machine"
)

// DockerImage is one entry of a job's `docker:` list; the first is the
// primary container, the rest are services sharing its network.
type DockerImage struct {
	Image       string            `json:"image"`
	Name        string            `json:"name,omitempty"`
	Entrypoint  []string          `json:"entrypoint,omitempty"`
	Command     []string          `json:"command,omitempty"`
	User        string            `json:"user,omitempty"`
	Environment map[string]string `json:"environment,omitempty"`
	Auth        *RegistryAuth     `json:"-"`
}

// RegistryAuth holds registry credentials from a docker image's `auth`.
type RegistryAuth struct {
	Username string
	Password string
}

// MachineSpec is a `machine:` executor. Its ResourceClass and Shell,
// when set, are also the job's, unless the job sets its own.
type MachineSpec struct {
	Image              string `json:"image,omitempty"`
	ResourceClass      string `json:"resource_class,omitempty"`
	Shell              string `json:"shell,omitempty"`
	DockerLayerCaching bool   `json:"docker_layer_caching,omitempty"`
}

// Step is one primitive step of a compiled job. Exactly one field is set.
type Step struct {
	Run                *RunStep               `json:"run,omitempty"`
	Checkout           *CheckoutStep          `json:"checkout,omitempty"`
	SaveCache          *SaveCacheStep         `json:"save_cache,omitempty"`
	RestoreCache       *RestoreCacheStep      `json:"restore_cache,omitempty"`
	PersistToWorkspace *PersistStep           `json:"persist_to_workspace,omitempty"`
	AttachWorkspace    *AttachStep            `json:"attach_workspace,omitempty"`
	StoreArtifacts     *StoreArtifactsStep    `json:"store_artifacts,omitempty"`
	StoreTestResults   *StoreTestResultsStep  `json:"store_test_results,omitempty"`
	SetupRemoteDocker  *SetupRemoteDockerStep `json:"setup_remote_docker,omitempty"`
	AddSSHKeys         *AddSSHKeysStep        `json:"add_ssh_keys,omitempty"`
	Native             *NativeStep            `json:"native,omitempty"`
}

// Step run conditions (`when:` of a step). Every step but
// store_artifacts and store_test_results, which always run, has one;
// empty means WhenOnSuccess.
const (
	WhenOnSuccess = "on_success"
	WhenOnFail    = "on_fail"
	WhenAlways    = "always"
)

// RunStep is a `run` (or the deprecated `deploy`) step.
type RunStep struct {
	Name             string            `json:"name,omitempty"`
	Command          string            `json:"command"`
	Shell            string            `json:"shell,omitempty"`
	Environment      map[string]string `json:"environment,omitempty"`
	Background       bool              `json:"background,omitempty"`
	WorkingDirectory string            `json:"working_directory,omitempty"`
	NoOutputTimeout  time.Duration     `json:"no_output_timeout,omitempty"`
	When             string            `json:"when"`
}

// CheckoutStep copies the commit's source to Path (default: the job's
// working directory).
type CheckoutStep struct {
	Path string `json:"path,omitempty"`
	When string `json:"when,omitempty"`
}

// SaveCacheStep saves Paths under Key, a CircleCI key template.
type SaveCacheStep struct {
	Name  string   `json:"name,omitempty"`
	Key   string   `json:"key"`
	Paths []string `json:"paths"`
	When  string   `json:"when"`
}

// RestoreCacheStep restores the first cache whose key matches one of Keys,
// exactly or by prefix, in order.
type RestoreCacheStep struct {
	Name string   `json:"name,omitempty"`
	Keys []string `json:"keys"`
	When string   `json:"when,omitempty"`
}

// PersistStep stores Paths, relative to Root, in the workflow's workspace.
type PersistStep struct {
	Root  string   `json:"root"`
	Paths []string `json:"paths"`
	When  string   `json:"when,omitempty"`
}

// AttachStep unpacks the workflow's workspace at At.
type AttachStep struct {
	At   string `json:"at"`
	When string `json:"when,omitempty"`
}

// StoreArtifactsStep keeps Path as the job's artifact under Destination.
type StoreArtifactsStep struct {
	Path        string `json:"path"`
	Destination string `json:"destination,omitempty"`
}

// StoreTestResultsStep keeps the test results found under Path.
type StoreTestResultsStep struct {
	Path string `json:"path"`
}

// SetupRemoteDockerStep gives the job a Docker engine to build images.
type SetupRemoteDockerStep struct {
	Version            string `json:"version,omitempty"`
	DockerLayerCaching bool   `json:"docker_layer_caching,omitempty"`
	When               string `json:"when,omitempty"`
}

// AddSSHKeysStep installs the server's SSH keys with these fingerprints.
type AddSSHKeysStep struct {
	Fingerprints []string `json:"fingerprints,omitempty"`
	When         string   `json:"when,omitempty"`
}

// NativeStep is a command of a built-in orb (slipway/aws, slipway/slack),
// carried out by slipway itself rather than by a shell in the container.
type NativeStep struct {
	Orb     string            `json:"orb"`     // "slipway/aws"
	Command string            `json:"command"` // "ecr-push"
	Params  map[string]string `json:"params"`
	When    string            `json:"when"`
}
