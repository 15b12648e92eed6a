package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/slipway-ci/slipway/workflows/engine"
)

// action presses one of the chat's buttons on a pipeline: approve or
// reject (job), cancel, rerun (workflow, and job for one job). The engine
// decides whether the viewer may, as it does for the chat; what it did,
// or its refusal in bot.Words' words, is shown once on the pipeline's
// page, where the browser is sent back.
func (h *Handler) action(w http.ResponseWriter, r *http.Request, v *viewer) {
	ctx := r.Context()
	id := r.PathValue("id")
	st, err := h.store.PipelineState(ctx, id)
	if err != nil {
		h.notFound(w, r, err, "such pipeline")
		return
	}
	actor, err := h.actor(ctx, v)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	n := strconv.Itoa(st.Pipeline.Number)
	jobID, workflow, job := r.PostFormValue("job"), r.PostFormValue("workflow"), r.PostFormValue("name")
	var d engine.Decision
	var words string // the refusal's action, as Words takes it
	switch action := r.PathValue("action"); action {
	case "approve", "reject":
		if !hasJob(st, jobID) {
			h.fail(w, r, http.StatusNotFound, "This pipeline has no such job.")
			return
		}
		words = action
		if action == "approve" {
			d, err = h.engine.Approve(ctx, jobID, actor)
		} else {
			d, err = h.engine.Reject(ctx, jobID, actor)
		}
	case "cancel":
		words = "cancel pipeline " + n
		d, err = h.engine.Cancel(ctx, id, actor)
	case "rerun":
		words = "rerun pipeline " + n
		if job != "" {
			d, err = h.engine.RerunJob(ctx, id, workflow, job, actor)
		} else {
			d, err = h.engine.RerunWorkflow(ctx, id, workflow, actor)
		}
	default:
		h.fail(w, r, http.StatusNotFound, "There is no such action.")
		return
	}
	if err != nil {
		h.notFound(w, r, err, "such approval or workflow")
		return
	}
	log := h.log.With("pipeline", id, "actor", actor.ID, "user", v.Name, "action", r.PathValue("action"))
	if jobID != "" {
		log = log.With("job", jobID)
	}
	log.Info("dashboard action", "decision", d.String())
	msg := h.words.Refusal(words, d)
	if d.Applied {
		msg = h.appliedWords(r.PathValue("action"), d, actor.ID, workflow, job)
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(msg), Path: "/pipelines/" + id, MaxAge: 10,
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/pipelines/"+url.PathEscape(id), http.StatusSeeOther)
}

func hasJob(st *engine.PipelineState, jobID string) bool {
	for _, j := range st.Jobs {
		if j.ID == jobID {
			return true
		}
	}
	return false
}

// appliedWords says what a button did, as the chat says it.
func (h *Handler) appliedWords(action string, d engine.Decision, by, workflow, job string) string {
	switch action {
	case "approve", "reject":
		return h.words.Decided(d, by) + "."
	case "cancel":
		return fmt.Sprintf("Pipeline %d canceled.", d.Pipeline)
	}
	if job != "" {
		return fmt.Sprintf("Rerunning %s of pipeline %d (%d jobs).", job, d.Pipeline, d.Jobs)
	}
	return fmt.Sprintf("Rerunning workflow %s of pipeline %d (%d jobs).", workflow, d.Pipeline, d.Jobs)
}
