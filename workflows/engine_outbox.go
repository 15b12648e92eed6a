package workflows

import (
	"context"
	"fmt"
	"time"
)

// notifyTimeout bounds one delivery, so that a hung notifier delays only
// its own events.
const notifyTimeout = 10 * time.Second

// deliverBatch is how many events one delivery pass asks the store for.
const deliverBatch = 100

// deliver is the outbox loop: it delivers due events until ctx ends,
// sleeping until the next one is due or a new one is written. New events
// wake it (notifyOutbox); the store is asked when the next is due only
// while events may wait there for a retry, which in the common case of a
// notifier that works is never.
func (e *Engine) deliver(ctx context.Context) {
	retries := true // events of a previous process may wait for a retry
	for {
		_, deferred, err := e.deliverDue(ctx)
		if err != nil && ctx.Err() == nil {
			e.log.Error("deliver events", "err", err)
		}
		wait := e.retryMax
		if retries || deferred || err != nil {
			retries = true
			if next, err := e.store.NextEventDue(ctx); err == nil {
				retries = !next.IsZero()
				if retries {
					wait = min(max(next.Sub(e.clock.Now()), 10*time.Millisecond), e.retryMax)
				}
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-e.outboxWake:
		case <-t.C:
		}
		t.Stop()
	}
}

// DeliverEvents hands the events due now to the notifier: at
// least once (an event is marked delivered only after Notify returns
// nil), in order per pipeline (the store hands out only each pipeline's
// oldest undelivered event). A failed event waits with exponential
// backoff, holding back later events of its pipeline only; pipelines
// never wait for the outbox.
func (e *Engine) DeliverEvents(ctx context.Context) (int, error) {
	n, _, err := e.deliverDue(ctx)
	return n, err
}

// deliverDue is DeliverEvents; it also reports whether it deferred an
// event for a retry.
func (e *Engine) deliverDue(ctx context.Context) (delivered int, deferred bool, err error) {
	// One delivery pass at a time, so that one process never hands the
	// same event out twice.
	e.deliverMu.Lock()
	defer e.deliverMu.Unlock()
	for {
		events, err := e.store.DueEvents(ctx, e.clock.Now(), deliverBatch)
		if err != nil {
			return delivered, deferred, err
		}
		if len(events) == 0 {
			return delivered, deferred, nil
		}
		var done []int64
		failed := map[string]bool{} // pipelines whose next event must wait
		for _, ev := range events {
			if failed[ev.PipelineID] {
				continue
			}
			if err := e.notify(ctx, ev); err != nil {
				failed[ev.PipelineID] = true
				deferred = true
				backoff := min(e.retryMin<<min(ev.Attempts, 20), e.retryMax)
				e.log.Warn("notifier failed; will retry", "pipeline", ev.PipelineID, "event", ev.Seq, "kind", ev.Kind,
					"attempt", ev.Attempts+1, "retry_in", backoff, "err", err)
				if err := e.store.DeferEvent(ctx, ev.Seq, e.clock.Now().Add(backoff), err.Error()); err != nil {
					return delivered, deferred, err
				}
				continue
			}
			done = append(done, ev.Seq)
		}
		// A crash before this line delivers these events again: at least once.
		if err := e.store.MarkEventsDelivered(ctx, done, e.clock.Now()); err != nil {
			return delivered, deferred, err
		}
		delivered += len(done)
		// A short batch was everything due when it was asked for; what
		// was written since comes with a wake-up of the outbox loop.
		if len(done) == 0 || len(events) < deliverBatch {
			return delivered, deferred, nil
		}
	}
}

func (e *Engine) notify(ctx context.Context, ev Event) (err error) {
	if e.notifier == nil {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("notifier panicked: %v", r)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	return e.notifier.Notify(ctx, ev)
}
