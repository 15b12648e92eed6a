package bot

import (
	"fmt"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// Block Kit's limits are 50 blocks a message and 3,000 characters a
// section: a workflow is listed job by job up to maxJobLines jobs, and
// summarised beyond ("38 of 120 jobs done, 2 failed: ..."), naming at
// most maxNamed of the jobs that need a look.
const (
	maxJobLines  = 25
	maxNamed     = 8
	maxWorkflows = 10
)

// statusIcon is the emoji of a job's or pipeline's status.
func statusIcon(status string) string {
	switch status {
	case workflows.StatusSuccess:
		return ":white_check_mark:"
	case workflows.StatusFailed:
		return ":x:"
	case workflows.StatusUnauthorized:
		return ":no_entry:"
	case workflows.StatusCanceled:
		return ":no_entry_sign:"
	case workflows.StatusNotRun, workflows.StatusSkipped:
		return ":heavy_minus_sign:"
	case engine.StatusRunning:
		return ":arrows_counterclockwise:"
	case engine.StatusQueued:
		return ":hourglass_flowing_sand:"
	case engine.StatusOnHold:
		return ":double_vertical_bar:"
	case engine.StatusError:
		return ":warning:"
	}
	return ":white_small_square:"
}

// parent is a commit's thread's parent message: the app, the commit, who
// it is from, and each workflow of its pipeline with its jobs' states.
func (n *Notifier) parent(app *App, st *engine.PipelineState) Message {
	p := st.Pipeline
	t := p.Trigger
	sha := n.words.version(t.Revision, "")
	if p.Commit.URL != "" {
		sha = "<" + p.Commit.URL + "|" + short(t.Revision) + ">"
	}
	title := fmt.Sprintf("%s *%s* · %s · %s", statusIcon(p.Status), app.Name, refName(t), sha)
	if p.Commit.Title != "" {
		title += " " + n.words.Text(clipText(p.Commit.Title, 120))
	}
	who := n.words.mention(p.Author)
	if strings.HasPrefix(p.Author, "github:") {
		who = n.words.Text(strings.TrimPrefix(p.Author, "github:"))
	}
	if p.Commit.Author != "" && !strings.Contains(who, p.Commit.Author) {
		who += " (commit by " + n.words.Text(p.Commit.Author) + ")"
	}
	kind := "push"
	switch {
	case p.RerunOf > 0:
		kind = fmt.Sprintf("rerun of pipeline %d", p.RerunOf)
	case t.Deploy != nil && t.Deploy.Rollback:
		kind = "/rollback in " + t.Deploy.Environment
	case t.Deploy != nil:
		kind = "/deploy to " + t.Deploy.Environment
	}
	pipeline := fmt.Sprintf("pipeline %d (%s) %s", p.Number, kind, statusWords(p.Status))
	if link := n.link(p.ID, ""); link != "" {
		pipeline = "<" + link + "|" + pipeline + ">"
	}
	m := Message{
		Summary: fmt.Sprintf("%s %s %s: %s", app.Name, refName(t), short(t.Revision), statusWords(p.Status)),
		Title:   title,
		Context: []string{app.Repo, "by " + who, pipeline},
	}
	if p.Status == engine.StatusError {
		m.Text = "The config cannot run: " + n.words.Text(clipText(p.Error, 2500))
	}
	for i, w := range st.Workflows {
		if i == maxWorkflows {
			m.Sections = append(m.Sections, Section{Heading: fmt.Sprintf("… and %d more workflows", len(st.Workflows)-maxWorkflows)})
			break
		}
		var jobs []engine.JobRecord
		for _, j := range st.Jobs {
			if j.WorkflowID == w.ID {
				jobs = append(jobs, j)
			}
		}
		m.Sections = append(m.Sections, Section{Heading: fmt.Sprintf("%s %s", statusIcon(w.Status), w.Name), Lines: n.jobLines(jobs)})
	}
	return m
}

func statusWords(s string) string {
	switch s {
	case engine.StatusOnHold:
		return "waits for approval"
	case engine.StatusError:
		return "could not run"
	case workflows.StatusSuccess:
		return "succeeded"
	}
	return strings.ReplaceAll(s, "_", " ")
}

// jobLines lists a workflow's jobs, or summarises them when there are too
// many for a message.
func (n *Notifier) jobLines(jobs []engine.JobRecord) []string {
	if len(jobs) <= maxJobLines {
		lines := make([]string, len(jobs))
		for i, j := range jobs {
			lines[i] = n.jobLine(j)
		}
		return lines
	}
	counts := map[string]int{}
	var look []engine.JobRecord
	for _, j := range jobs {
		counts[j.Status]++
		switch j.Status {
		case workflows.StatusFailed, workflows.StatusUnauthorized, engine.StatusOnHold, engine.StatusRunning:
			look = append(look, j)
		}
	}
	done := 0
	for s, c := range counts {
		if engine.Terminal(s) {
			done += c
		}
	}
	summary := fmt.Sprintf("%d of %d jobs done", done, len(jobs))
	for _, s := range []string{workflows.StatusFailed, engine.StatusRunning, engine.StatusOnHold, engine.StatusQueued} {
		if counts[s] > 0 {
			summary += fmt.Sprintf(", %d %s", counts[s], statusWords(s))
		}
	}
	lines := []string{summary}
	for i, j := range look {
		if i == maxNamed {
			lines = append(lines, fmt.Sprintf("… and %d more", len(look)-maxNamed))
			break
		}
		lines = append(lines, n.jobLine(j))
	}
	return lines
}

func (n *Notifier) jobLine(j engine.JobRecord) string {
	s := statusIcon(j.Status) + " " + j.Name
	var d time.Duration
	switch {
	case engine.Terminal(j.Status) && !j.Started.IsZero():
		d = j.Finished.Sub(j.Started)
	case j.Status == engine.StatusRunning:
		d = time.Since(j.Started)
	}
	if d > 0 {
		s += " · " + roundDuration(d)
	}
	switch {
	case j.ExitCode > 0 && j.Status == workflows.StatusFailed:
		s += fmt.Sprintf(" · exit %d", j.ExitCode)
	case j.Reason != "" && j.Status != workflows.StatusSuccess:
		s += " · " + n.words.Text(clipText(j.Reason, 100))
	}
	return s
}

func roundDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return "<1s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
