package web

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/bot"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// onHold runs the seed on main up to its approval.
func onHold(t *testing.T, h *harness, id string) *engine.PipelineState {
	t.Helper()
	h.start(id, "main", seedConfig)
	return h.waitFor(id, jobStatus("hold", engine.StatusOnHold))
}

func TestPipelinePage(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	onHold(t, h, "p-hold")
	tests := []struct {
		name, user string
		want       []string // in the page
		not        []string
	}{
		{"releaser", "rita", []string{`formaction="/pipelines/p-hold/approve"`, `formaction="/pipelines/p-hold/reject"`, "Cancel pipeline"}, nil},
		{"author", "alice", []string{bot.Words{}.Refusal("approve", engine.Decision{Code: engine.RefusedSelfApproval, Envs: []string{"production"}})[:20],
			`formaction="/pipelines/p-hold/reject"`}, []string{"/approve"}},
		{"viewer", "viewer", []string{"Sign in as a chat user to approve or reject."}, []string{"/approve", "/reject", "Cancel pipeline"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := h.get(tt.user, "/pipelines/p-hold")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(body, w) {
					t.Errorf("page has %q", w)
				}
			}
			if tt.name == "releaser" {
				golden(t, "pipeline_on_hold.html", mainOf(t, body))
			}
		})
	}
}

func TestPipelinesPage(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.exec.failJob("lint", true)
	for _, id := range []string{"p-1", "p-2"} {
		h.start(id, "feature/"+id, seedConfig)
		h.waitFor(id, func(st *engine.PipelineState) bool { return !st.Pipeline.Finished.IsZero() })
	}
	h.exec.failJob("lint", false)
	onHold(t, h, "p-3")
	_, body := h.get("viewer", "/pipelines")
	golden(t, "pipelines.html", mainOf(t, body))

	_, body = h.get("viewer", "/pipelines?status=failed&branch=feature/p-2")
	if !strings.Contains(body, "/pipelines/p-2") || strings.Contains(body, "/pipelines/p-1\"") || strings.Contains(body, "/pipelines/p-3") {
		t.Errorf("filtered list wrong:\n%s", mainOf(t, body))
	}
}

func TestPipelinesPaging(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	const quick = "version: 2.1\njobs:\n  a: {machine: true, steps: [{run: \"true\"}]}\nworkflows:\n  w: {jobs: [a]}\n"
	for i := range perPage + 2 {
		id := "q-" + itoa(i)
		h.start(id, "main", quick)
	}
	_, body := h.get("viewer", "/pipelines")
	if n := strings.Count(body, `class="strong"`); n != perPage {
		t.Errorf("first page lists %d pipelines, want %d", n, perPage)
	}
	i := strings.Index(body, `class="pager"><a class="btn" href="`)
	if i < 0 {
		t.Fatal("no next page link")
	}
	next := body[i+len(`class="pager"><a class="btn" href="`):]
	next = strings.ReplaceAll(next[:strings.Index(next, `"`)], "&amp;", "&")
	_, body = h.get("viewer", next)
	if n := strings.Count(body, `class="strong"`); n != 2 || !strings.Contains(body, "/pipelines/q-0\"") {
		t.Errorf("second page lists %d pipelines:\n%s", n, mainOf(t, body))
	}
}

func TestJobPage(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.exec.failJob("test", true)
	h.exec.setStore(func(job *engine.JobRun) {
		if job.JobName != "test" {
			return
		}
		write := func(rel, body string) {
			p := filepath.Join(job.OutputDir, rel)
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte(body), 0o644)
		}
		write("artifacts/coverage/index.html", "<script>alert(1)</script>")
		write("artifacts/build.log", "built\n")
		write("test-results/junit.xml", `<testsuites><testsuite name="billing">
<testcase classname="billing.Invoice" name="TestTotal"/>
<testcase classname="billing.Invoice" name="TestTax"><failure message="want 21, got 20">invoice_test.go:42</failure></testcase>
<testcase classname="billing.Invoice" name="TestLater"><skipped/></testcase>
</testsuite></testsuites>`)
	})
	st := h.start("p-job", "main", seedConfig)
	done := h.waitFor(st.ID, func(st *engine.PipelineState) bool { return !st.Pipeline.Finished.IsZero() })
	var test engine.JobRecord
	for _, j := range done.Jobs {
		if j.Name == "test" {
			test = j
		}
	}
	resp, body := h.get("viewer", "/pipelines/p-job/jobs/"+test.ID)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	golden(t, "job_failed.html", mainOf(t, body))

	// An artifact is served sandboxed: a job's HTML never runs as the dashboard.
	art := "/pipelines/p-job/jobs/" + test.ID + "/artifacts/" + test.AttemptID + "/artifacts/coverage/index.html"
	resp, body = h.get("viewer", art)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Disposition") == "" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("artifact: %d %v", resp.StatusCode, resp.Header)
	}
	for _, p := range []string{
		"/pipelines/p-job/jobs/" + test.ID + "/artifacts/" + test.AttemptID + "/../../slipway.db",
		"/pipelines/p-job/jobs/" + test.ID + "/artifacts/" + test.AttemptID + "/workspace/x",
		"/pipelines/p-job/jobs/" + done.Jobs[0].ID + "/artifacts/" + test.AttemptID + "/artifacts/build.log", // another job's attempt
	} {
		if resp, _ := h.get("viewer", p); resp.StatusCode == 200 {
			t.Errorf("%s: %d, want none", p, resp.StatusCode)
		}
	}
	// The raw log, whole.
	_, body = h.get("viewer", "/pipelines/p-job/jobs/"+test.ID+"/log.txt")
	if !strings.Contains(body, "error: test failed") {
		t.Errorf("raw log: %q", body)
	}
}

func TestDeploymentsPage(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, id := range []string{"d-1", "d-2"} {
		onHold(t, h, id)
		if resp := h.post("rita", "/pipelines/"+id+"/approve", url.Values{"csrf": {h.csrf("rita")}, "job": {jobID(t, h, id, "hold")}}); resp.StatusCode != 303 {
			t.Fatalf("approve: %d", resp.StatusCode)
		}
		h.waitFor(id, func(st *engine.PipelineState) bool { return !st.Pipeline.Finished.IsZero() })
	}
	if d, err := h.engine.Lock(context.Background(), "backend", "production", engine.Actor{ID: alice}, "freeze for the audit"); err != nil || !d.Applied {
		t.Fatalf("lock: %v %v", d, err)
	}
	_, body := h.get("viewer", "/deployments")
	golden(t, "deployments.html", mainOf(t, body))
}

func jobID(t *testing.T, h *harness, pipeline, name string) string {
	t.Helper()
	st, err := h.db.PipelineState(context.Background(), pipeline)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range st.Jobs {
		if j.Name == name {
			return j.ID
		}
	}
	t.Fatalf("no job %s", name)
	return ""
}

func TestActions(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	onHold(t, h, "a-1")
	hold := jobID(t, h, "a-1", "hold")
	flashOf := func(resp *http.Response) string {
		for _, c := range resp.Cookies() {
			if c.Name == flashCookie {
				s, _ := url.QueryUnescape(c.Value)
				return s
			}
		}
		return ""
	}
	// The author may not approve: the engine refuses, in the chat's words.
	resp := h.post("alice", "/pipelines/a-1/approve", url.Values{"csrf": {h.csrf("alice")}, "job": {hold}})
	want := bot.Words{}.Refusal("approve", engine.Decision{Code: engine.RefusedSelfApproval, Envs: []string{"production"}})
	if resp.StatusCode != 303 || flashOf(resp) != want {
		t.Errorf("author's approve: %d %q, want %q", resp.StatusCode, flashOf(resp), want)
	}
	// The flash shows once on the pipeline's page.
	req, _ := http.NewRequest("GET", h.server.URL+"/pipelines/a-1", nil)
	req.SetBasicAuth("alice", password)
	req.AddCookie(&http.Cookie{Name: flashCookie, Value: url.QueryEscape(want)})
	if _, body := h.do(req); !strings.Contains(body, `<div class="flash" role="status">You wrote this change`) {
		t.Errorf("flash not shown")
	}
	// Without a token, from another site, or as a viewer: nothing happens.
	for name, tc := range map[string]struct {
		user, site string
		form       url.Values
		code       int
	}{
		"no csrf":    {"rita", "same-origin", url.Values{"job": {hold}}, 403},
		"cross site": {"rita", "cross-site", url.Values{"csrf": {h.csrf("rita")}, "job": {hold}}, 403},
		"viewer":     {"viewer", "same-origin", url.Values{"csrf": {h.csrf("rita")}, "job": {hold}}, 403},
		"nobody":     {"", "same-origin", url.Values{"job": {hold}}, 401},
		"other job":  {"rita", "same-origin", url.Values{"csrf": {h.csrf("rita")}, "job": {"nope"}}, 404},
	} {
		req, _ := http.NewRequest("POST", h.server.URL+"/pipelines/a-1/approve", strings.NewReader(tc.form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", tc.site)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, password)
		}
		if resp, _ := h.do(req); resp.StatusCode != tc.code {
			t.Errorf("%s: %d, want %d", name, resp.StatusCode, tc.code)
		}
	}
	// The release manager approves; production deploys.
	resp = h.post("rita", "/pipelines/a-1/approve", url.Values{"csrf": {h.csrf("rita")}, "job": {hold}})
	if got := flashOf(resp); got != "Approved by U0RELEASE." {
		t.Errorf("approve: %q", got)
	}
	st := h.waitFor("a-1", func(st *engine.PipelineState) bool { return !st.Pipeline.Finished.IsZero() })
	if st.Pipeline.Status != workflows.StatusSuccess {
		t.Errorf("pipeline %s", st.Pipeline.Status)
	}
	_, body := h.get("viewer", "/pipelines/a-1")
	if !strings.Contains(body, "Approved by U0RELEASE") {
		t.Errorf("the gate does not say who approved")
	}
	// Rerun the finished workflow, then cancel it while it runs.
	h.exec.holdJob("build")
	resp = h.post("alice", "/pipelines/a-1/rerun", url.Values{"csrf": {h.csrf("alice")}, "workflow": {"main"}})
	if got := flashOf(resp); !strings.HasPrefix(got, "Rerunning workflow main of pipeline 1") {
		t.Errorf("rerun: %q", got)
	}
	h.waitFor("a-1", jobStatus("build", engine.StatusRunning))
	resp = h.post("rita", "/pipelines/a-1/cancel", url.Values{"csrf": {h.csrf("rita")}})
	if got := flashOf(resp); got != "Pipeline 1 canceled." {
		t.Errorf("cancel: %q", got)
	}
}

func TestAccess(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	onHold(t, h, "s-1")
	onHold(t, h, "s-2")
	build := jobID(t, h, "s-1", "build")
	if resp, _ := h.get("", "/pipelines/s-1"); resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("closed by default: %d", resp.StatusCode)
	}
	if resp, _ := h.get("", "/healthz"); resp.StatusCode != 200 {
		t.Errorf("healthz: %d", resp.StatusCode)
	}
	if resp, _ := h.get("", "/static/style.css"); resp.StatusCode != 200 {
		t.Errorf("static: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", h.server.URL+"/pipelines", nil)
	req.SetBasicAuth("rita", "wrong")
	if resp, _ := h.do(req); resp.StatusCode != 401 {
		t.Errorf("a wrong password: %d", resp.StatusCode)
	}

	// A signed link: a cookie for its path, then a redirect without the token.
	link := signedLink(h.key, h.server.URL, "/pipelines/s-1", h.clock.Now().Add(time.Hour))
	resp, _ := h.do(mustReq(t, link))
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/pipelines/s-1" {
		t.Fatalf("link: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	var grant *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == linkCookie {
			grant = c
		}
	}
	if grant == nil || grant.Path != "/pipelines/s-1" || !grant.HttpOnly {
		t.Fatalf("grant cookie: %+v", grant)
	}
	withGrant := func(path string) int {
		req := mustReq(t, h.server.URL+path)
		req.AddCookie(&http.Cookie{Name: grant.Name, Value: grant.Value})
		resp, _ := h.do(req)
		return resp.StatusCode
	}
	for path, code := range map[string]int{
		"/pipelines/s-1":                            200,
		"/pipelines/s-1/jobs/" + build:              200,
		"/pipelines/s-2":                            401, // another pipeline
		"/pipelines/s-10":                           401, // a prefix is not a path
		"/deployments":                              401,
		"/pipelines/s-1/jobs/nope":                  404,
		"/pipelines/s-1/jobs/" + build + "/log.txt": 200,
	} {
		if got := withGrant(path); got != code {
			t.Errorf("with the link's grant, %s: %d, want %d", path, got, code)
		}
	}
	// A link views; it never acts.
	req = mustReq(t, h.server.URL+"/pipelines/s-1/cancel")
	req.Method = "POST"
	req.AddCookie(&http.Cookie{Name: grant.Name, Value: grant.Value})
	if resp, _ := h.do(req); resp.StatusCode != 401 {
		t.Errorf("a link's POST: %d", resp.StatusCode)
	}
	// Tampered, moved or expired tokens are refused.
	tok := strings.SplitN(link, linkParam+"=", 2)[1]
	for name, u := range map[string]string{
		"moved":   h.server.URL + "/pipelines/s-2?" + linkParam + "=" + tok,
		"expired": signedLink(h.key, h.server.URL, "/pipelines/s-1", h.clock.Now().Add(-time.Minute)),
		"forged":  signedLink([]byte("another key, another server....."), h.server.URL, "/pipelines/s-1", h.clock.Now().Add(time.Hour)),
	} {
		if resp, _ := h.do(mustReq(t, u)); resp.StatusCode != 403 {
			t.Errorf("%s link: %d", name, resp.StatusCode)
		}
	}
}

func mustReq(t *testing.T, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestTrustedHeader(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	onHold(t, h, "t-1")
	h.handler.auth.TrustedHeader = "X-Forwarded-User"
	h.handler.auth.HeaderUsers = map[string]string{"rita@acme.example": releaser}
	get := func() string {
		req := mustReq(t, h.server.URL+"/pipelines/t-1")
		req.Header.Set("X-Forwarded-User", "rita@acme.example")
		resp, body := h.do(req)
		return itoa(resp.StatusCode) + body
	}
	if got := get(); !strings.HasPrefix(got, "401") {
		t.Errorf("the header from an untrusted address was believed")
	}
	h.handler.auth.TrustedProxies = mustPrefixes("127.0.0.0/8", "::1/128")
	if got := get(); !strings.HasPrefix(got, "200") || !strings.Contains(got, "/pipelines/t-1/approve") {
		t.Errorf("the proxy's user cannot approve: %.300s", got)
	}
}

func TestHealth(t *testing.T) {
	h := newHarness(t, harnessOpts{checks: []Check{
		{Name: "store", Func: func(ctx context.Context) error { return nil }},
		{Name: "slack", Func: func(ctx context.Context) error { return errors.New("socket mode disconnected 2m ago; reconnecting") }},
	}})
	resp, body := h.get("", "/readyz")
	if resp.StatusCode != 503 || body != "ok   store\nFAIL slack: socket mode disconnected 2m ago; reconnecting\n" {
		t.Errorf("readyz: %d %q", resp.StatusCode, body)
	}
	h.handler.checks = h.handler.checks[:1]
	if resp, body := h.get("", "/readyz"); resp.StatusCode != 200 || body != "ok   store\n" {
		t.Errorf("readyz: %d %q", resp.StatusCode, body)
	}
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	id, event, data string
}

// readEvents reads events from an SSE body onto a channel, until it ends.
func readEvents(body *bufio.Reader) <-chan sseEvent {
	ch := make(chan sseEvent, 1024)
	go func() {
		defer close(ch)
		var ev sseEvent
		var data []string
		for {
			line, err := body.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if data != nil || ev.event != "" {
					ev.data = strings.Join(data, "\n")
					ch <- ev
				}
				ev, data = sseEvent{}, nil
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				data = append(data, line[6:])
			}
		}
	}()
	return ch
}

func TestLiveLog(t *testing.T) {
	h := newHarness(t, harnessOpts{poll: 10 * time.Millisecond})
	release := h.exec.holdJob("build")
	h.start("l-1", "main", seedConfig)
	h.waitFor("l-1", jobStatus("build", engine.StatusRunning))
	build := jobID(t, h, "l-1", "build")
	req := mustReq(t, h.server.URL+"/pipelines/l-1/jobs/"+build+"/log")
	req.SetBasicAuth("viewer", password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := readEvents(bufio.NewReader(resp.Body))
	var log strings.Builder
	lastID := ""
	deadline := time.After(15 * time.Second)
	// The log grows while the job runs: the first lines, then more.
	for !strings.Contains(log.String(), "line 30:") {
		select {
		case ev := <-events:
			log.WriteString(ev.data)
			if ev.event == "" {
				lastID = ev.id
			}
		case <-deadline:
			t.Fatalf("the log did not grow live; got %q", log.String())
		}
	}
	if !strings.Contains(log.String(), `<span class="f4 ab">$ make build</span>`) || !strings.Contains(log.String(), `&lt;build&gt;`) {
		t.Errorf("log not rendered: %.400q", log.String())
	}
	// A viewer who comes once the log is a file, asking for its tail,
	// gets it from the start: the tail is the whole of a small log.
	time.Sleep(1100 * time.Millisecond)
	req = mustReq(t, h.server.URL+"/pipelines/l-1/jobs/"+build+"/log?tail=1000000")
	req.SetBasicAuth("viewer", password)
	late, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-readEvents(bufio.NewReader(late.Body)); !strings.HasPrefix(ev.data, `<span class="f4 ab">$ make build</span>`) {
		t.Errorf("a late viewer's log starts %.80q", ev.data)
	}
	late.Body.Close()
	close(release)
	for ev := range events {
		if ev.event == "end" {
			break
		}
		log.WriteString(ev.data)
		if ev.event == "" {
			lastID = ev.id
		}
	}
	if !strings.Contains(log.String(), `done &amp; <span class="f2">green</span>`) {
		t.Errorf("the end of the log is missing: %q", log.String()[max(0, log.Len()-300):])
	}
	// A reconnect goes on from the offset it had, and the whole log was sent once.
	_, text := h.get("viewer", "/pipelines/l-1/jobs/"+build+"/log.txt")
	if lastID != itoa(len(text)) {
		t.Errorf("last event id %s, log is %d bytes", lastID, len(text))
	}
	req = mustReq(t, h.server.URL+"/pipelines/l-1/jobs/"+build+"/log")
	req.SetBasicAuth("viewer", password)
	req.Header.Set("Last-Event-ID", itoa(len(text)-5))
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	var rest []sseEvent
	for ev := range readEvents(bufio.NewReader(resp2.Body)) {
		rest = append(rest, ev)
	}
	if len(rest) != 2 || rest[0].data != "\n" || rest[1].event != "end" {
		t.Errorf("resumed stream: %+v", rest)
	}
}

// TestPagesEscape: what a push, a commit or a config says (branch,
// commit message and author, who started it, job and workflow names) is
// text on every page that shows it, in elements and in attributes, and a
// commit link that is not http(s) is not a link that runs.
func TestPagesEscape(t *testing.T) {
	const evil = `<script>alert(1)</script>"javascript:alert(2)`
	const escaped = `&lt;script&gt;alert(1)&lt;/script&gt;&#34;javascript:alert(2)`
	config := fmt.Sprintf(`version: 2.1
jobs:
  build: {machine: true, steps: [{run: make build}]}
  deploy: {machine: true, steps: [{run: ./deploy.sh}]}
workflows:
  %[1]q:
    jobs:
      - build: {name: %[1]q}
      - deploy: {name: deploy-staging, requires: [%[1]q], context: staging}
`, evil)
	h := newHarness(t, harnessOpts{})
	h.exec.failJob("deploy", true)
	sha := strings.Repeat("ab", 20)
	_, err := h.engine.StartPipeline(context.Background(), engine.StartRequest{ID: "x-1", App: "backend", Repo: "acme/backend",
		Author: evil, Trigger: workflows.Trigger{Branch: evil, Revision: sha, Source: "webhook"},
		Config: engine.ConfigFunc(func(context.Context) (*workflows.Config, error) {
			return workflows.Load(".circleci/config.yml", []byte(config), workflows.LoadOptions{AllowMachine: true})
		}),
		Commit: engine.CommitInfo{Title: evil, Author: evil, URL: "javascript:alert(3)"}})
	if err != nil {
		t.Fatal(err)
	}
	st := h.waitFor("x-1", func(st *engine.PipelineState) bool { return !st.Pipeline.Finished.IsZero() })
	pages := []string{"/pipelines", "/pipelines?branch=" + url.QueryEscape(evil), "/pipelines/x-1", "/deployments"}
	for _, j := range st.Jobs {
		pages = append(pages, "/pipelines/x-1/jobs/"+url.PathEscape(j.ID))
	}
	urlJS := regexp.MustCompile(`(?i)(href|src|action)="\s*javascript:`)
	for _, page := range pages {
		for _, user := range []string{"viewer", "rita"} {
			resp, body := h.get(user, page)
			if resp.StatusCode != 200 {
				t.Fatalf("%s as %s: status %d", page, user, resp.StatusCode)
			}
			switch {
			case !strings.Contains(body, escaped):
				t.Errorf("%s as %s does not show %s escaped", page, user, evil)
			case strings.Contains(body, "<script>alert"), strings.Contains(body, `"javascript:`):
				t.Errorf("%s as %s has it unescaped:\n%s", page, user, mainOf(t, body))
			case urlJS.MatchString(body):
				t.Errorf("%s as %s links to javascript: %s", page, user, urlJS.FindString(body))
			}
		}
	}
	// The failed job's rerun form carries the names in attributes.
	if _, body := h.get("rita", "/pipelines/x-1"); !strings.Contains(body, `<input type="hidden" name="workflow" value="`+escaped+`">`) {
		t.Errorf("no rerun form with the workflow's name escaped:\n%s", mainOf(t, body))
	}
}
