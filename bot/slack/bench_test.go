package slack_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/bot/slack"
	"github.com/slipway-ci/slipway/bot/slack/slacktest"
	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// burst sends n slash commands at once and returns how long each took to
// be acknowledged, in the order sent.
func burst(tb testing.TB, h *harness, n int) []time.Duration {
	tb.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = h.fake.SendSlashCommand(slacktest.SlashCommand{Command: "/slipway", Text: "help", UserID: alice, ChannelID: deploys})
	}
	want := make(map[string]bool, n)
	for _, id := range ids {
		want[id] = true
	}
	// Polled rather than waited for at every change of the fake, which
	// would scan its envelopes at every ack and slow what it measures.
	var lat []time.Duration
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		lat = lat[:0]
		for _, e := range h.fake.Envelopes() {
			if e.Acked && want[e.ID] {
				lat = append(lat, e.AckLatency())
			}
		}
		if len(lat) == n {
			return lat
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d acknowledged", len(lat), n)
		}
	}
}

// percentile is the p-th percentile of ds, sorted in place.
func percentile(ds []time.Duration, p float64) time.Duration {
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*p))]
}

// BenchmarkAckBurst measures envelope-to-ack latency in bursts of 200
// slash commands, each acknowledged before it is kept and handled (the
// handling of the earlier bursts goes on meanwhile).
func BenchmarkAckBurst(b *testing.B) {
	h := newHarness(b, harnessOptions{})
	var all []time.Duration
	for b.Loop() {
		all = append(all, burst(b, h, 200)...)
	}
	b.ReportMetric(float64(percentile(all, 0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(all, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(percentile(all, 1).Microseconds())/1000, "max-ms")
}

// A burst of 200 commands is acknowledged within Slack's deadline (at
// the 99th percentile, in the best of three bursts: a test shares its
// machine), and every one of them is answered once.
func TestAckBurst(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	best := time.Duration(1<<63 - 1)
	for i := range 3 {
		lat := burst(t, h, 200)
		p50, p99 := percentile(lat, 0.5), percentile(lat, 0.99)
		t.Logf("200 commands at once: acknowledged in p50 %v, p99 %v, max %v", p50, p99, percentile(lat, 1))
		best = min(best, p99)
		h.wait("the answers", func() bool { return len(h.fake.Ephemerals(alice)) >= 200*(i+1) })
		if best <= ackBound {
			break
		}
	}
	if best > ackBound {
		t.Errorf("p99 %v at best, want within %v", best, ackBound)
	}
	time.Sleep(100 * time.Millisecond)
	if n, want := len(h.fake.Ephemerals(alice)), len(h.fake.Envelopes()); n != want {
		t.Errorf("%d answers to %d commands", n, want)
	}
}

// slowInbox is an inbox that takes its time to keep an envelope.
type slowInbox struct {
	slack.Inbox
	delay time.Duration
}

func (s slowInbox) Receive(ctx context.Context, it engine.InboxItem) (bool, error) {
	time.Sleep(s.delay)
	return s.Inbox.Receive(ctx, it)
}

// Acks wait for nothing: with an inbox that takes 20ms to keep each
// envelope, 50 commands at once are acknowledged as fast as ever, where
// acks behind the inbox would take a second.
func TestAckBeforeKeep(t *testing.T) {
	const n, delay = 50, 20 * time.Millisecond
	h := newHarness(t, harnessOptions{inbox: func(db *store.DB) slack.Inbox { return slowInbox{db, delay} }})
	lat := burst(t, h, n)
	p99 := percentile(lat, 0.99)
	t.Logf("%d commands at once, kept in %v each: acknowledged in p99 %v", n, delay, p99)
	if p99 > n*delay/4 {
		t.Errorf("p99 %v: acks wait for the inbox", p99)
	}
	h.wait("every answer", func() bool { return len(h.fake.Ephemerals(alice)) == n })
}
