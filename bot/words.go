// Package bot is slipway's chat, independent of any chat service: the
// command grammar (/deploy, /rollback, /slipway), who may do what as
// people see it, what a commit's thread shows, and the words for all of
// it. bot/slack (Socket Mode, Block Kit) and bot/console (a terminal) are
// its adapters.
package bot

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/workflows/engine"
)

// Words puts the engine's decisions in sentences for a chat.
type Words struct {
	// Mention renders a user or group ID: "<@U0ALICE>" on Slack, the
	// name itself in a terminal. Default: the ID.
	Mention func(id string) string
	// Channel renders a channel ID: "<#C0DEPLOYS>" on Slack. Default: "#" and the ID.
	Channel func(id string) string
	// Now is the clock relative times are said against. Default: time.Now.
	Now func() time.Time
	// Escape makes text that people wrote (a commit's title, a lock's
	// reason, a job's failure) inert in the chat's markup, so that a
	// commit titled "<!channel>" pings nobody. Default: the text.
	Escape func(s string) string
}

// Text is user-written text, escaped for the chat.
func (w Words) Text(s string) string {
	if w.Escape == nil {
		return s
	}
	return w.Escape(s)
}

func (w Words) mention(id string) string {
	if id == "" {
		return "someone"
	}
	if w.Mention == nil {
		return id
	}
	return w.Mention(id)
}

func (w Words) channel(id string) string {
	if w.Channel == nil {
		return "#" + id
	}
	return w.Channel(id)
}

// version names what was shipped: "`3f2a9c1`", or "v1.4.2 (`3f2a9c1`)"
// when a ref other than the commit named it.
func (w Words) version(sha, ref string) string {
	s := "`" + short(sha) + "`"
	if ref != "" && !strings.HasPrefix(sha, ref) {
		s = ref + " (" + s + ")"
	}
	return s
}

func (w Words) mentions(ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = w.mention(id)
	}
	return orList(out)
}

// orList joins "a", "a or b", "a, b or c".
func orList(items []string) string {
	switch len(items) {
	case 0:
		return "nobody"
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// ago says how long ago t was, roughly.
func (w Words) ago(t time.Time) string {
	now := time.Now()
	if w.Now != nil {
		now = w.Now()
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// Approvers says who may approve: "@carol or @sre", or for several
// environments "an approver of each of production (@carol) and eu (@erin)".
func (w Words) Approvers(ap engine.Approvers) string {
	envs := slices.Sorted(maps.Keys(ap))
	if len(envs) == 0 {
		return "anyone"
	}
	if len(envs) == 1 {
		return w.mentions(ap[envs[0]])
	}
	parts := make([]string, len(envs))
	for i, env := range envs {
		parts[i] = fmt.Sprintf("%s (%s)", env, w.mentions(ap[env]))
	}
	return "an approver of each of " + strings.Join(parts, " and ")
}

// Refusal says why a request changed nothing, politely and specifically.
// action is what was asked: "approve", "reject", "cancel", "rerun",
// "lock", "unlock", "deploy to backend/production".
func (w Words) Refusal(action string, d engine.Decision) string {
	switch d.Code {
	case engine.RefusedNotAllowed:
		if len(d.Approvers) > 0 && (action == "approve" || action == "reject") {
			who := w.Approvers(d.Approvers)
			if action == "reject" && len(d.Allowed) > 0 {
				who += " (or the change's author, " + w.mentions(d.Allowed) + ")"
			}
			return fmt.Sprintf("Sorry, only %s may %s this.", who, action)
		}
		if len(d.Allowed) == 0 {
			return fmt.Sprintf("Sorry, you may not %s here.", action)
		}
		return fmt.Sprintf("Sorry, only %s may %s.", w.mentions(d.Allowed), action)
	case engine.RefusedSelfApproval:
		return fmt.Sprintf("You wrote this change, and %s needs someone else's approval. Ask one of its approvers.", strings.Join(d.Envs, ", "))
	case engine.RefusedNoApprover:
		return fmt.Sprintf("No one can approve this: nobody is an approver of every environment it gates (%s). Split the approval, or change the approvers.", w.Approvers(d.Approvers))
	case engine.RefusedExpired:
		return fmt.Sprintf("This approval expired %s; nothing changed.", w.ago(d.At))
	case engine.RefusedDecided:
		if d.Status == engine.ApprovalExpired {
			return "This approval already expired; nothing changed."
		}
		return fmt.Sprintf("Already %s by %s %s; nothing changed.", d.Status, w.mention(d.Actor), w.ago(d.At))
	case engine.RefusedEnded:
		return fmt.Sprintf("Pipeline %d already ended (%s); nothing changed.", d.Pipeline, d.Status)
	case engine.RefusedRunning:
		return fmt.Sprintf("Pipeline %d is still %s; rerun it once it ends.", d.Pipeline, strings.ReplaceAll(d.Status, "_", " "))
	case engine.RefusedLocked:
		reason := ""
		if d.Reason != "" {
			reason = ": " + w.Text(d.Reason)
		}
		return fmt.Sprintf("It is locked by %s since %s%s. Unlock it first.", w.mention(d.Actor), w.ago(d.At), reason)
	case engine.RefusedDeploying:
		return "A deploy is in progress there; try again when it ends."
	case engine.RefusedNotLocked:
		return "It is not locked; nothing changed."
	case engine.RefusedNothingToRun:
		return fmt.Sprintf("Job %s ended %s; rerun the whole pipeline to run it again.", d.Job, strings.ReplaceAll(d.Status, "_", " "))
	}
	return "Nothing changed."
}

// Decided says what an applied approval or rejection did.
func (w Words) Decided(d engine.Decision, by string) string {
	s := fmt.Sprintf("%s by %s", capitalize(d.Status), w.mention(by))
	if d.AuthorUnknown {
		s += " (the change's author could not be matched to a chat user, so self-approval could not be checked)"
	}
	return s
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
