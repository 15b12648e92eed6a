package engine

import (
	"context"
	"fmt"
	"io"
	"maps"
	"strings"
	"sync"

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
// orb, the engine's own slipway/slack among them. It expands the
// parameters against the step's environment, the same way for every
// runner, and keeps what they report for the attempt's end.
type nativeSteps struct {
	byOrb map[string]NativeRunner
	mu    sync.Mutex
	out   map[string]Outputs // by attempt ID, until taken
}

func newNativeSteps(e *Engine, byOrb map[string]NativeRunner) *nativeSteps {
	n := &nativeSteps{byOrb: map[string]NativeRunner{OrbSlack: chatRunner{e}}, out: map[string]Outputs{}}
	maps.Copy(n.byOrb, byOrb)
	return n
}

func (n *nativeSteps) RunNative(ctx context.Context, run *NativeRun) (Outputs, error) {
	r := n.byOrb[run.Step.Orb]
	if r == nil {
		return nil, fmt.Errorf("this server carries out no %s steps: it has no runner for that orb", run.Step.Orb)
	}
	step := *run.Step
	step.Params = make(map[string]string, len(run.Step.Params))
	for k, v := range run.Step.Params {
		step.Params[k] = ExpandEnv(v, run.Env)
	}
	expanded := *run
	expanded.Step = &step
	out, err := r.RunNative(ctx, &expanded)
	if len(out) > 0 {
		n.mu.Lock()
		if n.out[run.Job.ID] == nil {
			n.out[run.Job.ID] = Outputs{}
		}
		maps.Copy(n.out[run.Job.ID], out)
		n.mu.Unlock()
	}
	return out, err
}

// take returns and forgets what an attempt's native steps reported.
func (n *nativeSteps) take(attemptID string) Outputs {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.out[attemptID]
	delete(n.out, attemptID)
	return out
}

// ExpandEnv replaces ${NAME} in s with NAME's value in env, as a shell
// would for a variable a step defines ("" when it has none); `$$` is a
// literal `$`. Only the braced form is expanded: a `$` alone is text.
func ExpandEnv(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '$' && i+1 < len(s) && s[i+1] == '$':
			b.WriteByte('$')
			i++
		case s[i] == '$' && i+1 < len(s) && s[i+1] == '{':
			end := strings.IndexByte(s[i+2:], '}')
			name := ""
			if end >= 0 {
				name = s[i+2 : i+2+end]
			}
			if end < 0 || !validEnvName(name) {
				b.WriteByte('$')
				continue
			}
			b.WriteString(env[name])
			i += 2 + end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// chatRunner carries out slipway/slack steps (and circleci/slack's,
// which compile to them).
type chatRunner struct{ e *Engine }

func (c chatRunner) RunNative(ctx context.Context, run *NativeRun) (Outputs, error) {
	if run.Step.Command != "notify" {
		return nil, fmt.Errorf("%s has no command %q", OrbSlack, run.Step.Command)
	}
	return nil, c.e.chatMessage(ctx, run.Job, run.Step, run.Log)
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
