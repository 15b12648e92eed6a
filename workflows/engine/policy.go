package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/slipway-ci/slipway/workflows"
)

// mayDeploy reports whether the pipeline may deploy to env: its author is
// a deployer there, or an approval upstream was given by an approver there.
func (a *advancer) mayDeploy(ctx context.Context, j *JobRecord, env *Environment) (bool, error) {
	if (Actor{ID: a.st.Pipeline.Author}).allowed(env.Deployers) {
		return true, nil
	}
	for _, u := range a.v.upstream(j) {
		if u.Type != workflows.JobApproval || u.Status != workflows.StatusSuccess {
			continue
		}
		ap, err := a.tx.Approval(ctx, u.ID)
		if err != nil {
			return false, err
		}
		if ap.Status == ApprovalApproved && slices.Contains(ap.Envs, j.Env) {
			return true, nil
		}
	}
	return false, nil
}

// Actor is who presses a button or types a command.
type Actor struct {
	ID     string   // Slack user ID or local user name
	Groups []string // user groups the actor belongs to
}

// allowed reports whether a is listed, by ID or group, in who. An empty
// list allows everyone.
func (a Actor) allowed(who []string) bool {
	if len(who) == 0 {
		return true
	}
	if slices.Contains(who, a.ID) {
		return true
	}
	for _, g := range a.Groups {
		if slices.Contains(who, g) {
			return true
		}
	}
	return false
}

// Approvers says who may approve an approval job: for each environment it
// gates whose approvers are listed, the users or groups allowed there. An
// approver must be allowed in every one of them, group membership
// included, which is why the lists are kept apart rather than intersected.
// No entry allows anyone; an entry with an empty list allows no one.
type Approvers map[string][]string

// mayApprove reports whether a is allowed by every list of ap.
func (a Actor) mayApprove(ap Approvers) bool {
	for _, who := range ap {
		if len(who) == 0 || !a.allowed(who) {
			return false
		}
	}
	return true
}

// nobody reports whether an entry allows no one.
func (ap Approvers) nobody() bool {
	for _, who := range ap {
		if len(who) == 0 {
			return true
		}
	}
	return false
}

// String names who may approve: "carol, sre" for one environment, "an
// approver of each of production (carol) and eu (erin)" for several.
func (ap Approvers) String() string {
	envs := slices.Sorted(maps.Keys(ap))
	if len(envs) == 1 {
		return strings.Join(ap[envs[0]], ", ")
	}
	parts := make([]string, len(envs))
	for i, env := range envs {
		parts[i] = fmt.Sprintf("%s (%s)", env, strings.Join(ap[env], ", "))
	}
	return "an approver of each of " + strings.Join(parts, " and ")
}

// UnmarshalJSON reads an object of lists by environment or, as the first
// schema wrote approvals and their events, one list every approver must
// be in (kept under ""). That list was empty only when the approvers of
// several environments had no one in common: no one may approve it.
func (ap *Approvers) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		*ap = nil
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err == nil {
		*ap = Approvers{"": list}
		return nil
	}
	var m map[string][]string
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("approvers: want an object of lists by environment: %w", err)
	}
	*ap = m
	return nil
}

// Decision is the outcome of a request a person made (a button press, a
// command): whether it changed anything, and a sentence that says what.
type Decision struct {
	Applied bool
	Message string
}
