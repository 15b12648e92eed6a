package engine

import (
	"log/slog"
	"sync"
	"time"
)

// Store failures are retried, never dropped: a result that cannot be
// recorded (a full disk, a locked file) waits in memory and is recorded
// again until it works or the process stops, and recovery at the next
// start takes over from there. The waits between tries grow from
// troubleMin to troubleMax.
const (
	troubleMin = 50 * time.Millisecond
	troubleMax = 5 * time.Second
)

// trouble follows an episode of store failures, so that the operator sees
// one error line when it starts and one when it ends, not one per retry.
// It is safe for concurrent use.
type trouble struct {
	log *slog.Logger

	mu       sync.Mutex
	since    time.Time // start of the episode; zero when the store works
	failures int
	last     error
}

// failed counts a failure and says how long to wait before trying again.
func (t *trouble) failed(op string, err error) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.since.IsZero() {
		t.since = time.Now()
		t.log.Error("the store is failing; slipway retries until it works again", "op", op, "err", err)
	}
	t.failures++
	t.last = err
	return t.backoff()
}

// wait is how long to wait before the next try, in the current episode.
func (t *trouble) wait() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.backoff()
}

func (t *trouble) backoff() time.Duration {
	d := troubleMin
	for i := 1; i < t.failures && d < troubleMax; i++ {
		d *= 2
	}
	return min(d, troubleMax)
}

// ok ends the episode, if there is one, after a store write succeeded.
func (t *trouble) ok() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.since.IsZero() {
		return
	}
	t.log.Warn("the store works again", "failures", t.failures, "after", time.Since(t.since).Round(time.Millisecond), "last_err", t.last)
	t.since, t.failures, t.last = time.Time{}, 0, nil
}

// err is the last failure of the current episode; nil when the store works.
func (t *trouble) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// StoreError is the store's last failure while its writes keep failing,
// nil once one works again: what a readiness check reports.
func (e *Engine) StoreError() error { return e.trouble.err() }
