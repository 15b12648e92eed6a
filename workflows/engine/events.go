package engine

import (
	"context"
	"time"
)

// Event is something the outside world hears about, through the outbox:
// one kind, the pipeline it concerns, and the details of that kind.
type Event struct {
	Seq        int64 // assigned by the store, increasing
	PipelineID string
	// Pipeline is who the pipeline is, on every event, so that a
	// consumer can say which commit an event is about without a lookup.
	Pipeline PipelineRef
	Kind     string
	At       time.Time
	Data     EventData
	Attempts int // deliveries to this consumer tried so far
}

// PipelineRef is a pipeline's identity: what it runs for and who
// started it. It never changes.
type PipelineRef struct {
	ID       string `json:"id"`
	Number   int    `json:"number"`
	App      string `json:"app"`
	Repo     string `json:"repo"`               // "owner/name"
	Revision string `json:"revision"`           // the commit's full SHA
	Branch   string `json:"branch,omitempty"`   // empty for a tag
	Tag      string `json:"tag,omitempty"`      // empty for a branch
	Author   string `json:"author,omitempty"`   // who pushed, or typed the command
	Source   string `json:"source"`             // pipeline.trigger_source: webhook, chat, api, local
	Rollback bool   `json:"rollback,omitempty"` // started by /rollback
	RerunOf  int    `json:"rerun_of,omitempty"` // the number of the pipeline it runs again
}

// Ref is the pipeline's identity.
func (p *PipelineRecord) Ref() PipelineRef {
	t := p.Trigger
	return PipelineRef{ID: p.ID, Number: p.Number, App: p.App, Repo: p.Repo, Revision: t.Revision, Branch: t.Branch,
		Tag: t.Tag, Author: p.Author, Source: t.Source, Rollback: t.Deploy != nil && t.Deploy.Rollback, RerunOf: p.RerunOf}
}

// Event kinds, with the fields of EventData each sets. Workflow, job and
// attempt events name them by Workflow/WorkflowID and Job/JobID.
const (
	// EventPipelineCreated: a pipeline was stored. Actor: its author.
	EventPipelineCreated = "pipeline.created"
	// EventJobStarted: an attempt went to the executor. AttemptID; Env
	// when it deploys.
	EventJobStarted = "job.started"
	// EventJobWaiting: a ready job waits for its environment's lock or
	// queue. Reason says for what; Env.
	EventJobWaiting = "job.waiting"
	// EventJobFinished: a job ended. Status (a terminal status);
	// ExitCode of the failed step; Reason when no exit code says why;
	// AttemptID when it ran; Env when it deploys.
	EventJobFinished = "job.finished"
	// EventApprovalNeeded: an approval job is on hold. Env lists the
	// environments it gates (comma-separated), Approvers who may decide.
	EventApprovalNeeded = "approval.needed"
	// EventApprovalDecided: an approval was approved, rejected, expired
	// or canceled. Status is the decision (ApprovalApproved...), Actor
	// who decided, Reason why when it was not a person.
	EventApprovalDecided = "approval.decided"
	// EventDeployed: a pipeline's release to an environment succeeded,
	// every deploy job there done. Env; Release its number there; Actor
	// who approved it (comma-separated).
	EventDeployed = "deployed"
	// EventWorkflowFinished: a workflow ended. Status.
	EventWorkflowFinished = "workflow.finished"
	// EventPipelineFinished: a pipeline ended. Status; for a pipeline
	// whose config could not be loaded or planned, StatusError and
	// Reason, the error with its position.
	EventPipelineFinished = "pipeline.finished"
	// EventChatMessage: a slipway/slack notify step's message. Message;
	// Channel when it names one other than the app's; AttemptID.
	EventChatMessage = "chat.message"
)

// EventData is an event's details; fields not relevant to its kind are
// empty (see the kinds for which sets what). Each field has one meaning.
type EventData struct {
	Workflow   string    `json:"workflow,omitempty"`
	WorkflowID string    `json:"workflow_id,omitempty"`
	Job        string    `json:"job,omitempty"`
	JobID      string    `json:"job_id,omitempty"`
	AttemptID  string    `json:"attempt_id,omitempty"`
	Status     string    `json:"status,omitempty"`
	ExitCode   int       `json:"exit_code,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Env        string    `json:"env,omitempty"`
	Approvers  Approvers `json:"approvers,omitempty"`
	Actor      string    `json:"actor,omitempty"`
	Message    string    `json:"message,omitempty"`
	Release    int       `json:"release,omitempty"`
	Channel    string    `json:"channel,omitempty"`
}

// Notifier tells one consumer of the outside world (GitHub, Slack, a
// terminal) about events. An error means "try again later": the outbox
// retries with backoff, holding back that pipeline's later events for
// this consumer only. Permanent(err) parks the event instead, and
// RetryAfter(err, d) sets the wait.
type Notifier interface {
	Notify(ctx context.Context, e Event) error
}
