package engine

import (
	"context"
	"time"
)

// Event is something the outside world hears about, through the outbox.
type Event struct {
	Seq        int64 // assigned by the store, increasing
	PipelineID string
	Kind       string
	At         time.Time
	Data       EventData
	Attempts   int // deliveries tried so far
}

// Event kinds.
const (
	EventPipelineCreated  = "pipeline.created"
	EventJobStarted       = "job.started"
	EventJobWaiting       = "job.waiting"
	EventJobFinished      = "job.finished"
	EventApprovalNeeded   = "approval.needed"
	EventApprovalDecided  = "approval.decided"
	EventDeployed         = "deployed"
	EventWorkflowFinished = "workflow.finished"
	EventPipelineFinished = "pipeline.finished"
	// EventChatMessage is a slipway/slack notify step's message.
	EventChatMessage = "chat.message"
)

// EventData is an event's details; fields not relevant to its kind are empty.
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
	Commit     string    `json:"commit,omitempty"`
	Message    string    `json:"message,omitempty"`
	Channel    string    `json:"channel,omitempty"` // a channel other than the app's
}

// Notifier tells the outside world (Slack, GitHub) about events. An error
// means "try again later"; the outbox retries with backoff.
type Notifier interface {
	Notify(ctx context.Context, e Event) error
}
