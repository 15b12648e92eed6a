package web

import (
	"context"
	"encoding/base64"

	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// chromium finds Debian's Chromium, or skips (fails, where
// SLIPWAY_REQUIRE_BROWSER=1) with the reason.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("SLIPWAY_CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := "no Chromium here (apt-get install chromium, or set SLIPWAY_CHROMIUM)"
	if os.Getenv("SLIPWAY_REQUIRE_BROWSER") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// shot saves a full-page screenshot under the test's temp dir and, when
// SLIPWAY_ARTIFACTS is set, there too.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dirs := []string{t.TempDir()}
	if d := os.Getenv("SLIPWAY_ARTIFACTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
}

// TestBrowser opens a running pipeline in Chromium: the graph is drawn,
// the running job's log grows live, and the release manager approves.
func TestBrowser(t *testing.T) {
	exe := chromium(t)
	h := newHarness(t, harnessOpts{poll: 50 * time.Millisecond})
	h.exec.mu.Lock()
	h.exec.tick = 60 * time.Millisecond
	h.exec.mu.Unlock()
	release := h.exec.holdJob("lint")
	const config = `version: 2.1
jobs:
  build: {machine: true, steps: [{run: make build}]}
  test: {machine: true, steps: [{run: go test ./...}]}
  lint: {machine: true, steps: [{run: golangci-lint run}]}
  deploy: {machine: true, steps: [{run: ./deploy.sh}]}
workflows:
  main:
    jobs:
      - build
      - test: {requires: [build]}
      - lint: {requires: [build]}
      - deploy: {name: migrate-db, requires: [test, lint], context: staging}
      - deploy: {name: deploy-staging, requires: [migrate-db], context: staging}
      - deploy: {name: smoke-tests, requires: [deploy-staging]}
      - hold: {type: approval, requires: [smoke-tests]}
      - deploy: {name: push-image, requires: [hold], context: production}
      - deploy: {name: update-lambdas, requires: [push-image], context: production}
      - deploy: {name: deploy-app, requires: [push-image], context: production}
      - deploy: {name: deploy-workers, requires: [push-image], context: production}
`
	h.start("b-1", "main", config)
	h.waitFor("b-1", jobStatus("lint", engine.StatusRunning))
	h.clock.add(42 * time.Second)
	lint := jobID(t, h, "b-1", "lint")

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("headless", "new"), chromedp.WindowSize(1360, 900), chromedp.Flag("hide-scrollbars", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 25*time.Second)
	defer cancelT()
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("rita:"+password))
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		t.Fatal(err)
	}

	// The running job's log grows while we watch: by ten lines and more.
	logText := `document.getElementById("log").textContent`
	nctx, ncancel := context.WithTimeout(ctx, 8*time.Second)
	err := chromedp.Do(nctx, chromedp.Navigate(h.server.URL+"/pipelines/b-1/jobs/"+lint))
	ncancel()
	if err != nil {
		t.Fatalf("navigate: %v", err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 8*time.Second)
	err = chromedp.Do(pctx, chromedp.Poll[chromedp.Void](logText+`.includes("line 3:")`))
	pcancel()
	if err != nil {
		html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerHTML`))
		t.Fatalf("live log: %v\n%s", err, html)
	}
	first, err := chromedp.Run(ctx, chromedp.Evaluate[string](logText))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](logText+".length > "+itoa(len(first)+150))); err != nil {
		t.Fatalf("live log: %v", err)
	}
	later, err := chromedp.Run(ctx, chromedp.Evaluate[string](logText))
	if err != nil {
		t.Fatal(err)
	}
	if len(later) <= len(first) || !strings.HasPrefix(later, first[:20]) {
		t.Errorf("the log did not grow: %d then %d bytes", len(first), len(later))
	}
	green, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#log span.f2").length`))
	if err != nil || green < 3 {
		t.Errorf("ANSI colours not rendered: %d green spans (%v)", green, err)
	}
	shot(t, ctx, "job-live-log.png")

	// The pipeline's page: the graph, then the approval.
	close(release)
	h.waitFor("b-1", jobStatus("hold", engine.StatusOnHold))
	h.clock.add(3 * time.Minute)
	err = chromedp.Do(ctx,
		chromedp.Navigate(h.server.URL+"/pipelines/b-1"),
		chromedp.WaitVisible(chromedp.CSS("svg.graph")),
		chromedp.WaitVisible(chromedp.ID("approve-b-1")),
	)
	if err != nil {
		t.Fatalf("pipeline page: %v", err)
	}
	boxes, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.graph a.node").length`))
	if err != nil {
		t.Fatal(err)
	}
	if boxes != 11 {
		t.Errorf("the graph has %d boxes, want 11", boxes)
	}
	shot(t, ctx, "pipeline-on-hold.png")
	err = chromedp.Do(ctx, chromedp.Click(chromedp.ID("approve-b-1")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if err != nil {
		t.Fatalf("approve: %v", err)
	}
	flash, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".flash")))
	if err != nil {
		t.Fatalf("approve: %v", err)
	}
	if flash != "Approved by U0RELEASE." {
		t.Errorf("after Approve the page says %q", flash)
	}
	st := h.waitFor("b-1", func(st *engine.PipelineState) bool { return !st.Pipeline.Finished.IsZero() })
	if st.Pipeline.Status != workflows.StatusSuccess {
		t.Errorf("pipeline %s after approval", st.Pipeline.Status)
	}
	// The page refreshes itself to the end.
	if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](`!document.querySelector("#live[data-refresh]") && document.querySelector("h1 .pill").textContent === "success"`)); err != nil {
		t.Errorf("the page did not refresh to the outcome: %v", err)
	}
	shot(t, ctx, "pipeline-done.png")
}
