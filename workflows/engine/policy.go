package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

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

// Decision is what a request a person made (a button, a command) did:
// Applied, or refused with a Code, with the facts that explain it. The
// chat puts it in words (package bot); the engine writes none.
type Decision struct {
	Applied bool
	// Code says why nothing changed; "" when Applied.
	Code Code
	// Pipeline is the number of the pipeline acted on.
	Pipeline int
	// Status is the decision taken when Applied (approved, rejected); the
	// decision found (already_decided); the pipeline's or workflow's
	// status (already_ended, still_running); the job's (nothing_to_rerun).
	Status string
	// Actor is who decided before (already_decided), who holds the lock
	// (locked), or the change's author (self_approval).
	Actor string
	// At is when it was decided (already_decided), expired (expired), or
	// locked (locked, and the lock Unlock released).
	At time.Time
	// Reason is a lock's reason (locked, and the lock Unlock released).
	Reason string
	// Allowed lists who may do it (not_allowed), by user or group ID; for
	// an approval, Approvers does.
	Allowed   []string
	Approvers Approvers
	// Envs are the environments an approval gates.
	Envs []string
	// Job is the job asked for (nothing_to_rerun, a rerun).
	Job string
	// Jobs counts the jobs a rerun runs again.
	Jobs int
	// AuthorUnknown is set on an approval given where self-approval is
	// forbidden but the change's author could not be matched to a chat
	// user: no one could tell whether the approver wrote it.
	AuthorUnknown bool
}

// Code is why a request changed nothing.
type Code string

// Refusals.
const (
	RefusedNotAllowed   Code = "not_allowed"      // Allowed or Approvers say who may
	RefusedSelfApproval Code = "self_approval"    // Actor wrote the change, and the environment wants someone else
	RefusedNoApprover   Code = "no_approver"      // no one is allowed in every environment the approval gates (Approvers)
	RefusedExpired      Code = "expired"          // the approval expired At
	RefusedDecided      Code = "already_decided"  // Status by Actor At
	RefusedEnded        Code = "already_ended"    // the pipeline ended with Status
	RefusedRunning      Code = "still_running"    // the workflow is still Status
	RefusedLocked       Code = "locked"           // by Actor since At, for Reason
	RefusedDeploying    Code = "deploying"        // a deploy holds the environment's lock
	RefusedNotLocked    Code = "not_locked"       // nothing to unlock
	RefusedNothingToRun Code = "nothing_to_rerun" // Job ended Status: rerun its workflow instead
)

// String is the decision in a compact form for logs and the audit.
func (d Decision) String() string {
	if d.Applied {
		s := "applied"
		if d.Status != "" {
			s += " " + d.Status
		}
		if d.AuthorUnknown {
			s += " (author unknown)"
		}
		return s
	}
	s := "refused: " + string(d.Code)
	for _, kv := range [][2]string{{"status", d.Status}, {"actor", d.Actor}, {"reason", d.Reason}, {"job", d.Job},
		{"allowed", strings.Join(d.Allowed, ",")}, {"approvers", d.Approvers.list()}} {
		if kv[1] != "" {
			s += " " + kv[0] + "=" + kv[1]
		}
	}
	return s
}

// list is the approvers as text for logs: "production=carol,sre".
func (ap Approvers) list() string {
	var parts []string
	for _, env := range slices.Sorted(maps.Keys(ap)) {
		parts = append(parts, env+"="+strings.Join(ap[env], ","))
	}
	return strings.Join(parts, " ")
}

// The policy: who may do what, in one place. Each function answers for
// one action, over the actor (ID and groups), the app and what is acted
// on: nil when allowed, else the refusal. The engine asks it for every
// request it takes; the chat asks MayDeploy before it starts a deploy.

// MayDeploy says whether a may start a deploy to env (/deploy,
// /rollback): env's deployers may; an empty list lets anyone. It never
// lets anyone skip an approval: a protected environment's deploys wait
// for one of its approvers whoever started them.
func MayDeploy(a Actor, env *Environment) *Decision {
	if a.allowed(env.Deployers) {
		return nil
	}
	return &Decision{Code: RefusedNotAllowed, Allowed: slices.Clone(env.Deployers)}
}

// MayLock says whether a may lock or unlock env by hand: those who may
// deploy there or approve its deploys.
func MayLock(a Actor, env *Environment) *Decision {
	if a.allowed(env.Deployers) || len(env.Approvers) > 0 && a.allowed(env.Approvers) {
		return nil
	}
	return &Decision{Code: RefusedNotAllowed, Allowed: slices.Concat(env.Deployers, env.Approvers)}
}

// MayApprove says whether a may approve ap, for a change by authors.
func MayApprove(a Actor, ap *ApprovalRecord, authors []string) *Decision {
	switch {
	case !ap.AllowSelf && slices.Contains(authors, a.ID):
		return &Decision{Code: RefusedSelfApproval, Actor: a.ID, Envs: ap.Envs}
	case ap.Approvers.nobody():
		return &Decision{Code: RefusedNoApprover, Approvers: ap.Approvers, Envs: ap.Envs}
	case !a.mayApprove(ap.Approvers):
		return &Decision{Code: RefusedNotAllowed, Approvers: ap.Approvers, Envs: ap.Envs}
	}
	return nil
}

// MayReject says whether a may reject ap: its approvers and the change's
// authors may.
func MayReject(a Actor, ap *ApprovalRecord, authors []string) *Decision {
	if slices.Contains(authors, a.ID) || !ap.Approvers.nobody() && a.mayApprove(ap.Approvers) {
		return nil
	}
	return &Decision{Code: RefusedNotAllowed, Approvers: ap.Approvers, Allowed: slices.Clone(authors), Envs: ap.Envs}
}

// MayControl says whether a may cancel or rerun a pipeline of app by
// authors that deploys to envs: its authors may, and those allowed to
// deploy to or approve for one of those environments; for a pipeline that
// deploys nowhere, those allowed to deploy to or approve for any of the
// app's environments (anyone, for an app without environments).
func MayControl(a Actor, app *App, authors []string, envs []string) *Decision {
	if slices.Contains(authors, a.ID) {
		return nil
	}
	if app == nil || len(app.Environments) == 0 {
		return nil
	}
	if len(envs) == 0 {
		envs = slices.Sorted(maps.Keys(app.Environments))
	}
	var who []string
	for _, name := range envs {
		env := app.Environments[name]
		if env == nil {
			continue
		}
		if MayLock(a, env) == nil {
			return nil
		}
		who = append(who, env.Deployers...)
		who = append(who, env.Approvers...)
	}
	slices.Sort(who)
	return &Decision{Code: RefusedNotAllowed, Allowed: slices.Compact(append(who, authors...))}
}

// UnknownAuthor is how a change's author that could not be matched to a
// chat user is named among a pipeline's Authors: by their GitHub login.
func UnknownAuthor(login string) string { return "github:" + login }

// authorsUnknown reports whether some author could not be matched.
func authorsUnknown(authors []string) bool {
	return slices.ContainsFunc(authors, func(a string) bool { return strings.HasPrefix(a, "github:") })
}
