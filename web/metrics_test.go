package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/slipway-ci/slipway/workflows/engine"
)

// scrape reads /metrics with Prometheus' own text parser.
func scrape(t *testing.T, h *harness) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(h.server.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value is the value of the metric of family name whose labels are
// labels ("k=v" pairs); 0 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
next:
	for _, m := range f.Metric {
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

func TestMetricsMoveWithAPipeline(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	before := scrape(t, h)
	if value(before, "slipway_jobs_finished_total", "app=backend", "status=success") != 0 {
		t.Fatal("counters start at zero")
	}
	onHold(t, h, "m-1")
	h.clock.add(90 * time.Second) // the approval has waited this long
	// Each family is fed by its own events, delivered in order but
	// counted as they come: the checks are waited for together.
	type check struct {
		name   string
		labels []string
		want   float64
	}
	waitFor := func(checks []check) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			fams := scrape(t, h)
			var wrong []string
			for _, c := range checks {
				if got := value(fams, c.name, c.labels...); got != c.want {
					wrong = append(wrong, fmt.Sprintf("%s%v = %v, want %v", c.name, c.labels, got, c.want))
				}
			}
			if len(wrong) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("metrics did not move:\n%s", strings.Join(wrong, "\n"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// On hold: four jobs done, one approval pending for 90s, one blocked.
	waitFor([]check{
		{"slipway_jobs_finished_total", []string{"app=backend", "status=success"}, 4},
		{"slipway_job_duration_seconds", []string{"app=backend", "status=success"}, 4},
		{"slipway_job_queue_wait_seconds", []string{"app=backend"}, 4},
		{"slipway_approvals_pending", []string{"app=backend"}, 1},
		{"slipway_approval_pending_oldest_seconds", []string{"app=backend"}, 90},
		{"slipway_jobs", []string{"app=backend", "status=blocked"}, 1},
		{"slipway_jobs", []string{"app=backend", "status=on_hold"}, 1},
		{"slipway_deploys_total", []string{"app=backend", "env=staging"}, 1},
		{"slipway_pipelines_finished_total", []string{"app=backend", "status=success"}, 0},
	})
	// Approved: the pipeline ends, the approval is counted and no longer pending.
	if d, err := h.engine.Approve(context.Background(), jobID(t, h, "m-1", "hold"), engine.Actor{ID: releaser}); err != nil || !d.Applied {
		t.Fatalf("approve: %v %v", d, err)
	}
	waitFor([]check{
		{"slipway_pipelines_finished_total", []string{"app=backend", "status=success"}, 1},
		{"slipway_jobs_finished_total", []string{"app=backend", "status=success"}, 6},
		{"slipway_approvals_decided_total", []string{"app=backend", "decision=approved"}, 1},
		{"slipway_approvals_pending", []string{"app=backend"}, 0},
		{"slipway_deploys_total", []string{"app=backend", "env=production"}, 1},
		{"slipway_outbox_backlog", []string{"consumer=metrics", "state=parked"}, 0},
	})
}

func TestMetricsHooks(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	m := h.metrics
	m.SlackRateLimited(1500 * time.Millisecond)
	m.SlackRateLimited(500 * time.Millisecond)
	m.ObserveStoreTx(3 * time.Millisecond)
	ok := m.CountDeliveries("slack", notifyFunc(func(context.Context, engine.Event) error { return nil }))
	bad := m.CountDeliveries("github", notifyFunc(func(context.Context, engine.Event) error { return errors.New("502") }))
	parked := m.CountDeliveries("github", notifyFunc(func(context.Context, engine.Event) error { return engine.Permanent(errors.New("422")) }))
	ok.Notify(context.Background(), engine.Event{})
	bad.Notify(context.Background(), engine.Event{})
	bad.Notify(context.Background(), engine.Event{})
	parked.Notify(context.Background(), engine.Event{})
	// Webhook deliveries: two handled, one still failing.
	ctx := context.Background()
	for i, res := range []string{"pipeline 3", "ignored: not a push", ""} {
		id := itoa(i)
		if _, err := h.db.Receive(ctx, engine.InboxItem{Source: "github", ID: id, Kind: "push", Payload: []byte("{}"), Received: h.clock.Now()}); err != nil {
			t.Fatal(err)
		}
		if res != "" {
			h.db.HandledInbox(ctx, "github", id, res, h.clock.Now())
		} else {
			h.db.RetryInbox(ctx, "github", id, h.clock.Now().Add(time.Minute), "GitHub is down")
		}
	}
	for range 2 { // a second scrape counts the same
		fams := scrape(t, h)
		for _, c := range []struct {
			name   string
			labels []string
			want   float64
		}{
			{"slipway_slack_rate_limit_waits_total", nil, 2},
			{"slipway_slack_rate_limit_wait_seconds_total", nil, 2},
			{"slipway_store_transaction_seconds", nil, 1},
			{"slipway_outbox_deliveries_total", []string{"consumer=slack", "result=delivered"}, 1},
			{"slipway_outbox_deliveries_total", []string{"consumer=github", "result=failed"}, 2},
			{"slipway_outbox_deliveries_total", []string{"consumer=github", "result=parked"}, 1},
			{"slipway_inbox_handled_total", []string{"source=github", "result=started"}, 1},
			{"slipway_inbox_handled_total", []string{"source=github", "result=ignored"}, 1},
			{"slipway_inbox_pending", []string{"source=github", "state=retrying"}, 1},
			{"go_goroutines", nil, -1},
		} {
			got := value(fams, c.name, c.labels...)
			if c.want == -1 && got > 0 || got == c.want {
				continue
			}
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The failing delivery is handled at last: it counts once.
	h.db.HandledInbox(ctx, "github", "2", "pipeline 4", h.clock.Now())
	fams := scrape(t, h)
	if got := value(fams, "slipway_inbox_handled_total", "source=github", "result=started"); got != 2 {
		t.Errorf("started deliveries = %v, want 2", got)
	}
	if got := value(fams, "slipway_inbox_pending", "source=github", "state=retrying"); got != 0 {
		t.Errorf("retrying deliveries = %v, want 0", got)
	}
}

type notifyFunc func(context.Context, engine.Event) error

func (f notifyFunc) Notify(ctx context.Context, e engine.Event) error { return f(ctx, e) }
