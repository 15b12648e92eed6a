package engine

import (
	"context"
	"fmt"
	"io"
	"maps"

	"github.com/slipway-ci/slipway/workflows"
)

// The built-in orbs. The engine carries out slipway/slack itself, as a
// message for the commit's thread; the rest are runners the server gives
// it (Options.Natives).
const (
	OrbAWS   = "slipway/aws"
	OrbSlack = "slipway/slack"
)

// nativeSteps is the NativeRunner every attempt gets: the runners by
// orb, the engine's own slipway/slack among them.
type nativeSteps map[string]NativeRunner

func newNativeSteps(e *Engine, byOrb map[string]NativeRunner) nativeSteps {
	n := nativeSteps{OrbSlack: chatRunner{e}}
	maps.Copy(n, byOrb)
	return n
}

func (n nativeSteps) RunNative(ctx context.Context, job *JobRun, s *workflows.NativeStep, log io.Writer) error {
	r := n[s.Orb]
	if r == nil {
		return fmt.Errorf("this server carries out no %s steps: it has no runner for that orb", s.Orb)
	}
	return r.RunNative(ctx, job, s, log)
}

// chatRunner carries out slipway/slack steps (and circleci/slack's,
// which compile to them).
type chatRunner struct{ e *Engine }

func (c chatRunner) RunNative(ctx context.Context, job *JobRun, s *workflows.NativeStep, log io.Writer) error {
	if s.Command != "notify" {
		return fmt.Errorf("%s has no command %q", OrbSlack, s.Command)
	}
	return c.e.chatMessage(ctx, job, s, log)
}

// chatMessage puts a notify step's message in the outbox, for the
// notifiers to post into the commit's thread. A rerun of the attempt
// posts it again: messages are delivered at least once.
func (e *Engine) chatMessage(ctx context.Context, job *JobRun, s *workflows.NativeStep, log io.Writer) error {
	text := notifyText(job, s)
	ev := Event{PipelineID: job.PipelineID, Kind: EventChatMessage, At: e.clock.Now(), Data: EventData{
		WorkflowID: job.WorkflowID, Job: job.JobName, AttemptID: job.ID, Message: text, Channel: s.Params["channel"],
	}}
	if err := e.update(ctx, func(tx StoreTx) error { return tx.AddEvents(ctx, []Event{ev}) }); err != nil {
		return err
	}
	fmt.Fprintf(log, "Message for the commit's thread: %s\n", text)
	return nil
}

// notifyText is what a notify step says: its message (slipway/slack) or
// template name (circleci/slack), or else CircleCI's default words for
// the event.
func notifyText(job *JobRun, s *workflows.NativeStep) string {
	for _, k := range []string{"message", "template"} {
		if v := s.Params[k]; v != "" {
			return v
		}
	}
	switch s.When {
	case workflows.WhenOnFail:
		return fmt.Sprintf("Job %s failed", job.JobName)
	case workflows.WhenOnSuccess:
		return fmt.Sprintf("Job %s succeeded", job.JobName)
	}
	return fmt.Sprintf("Job %s", job.JobName)
}
