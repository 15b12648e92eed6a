package web

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// Metrics are slipway's Prometheus metrics, served at /metrics. They need
// nothing of the engine beyond what it offers everyone:
//
//   - counters and histograms that move with events come from the
//     "metrics" consumer of the outbox (Notifier), so that they count
//     each event once per delivery, in order, across crashes as the
//     outbox does (an event delivered again after a crash counts again);
//   - gauges (queue depth, pending approvals and their age, the outbox's
//     backlog) and the inbox's counts are read from the store at scrape
//     time, by queries over small indexed sets;
//   - the other adapters report through small hooks: CountDeliveries
//     wraps each outbox consumer, SlackRateLimited is for the Slack
//     adapter, ObserveStoreTx for the store.
type Metrics struct {
	reg   *prometheus.Registry
	store MetricsStore
	log   *slog.Logger
	now   func() time.Time

	pipelines  *prometheus.CounterVec
	jobs       *prometheus.CounterVec
	jobTime    *prometheus.HistogramVec
	queueWait  *prometheus.HistogramVec
	approvals  *prometheus.CounterVec
	deploys    *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	slackWaits prometheus.Counter
	slackWait  prometheus.Counter
	storeTx    prometheus.Histogram
	scrapeErrs prometheus.Counter

	inboxMu sync.Mutex
	inbox   inboxTally
}

// MetricsStore is what /metrics reads of the store (*store.DB).
type MetricsStore interface {
	ActiveJobCounts(ctx context.Context) ([]store.JobCount, error)
	PendingApprovalStats(ctx context.Context) ([]store.PendingApprovalStat, error)
	OutboxStats(ctx context.Context) ([]store.OutboxStat, error)
	InboxSince(ctx context.Context, seq int64, limit int) ([]store.InboxRow, error)
	JobReadyAt(ctx context.Context, jobID string) (time.Time, bool, error)
	Attempt(ctx context.Context, attemptID string) (*engine.AttemptRecord, error)
}

// MetricsOptions configure Metrics.
type MetricsOptions struct {
	Logger *slog.Logger
	Now    func() time.Time // the clock pending approvals' age is told against
}

// NewMetrics returns slipway's metrics, with the Go runtime's and the
// process's.
func NewMetrics(st MetricsStore, opts MetricsOptions) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), store: st, log: opts.Logger, now: opts.Now,
		inbox: inboxTally{done: map[[2]string]int{}}}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	m.pipelines = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slipway_pipelines_finished_total",
		Help: "Pipelines that ended, by app and outcome (success, failed, canceled, error)."}, []string{"app", "status"})
	m.jobs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slipway_jobs_finished_total",
		Help: "Jobs that ended, by app and outcome."}, []string{"app", "status"})
	m.jobTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "slipway_job_duration_seconds",
		Help:    "How long job attempts ran in an executor, by app and outcome.",
		Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200}}, []string{"app", "status"})
	m.queueWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "slipway_job_queue_wait_seconds",
		Help:    "How long jobs waited, once their requires were met, for a free slot or their environment's lock (first attempts).",
		Buckets: []float64{0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 3600}}, []string{"app"})
	m.approvals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slipway_approvals_decided_total",
		Help: "Approvals decided, by app and decision (approved, rejected, expired, canceled)."}, []string{"app", "decision"})
	m.deploys = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slipway_deploys_total",
		Help: "Releases that reached an environment, by app and environment."}, []string{"app", "env"})
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slipway_outbox_deliveries_total",
		Help: "Outbox deliveries to each consumer (github, slack...), by result: delivered, failed (retried later), parked (given up)."},
		[]string{"consumer", "result"})
	m.slackWaits = prometheus.NewCounter(prometheus.CounterOpts{Name: "slipway_slack_rate_limit_waits_total",
		Help: "Times the Slack adapter waited because Slack rate-limited it."})
	m.slackWait = prometheus.NewCounter(prometheus.CounterOpts{Name: "slipway_slack_rate_limit_wait_seconds_total",
		Help: "Time the Slack adapter spent waiting for Slack's rate limits."})
	m.storeTx = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "slipway_store_transaction_seconds",
		Help:    "How long the store's write transactions took, waiting for the writer included.",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5}})
	m.scrapeErrs = prometheus.NewCounter(prometheus.CounterOpts{Name: "slipway_metrics_store_errors_total",
		Help: "Scrapes whose queries of the store failed; their gauges were left out."})
	m.reg.MustRegister(m.pipelines, m.jobs, m.jobTime, m.queueWait, m.approvals, m.deploys, m.deliveries,
		m.slackWaits, m.slackWait, m.storeTx, m.scrapeErrs, storeCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError})
}

// Registry is where the metrics are registered, for another exposition.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SlackRateLimited is the Slack adapter's hook: call it each time Slack
// answered 429 and the adapter waits wait before trying again.
func (m *Metrics) SlackRateLimited(wait time.Duration) {
	m.slackWaits.Inc()
	m.slackWait.Add(wait.Seconds())
}

// ObserveStoreTx is the store's hook: call it with each write
// transaction's duration, from asking for the writer to the commit.
func (m *Metrics) ObserveStoreTx(d time.Duration) { m.storeTx.Observe(d.Seconds()) }

// CountDeliveries wraps the outbox consumer named consumer so that its
// deliveries are counted by result.
func (m *Metrics) CountDeliveries(consumer string, n engine.Notifier) engine.Notifier {
	return countingNotifier{m: m, name: consumer, next: n}
}

type countingNotifier struct {
	m    *Metrics
	name string
	next engine.Notifier
}

func (c countingNotifier) Notify(ctx context.Context, e engine.Event) error {
	err := c.next.Notify(ctx, e)
	result := "delivered"
	var perm *engine.PermanentError
	switch {
	case errors.As(err, &perm):
		result = "parked"
	case err != nil:
		result = "failed"
	}
	c.m.deliveries.WithLabelValues(c.name, result).Inc()
	return err
}

// Notifier is the "metrics" consumer of the outbox: give it to the engine
// among its Notifiers.
func (m *Metrics) Notifier() engine.Notifier { return metricsNotifier{m} }

type metricsNotifier struct{ m *Metrics }

// Notify counts an event. What it reads of the store is read before
// anything is counted, so that an event tried again counts once.
func (n metricsNotifier) Notify(ctx context.Context, e engine.Event) error {
	m, app := n.m, e.Pipeline.App
	switch e.Kind {
	case engine.EventPipelineFinished:
		m.pipelines.WithLabelValues(app, e.Data.Status).Inc()
	case engine.EventJobFinished:
		var ran time.Duration
		if e.Data.AttemptID != "" {
			a, err := m.store.Attempt(ctx, e.Data.AttemptID)
			if err != nil && !errors.Is(err, engine.ErrNotFound) {
				return err
			}
			if err == nil && !a.Finished.IsZero() {
				ran = a.Finished.Sub(a.Started)
			}
		}
		m.jobs.WithLabelValues(app, e.Data.Status).Inc()
		if e.Data.AttemptID != "" {
			m.jobTime.WithLabelValues(app, e.Data.Status).Observe(max(ran, 0).Seconds())
		}
	case engine.EventJobStarted:
		ready, first, err := m.store.JobReadyAt(ctx, e.Data.JobID)
		if errors.Is(err, engine.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if first && !ready.IsZero() {
			m.queueWait.WithLabelValues(app).Observe(max(e.At.Sub(ready), 0).Seconds())
		}
	case engine.EventApprovalDecided:
		m.approvals.WithLabelValues(app, e.Data.Status).Inc()
	case engine.EventDeployed:
		m.deploys.WithLabelValues(app, e.Data.Env).Inc()
	}
	return nil
}

// storeCollector reads the gauges from the store at each scrape.
type storeCollector struct{ m *Metrics }

var (
	descJobs = prometheus.NewDesc("slipway_jobs", "Jobs of unfinished pipelines by app and status: queued is the queue's depth.",
		[]string{"app", "status"}, nil)
	descApprovals = prometheus.NewDesc("slipway_approvals_pending", "Approvals waiting for a decision, by app.",
		[]string{"app"}, nil)
	descApprovalAge = prometheus.NewDesc("slipway_approval_pending_oldest_seconds", "How long the oldest pending approval of each app has waited.",
		[]string{"app"}, nil)
	descOutbox = prometheus.NewDesc("slipway_outbox_backlog", "Events each consumer has not had yet, by state: pending (of which retrying: failed at least once) and parked (given up).",
		[]string{"consumer", "state"}, nil)
	descOutboxAge = prometheus.NewDesc("slipway_outbox_oldest_seconds", "Age of the oldest event each consumer has not had yet.",
		[]string{"consumer"}, nil)
	descInbox = prometheus.NewDesc("slipway_inbox_handled_total", "Requests from outside (webhook deliveries) handled, by source and result: started, ignored, config_error, nothing_to_run, other.",
		[]string{"source", "result"}, nil)
	descInboxPending = prometheus.NewDesc("slipway_inbox_pending", "Requests from outside not handled yet, by source and state (new, retrying).",
		[]string{"source", "state"}, nil)
)

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descJobs, descApprovals, descApprovalAge, descOutbox, descOutboxAge, descInbox, descInboxPending} {
		ch <- d
	}
}

// scrapeTimeout bounds a scrape's queries.
const scrapeTimeout = 5 * time.Second

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	failed := func(what string, err error) {
		m.log.Warn("metrics: store query failed", "query", what, "err", err)
		m.scrapeErrs.Inc()
	}
	if counts, err := m.store.ActiveJobCounts(ctx); err != nil {
		failed("jobs", err)
	} else {
		for _, jc := range counts {
			ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(jc.N), jc.App, jc.Status)
		}
	}
	now := m.now()
	if stats, err := m.store.PendingApprovalStats(ctx); err != nil {
		failed("approvals", err)
	} else {
		for _, s := range stats {
			ch <- prometheus.MustNewConstMetric(descApprovals, prometheus.GaugeValue, float64(s.N), s.App)
			ch <- prometheus.MustNewConstMetric(descApprovalAge, prometheus.GaugeValue, max(now.Sub(s.Oldest), 0).Seconds(), s.App)
		}
	}
	if stats, err := m.store.OutboxStats(ctx); err != nil {
		failed("outbox", err)
	} else {
		for _, s := range stats {
			ch <- prometheus.MustNewConstMetric(descOutbox, prometheus.GaugeValue, float64(s.Pending), s.Consumer, "pending")
			ch <- prometheus.MustNewConstMetric(descOutbox, prometheus.GaugeValue, float64(s.Retrying), s.Consumer, "retrying")
			ch <- prometheus.MustNewConstMetric(descOutbox, prometheus.GaugeValue, float64(s.Parked), s.Consumer, "parked")
			age := 0.0
			if !s.Oldest.IsZero() {
				age = max(now.Sub(s.Oldest), 0).Seconds()
			}
			ch <- prometheus.MustNewConstMetric(descOutboxAge, prometheus.GaugeValue, age, s.Consumer)
		}
	}
	m.inboxMu.Lock()
	defer m.inboxMu.Unlock()
	handled, pending, err := m.inbox.scan(ctx, m.store)
	if err != nil {
		failed("inbox", err)
		return
	}
	for k, n := range handled {
		ch <- prometheus.MustNewConstMetric(descInbox, prometheus.CounterValue, float64(n), k[0], k[1])
	}
	for k, n := range pending {
		ch <- prometheus.MustNewConstMetric(descInboxPending, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}

// inboxTally counts the inbox's requests by result without reading all
// of it at each scrape: the requests before the oldest one not handled
// are counted once, in done, and never read again.
type inboxTally struct {
	next int64             // the first row not counted in done
	done map[[2]string]int // source, result -> handled requests before next
}

const inboxPage = 5000

func (t *inboxTally) scan(ctx context.Context, st MetricsStore) (handled, pending map[[2]string]int, err error) {
	handled = make(map[[2]string]int, len(t.done))
	pending = map[[2]string]int{}
	for k, n := range t.done {
		handled[k] = n
	}
	contiguous := true
	from := t.next
	for {
		rows, err := st.InboxSince(ctx, from, inboxPage)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range rows {
			from = r.Seq + 1
			if !r.Handled {
				contiguous = false
				state := "new"
				if r.Attempts > 0 {
					state = "retrying"
				}
				pending[[2]string{r.Source, state}]++
				continue
			}
			k := [2]string{r.Source, inboxResult(r.Result)}
			handled[k]++
			if contiguous {
				t.done[k]++
				t.next = r.Seq + 1
			}
		}
		if len(rows) < inboxPage {
			return handled, pending, nil
		}
	}
}

// inboxResult puts the intake's words (forge.Intake) in a few classes.
func inboxResult(s string) string {
	switch {
	case strings.HasPrefix(s, "ignored"):
		return "ignored"
	case strings.Contains(s, "config error"):
		return "config_error"
	case strings.HasPrefix(s, "nothing runs"):
		return "nothing_to_run"
	case strings.HasPrefix(s, "pipeline "):
		return "started"
	}
	return "other"
}
