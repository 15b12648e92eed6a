package web

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/slipway-ci/slipway/bot"
	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// page is what every page's layout shows.
type page struct {
	Title  string
	Nav    string // "pipelines", "deployments"
	Viewer *viewer
	Flash  string // what the last action did, in words
	CSRF   string
}

type errorPage struct {
	page
	Code    int
	Message string
}

func (h *Handler) page(r *http.Request, v *viewer, title, nav string) page {
	return page{Title: title, Nav: nav, Viewer: v, CSRF: h.csrfToken(v)}
}

// The flash is what an action did, shown once on the page it returns to.
const flashCookie = "slipway_flash"

func flash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: r.URL.Path, MaxAge: -1})
	s, err := url.QueryUnescape(c.Value)
	if err != nil {
		return ""
	}
	return s
}

// pipelineRow is a pipeline as lists show it.
type pipelineRow struct {
	ID       string
	Href     string // its page
	AppHref  string // the list of its app's pipelines
	App      string
	Number   int
	Trigger  string // "push", "/deploy production", "/rollback production", "rerun of #12"
	Ref      string // branch or tag
	SHA      string // short
	Title    string
	URL      string // the commit's page
	Author   string
	Created  time.Time
	Duration string
	Status   string
}

func (h *Handler) row(p *engine.PipelineRecord) pipelineRow {
	t := p.Trigger
	ref := t.Branch
	if ref == "" && t.Tag != "" {
		ref = t.Tag
	}
	author := p.Commit.Author
	if author == "" || t.Source == "chat" {
		author = p.Author
	}
	return pipelineRow{ID: p.ID, Href: "/pipelines/" + url.PathEscape(p.ID), AppHref: "/pipelines?" + url.Values{"app": {p.App}}.Encode(),
		App: p.App, Number: p.Number, Trigger: triggerWords(p), Ref: ref, SHA: short(t.Revision),
		Title: p.Commit.Title, URL: p.Commit.URL, Author: author, Created: p.Created,
		Duration: duration(p.Created, p.Finished, h.now()), Status: p.Status}
}

// triggerWords says what started a pipeline.
func triggerWords(p *engine.PipelineRecord) string {
	t := p.Trigger
	switch {
	case p.RerunOf > 0:
		return fmt.Sprintf("rerun of #%d", p.RerunOf)
	case t.Deploy != nil && t.Deploy.Rollback:
		return "/rollback " + t.Deploy.Environment
	case t.Deploy != nil:
		return "/deploy " + t.Deploy.Environment
	case t.Source == "webhook":
		if t.Tag != "" {
			return "tag push"
		}
		return "push"
	case t.Source == "":
		return "unknown"
	}
	return t.Source
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// duration is how long from start to end, or until now when not ended.
func duration(start, end, now time.Time) string {
	if start.IsZero() {
		return ""
	}
	if end.IsZero() {
		end = now
	}
	return roundDuration(end.Sub(start))
}

func roundDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
}

// pipelinesPage lists pipelines, newest first, filtered and paged.
type pipelinesPage struct {
	page
	App, Branch, Status string
	Apps                []string
	Statuses            []string
	Rows                []pipelineRow
	Next                string // the next page's URL; "" on the last
}

const perPage = 30

func (h *Handler) pipelinesPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	q := r.URL.Query()
	f := store.PipelineFilter{App: q.Get("app"), Branch: q.Get("branch"), Status: q.Get("status"), Before: q.Get("before"), Limit: perPage + 1}
	ps, err := h.store.Pipelines(r.Context(), f)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	d := pipelinesPage{page: h.page(r, v, "Pipelines", "pipelines"), App: f.App, Branch: f.Branch, Status: f.Status,
		Apps: slices.Sorted(maps.Keys(h.apps)),
		Statuses: []string{engine.StatusRunning, engine.StatusOnHold, workflows.StatusSuccess, workflows.StatusFailed,
			workflows.StatusCanceled, engine.StatusError}}
	if f.App != "" && !slices.Contains(d.Apps, f.App) {
		d.Apps = append(d.Apps, f.App)
	}
	if len(ps) > perPage {
		ps = ps[:perPage]
		nq := url.Values{}
		for k, vs := range q {
			if k != "before" && len(vs) > 0 && vs[0] != "" {
				nq.Set(k, vs[0])
			}
		}
		nq.Set("before", ps[len(ps)-1].ID)
		d.Next = "/pipelines?" + nq.Encode()
	}
	for i := range ps {
		d.Rows = append(d.Rows, h.row(&ps[i]))
	}
	h.render(w, r, "pipelines", pipelinesHTML(d))
}

// pipelineView is one pipeline's page.
type pipelineView struct {
	page
	P         pipelineRow
	Error     string // why the config failed
	Live      bool   // still running: the page refreshes itself
	Workflows []workflowView
	Approvals []approvalView // pending ones
	Cancel    *button
	Jobs      int
}

type workflowView struct {
	ID, Name, Status, Duration string
	Graph                      templ.Component // the SVG, escaped already
	Jobs                       []jobRow
	Rerun                      *button
}

type jobRow struct {
	ID, Name, Href, Status, Duration, Env, Reason, Sub string
	Type                                               string
	Attempt, ExitCode                                  int
	Rerun                                              *button
}

// button is one of the chat's buttons: the form's fields, or why the
// viewer may not press it (Refusal, from bot.Words).
type button struct {
	Action, Label, Job, Workflow string
	Class                        string
	Refusal                      string
}

type approvalView struct {
	JobID, Job, Envs, Approvers, Expires string
	Approve, Reject                      *button
	Note                                 string // why the viewer sees no button
}

func (h *Handler) pipelinePage(w http.ResponseWriter, r *http.Request, v *viewer) {
	ctx := r.Context()
	st, err := h.store.PipelineState(ctx, r.PathValue("id"))
	if err != nil {
		h.notFound(w, r, err, "such pipeline")
		return
	}
	aps, err := h.store.PipelineApprovals(ctx, st.Pipeline.ID)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	d, err := h.pipelineView(ctx, st, aps, v)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	d.page = h.page(r, v, fmt.Sprintf("%s #%d", st.Pipeline.App, st.Pipeline.Number), "pipelines")
	d.Flash = flash(w, r)
	h.render(w, r, "pipeline", pipelineHTML(d))
}

// pipelineView builds the page of a pipeline from its state and its approvals.
func (h *Handler) pipelineView(ctx context.Context, st *engine.PipelineState, aps []engine.ApprovalRecord, v *viewer) (pipelineView, error) {
	p := &st.Pipeline
	d := pipelineView{P: h.row(p), Error: p.Error, Live: p.Finished.IsZero(), Jobs: len(st.Jobs)}
	byJob := make(map[string]*engine.ApprovalRecord, len(aps))
	for i := range aps {
		byJob[aps[i].JobID] = &aps[i]
	}
	var actor *engine.Actor
	if v != nil && v.ChatID != "" {
		a, err := h.actor(ctx, v)
		if err != nil {
			return d, err
		}
		actor = &a
	}
	authors := p.AuthorList()
	app := h.apps[p.App]
	var envs []string
	for _, j := range st.Jobs {
		if j.Env != "" && !slices.Contains(envs, j.Env) {
			envs = append(envs, j.Env)
		}
	}
	control := func(action, label string) *button {
		if actor == nil {
			return nil
		}
		if ref := engine.MayControl(*actor, app, authors, envs); ref != nil {
			return nil
		}
		return &button{Action: action, Label: label}
	}
	if d.Live {
		d.Cancel = control("cancel", "Cancel pipeline")
		if d.Cancel != nil {
			d.Cancel.Class = "danger"
		}
	}
	base := d.P.Href
	now := h.now()
	start := 0
	for _, wf := range st.Workflows {
		end := start
		for end < len(st.Jobs) && st.Jobs[end].WorkflowID == wf.ID {
			end++
		}
		jobs := st.Jobs[start:end]
		if end == start { // not in plan order: gather them
			for _, j := range st.Jobs {
				if j.WorkflowID == wf.ID {
					jobs = append(jobs, j)
				}
			}
		}
		start = end
		wv := workflowView{ID: wf.ID, Name: wf.Name, Status: wf.Status, Duration: duration(wf.Created, wf.Finished, now)}
		finished := !wf.Finished.IsZero()
		if finished {
			if wv.Rerun = control("rerun", "Rerun workflow"); wv.Rerun != nil {
				wv.Rerun.Workflow = wf.Name
			}
		}
		gjobs := make([]graphJob, len(jobs))
		for i := range jobs {
			j := &jobs[i]
			row := jobRow{ID: j.ID, Name: j.Name, Type: j.Type, Href: base + "/jobs/" + url.PathEscape(j.ID), Status: j.Status,
				Duration: duration(j.Started, j.Finished, now), Env: j.Env, Reason: j.Reason, Attempt: j.Attempt, ExitCode: j.ExitCode}
			if j.Started.IsZero() {
				row.Duration = ""
			}
			if ap := byJob[j.ID]; ap != nil {
				row.Sub = h.approvalWords(ap)
				if ap.Status == engine.ApprovalPending {
					d.Approvals = append(d.Approvals, h.approvalView(ap, j, actor, authors))
				}
			} else if row.Duration != "" {
				row.Sub = row.Duration
			}
			if finished && (j.Status == workflows.StatusFailed || j.Status == workflows.StatusCanceled || j.Status == workflows.StatusUnauthorized) {
				if row.Rerun = control("rerun", "Rerun"); row.Rerun != nil {
					row.Rerun.Workflow, row.Rerun.Job = wf.Name, j.Name
				}
			}
			wv.Jobs = append(wv.Jobs, row)
			gjobs[i] = graphJob{Job: j, Href: row.Href, Sub: row.Sub}
		}
		wv.Graph = layoutJobs(jobs).svg(strconv.Itoa(len(d.Workflows)), gjobs)
		d.Workflows = append(d.Workflows, wv)
	}
	return d, nil
}

// approvalWords says where an approval stands, for a gate's second line.
func (h *Handler) approvalWords(ap *engine.ApprovalRecord) string {
	switch {
	case ap.Status == engine.ApprovalPending:
		return "waiting for " + h.words.Approvers(ap.Approvers)
	case ap.DecidedBy != "":
		return h.words.Decided(engine.Decision{Status: ap.Status}, ap.DecidedBy)
	case ap.Reason != "":
		return statusWord(ap.Status) + ": " + ap.Reason
	}
	return statusWord(ap.Status)
}

func (h *Handler) approvalView(ap *engine.ApprovalRecord, j *engine.JobRecord, actor *engine.Actor, authors []string) approvalView {
	av := approvalView{JobID: j.ID, Job: j.Name, Envs: strings.Join(ap.Envs, ", "), Approvers: h.words.Approvers(ap.Approvers),
		Expires: ap.Expires.UTC().Format("2006-01-02 15:04 UTC")}
	if actor == nil {
		av.Note = "Sign in as a chat user to approve or reject."
		return av
	}
	if ref := engine.MayApprove(*actor, ap, authors); ref == nil {
		av.Approve = &button{Action: "approve", Label: "Approve", Job: j.ID, Class: "primary"}
	} else {
		av.Note = h.words.Refusal("approve", *ref)
	}
	if engine.MayReject(*actor, ap, authors) == nil {
		av.Reject = &button{Action: "reject", Label: "Reject", Job: j.ID, Class: "danger"}
	}
	return av
}

// jobView is a job's page.
type jobView struct {
	page
	P         pipelineRow
	Job       jobRow
	Workflow  string
	Attempts  []attemptLink
	Attempt   *engine.AttemptRecord
	Steps     []stepRow
	Running   bool
	LogURL    string // the event stream
	RawURL    string
	Artifacts []artifactRow
	Tests     *testReport
	Approval  string
}

type attemptLink struct {
	Number  int
	Href    string
	Current bool
	Status  string
}

type stepRow struct {
	Name, Status, Duration string
	ExitCode               int
}

func (h *Handler) jobPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	ctx := r.Context()
	st, j, err := h.job(ctx, r)
	if err != nil {
		h.notFound(w, r, err, "such job")
		return
	}
	atts, err := h.store.Attempts(ctx, j.ID)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	now := h.now()
	base := "/pipelines/" + url.PathEscape(st.Pipeline.ID) + "/jobs/" + url.PathEscape(j.ID)
	d := jobView{page: h.page(r, v, fmt.Sprintf("%s · %s #%d", j.Name, st.Pipeline.App, st.Pipeline.Number), "pipelines"),
		P: h.row(&st.Pipeline), Job: jobRow{ID: j.ID, Name: j.Name, Type: j.Type, Status: j.Status, Env: j.Env, Reason: j.Reason,
			Duration: duration(j.Started, j.Finished, now), ExitCode: j.ExitCode, Attempt: j.Attempt}}
	if j.Started.IsZero() {
		d.Job.Duration = ""
	}
	for _, wf := range st.Workflows {
		if wf.ID == j.WorkflowID {
			d.Workflow = wf.Name
		}
	}
	want, _ := strconv.Atoi(r.URL.Query().Get("attempt"))
	for i := range atts {
		a := &atts[i]
		if a.Number == want || (want == 0 && i == len(atts)-1) {
			d.Attempt = a
		}
	}
	for i := range atts {
		a := &atts[i]
		d.Attempts = append(d.Attempts, attemptLink{Number: a.Number, Href: base + "?attempt=" + strconv.Itoa(a.Number),
			Current: a == d.Attempt, Status: a.Status})
	}
	if d.Attempt != nil {
		a := d.Attempt
		d.Running = a.Finished.IsZero()
		for _, s := range a.Steps {
			d.Steps = append(d.Steps, stepRow{Name: s.Name, Status: s.Status, ExitCode: s.ExitCode, Duration: duration(s.Started, s.Finished, now)})
		}
		q := "?attempt=" + url.QueryEscape(a.ID)
		d.LogURL, d.RawURL = base+"/log"+q, base+"/log.txt"+q
		if root := h.outputRoot(a.ID); root != nil {
			d.Artifacts = listArtifacts(root.FS(), base+"/artifacts/"+url.PathEscape(a.ID)+"/")
			d.Tests = readTestResults(root.FS())
			root.Close()
		}
	}
	if aps, err := h.store.PipelineApprovals(ctx, st.Pipeline.ID); err == nil {
		for i := range aps {
			if aps[i].JobID == j.ID {
				d.Approval = h.approvalWords(&aps[i])
			}
		}
	}
	h.render(w, r, "job", jobHTML(d))
}

// job reads the pipeline and job a request's path names.
func (h *Handler) job(ctx context.Context, r *http.Request) (*engine.PipelineState, *engine.JobRecord, error) {
	st, err := h.store.PipelineState(ctx, r.PathValue("id"))
	if err != nil {
		return nil, nil, err
	}
	id := r.PathValue("job")
	for i := range st.Jobs {
		if st.Jobs[i].ID == id {
			return st, &st.Jobs[i], nil
		}
	}
	return nil, nil, fmt.Errorf("job %q: %w", id, engine.ErrNotFound)
}

// deploymentsView is what is live where, with history and locks.
type deploymentsView struct {
	page
	Apps []appDeployments
}

type appDeployments struct {
	Name string
	Envs []envDeployments
}

type envDeployments struct {
	Name      string
	Protected bool
	Live      *releaseRow
	Deploying *releaseRow
	History   []releaseRow
	More      int
	Lock      *engine.EnvLock
	LockSince string
	Rollback  string // why there is no rollback target, when there is none
}

type releaseRow struct {
	Number                   int
	Pipeline                 string // ID
	Commit, SHA, Version     string
	StartedBy, ApprovedBy    string
	Outcome, When, At        string
	Rollback, Target, IsLive bool
	Href                     string
}

const historyRows = 15

func (h *Handler) deploymentsPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	ctx := r.Context()
	locks, err := h.store.EnvLocks(ctx, "")
	if err != nil {
		h.internal(w, r, err)
		return
	}
	d := deploymentsView{page: h.page(r, v, "Deployments", "deployments")}
	for _, name := range slices.Sorted(maps.Keys(h.apps)) {
		app := h.apps[name]
		ad := appDeployments{Name: name}
		for _, env := range slices.Sorted(maps.Keys(app.Environments)) {
			rels, err := h.store.Releases(ctx, name, env)
			if err != nil {
				h.internal(w, r, err)
				return
			}
			ed := envDeployments{Name: env, Protected: len(app.Environments[env].Approvers) > 0}
			target, why := bot.RollbackTarget(rels, "")
			if target == nil {
				ed.Rollback = why
			}
			for i := range rels {
				rel := &rels[i]
				row := h.releaseRow(rel)
				row.Target = target != nil && rel.ID == target.ID
				if ed.Live == nil && rel.Outcome == workflows.StatusSuccess {
					row.IsLive = true
					live := row
					ed.Live = &live
				}
				if rel.Outcome == engine.StatusRunning && ed.Deploying == nil {
					dep := row
					ed.Deploying = &dep
				}
				if len(ed.History) < historyRows {
					ed.History = append(ed.History, row)
				} else {
					ed.More++
				}
			}
			for i := range locks {
				if locks[i].App == name && locks[i].Env == env {
					ed.Lock = &locks[i]
					ed.LockSince = h.ago(locks[i].Since)
				}
			}
			ad.Envs = append(ad.Envs, ed)
		}
		d.Apps = append(d.Apps, ad)
	}
	h.render(w, r, "deployments", deploymentsHTML(d))
}

func (h *Handler) releaseRow(rel *engine.Release) releaseRow {
	return releaseRow{Number: rel.Number, Pipeline: rel.PipelineID, Commit: rel.Commit, SHA: short(rel.Commit), Version: rel.Version,
		StartedBy: rel.StartedBy, ApprovedBy: strings.ReplaceAll(rel.ApprovedBy, ",", ", "), Outcome: rel.Outcome,
		When: h.ago(rel.Created), At: rel.Created.UTC().Format(time.RFC3339), Rollback: rel.Rollback,
		Href: "/pipelines/" + url.PathEscape(rel.PipelineID)}
}

// lockNote says who holds an environment's lock, since when and why.
func lockNote(l *engine.EnvLock, since string) string {
	s := "A deploy job holds the lock"
	if l.Manual {
		s = "Locked by " + l.Holder
	}
	s += " since " + since
	if l.Reason != "" {
		s += ": “" + l.Reason + "”"
	}
	return s
}

// ago says how long ago t was, as the chat says it.
func (h *Handler) ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := h.now().Sub(t)
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

// outputRoot opens an attempt's output folder as a root that no path
// (.., a symlink) can leave; nil when it has none.
func (h *Handler) outputRoot(attemptID string) *os.Root {
	if h.dataDir == "" || attemptID == "" || strings.ContainsAny(attemptID, `/\.`) {
		return nil
	}
	root, err := os.OpenRoot(filepath.Join(h.dataDir, "output", attemptID))
	if err != nil {
		return nil
	}
	return root
}
