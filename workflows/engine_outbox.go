package workflows

import (
	"context"
	"fmt"
	"time"
)

// notifyTimeout bounds one delivery, so that a hung notifier delays only
// its own events.
const notifyTimeout = 10 * time.Second

// deliver is the outbox loop: it delivers due events until ctx ends,
// sleeping until the next one is due or a new one is written.
func (e *Engine) deliver(ctx context.Context) {
	for {
		if _, err := e.DeliverEvents(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("deliver events", "err", err)
		}
		wait := e.retryMax
		if next, err := e.store.NextEventDue(ctx); err == nil && !next.IsZero() {
			wait = min(max(next.Sub(e.clock.Now()), 10*time.Millisecond), e.retryMax)
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

// DeliverEvents hands due events to the notifier until none is due: at
// least once (an event is marked delivered only after Notify returns
// nil), in order per pipeline (the store hands out only each pipeline's
// oldest undelivered event). A failed event waits with exponential
// backoff, holding back later events of its pipeline only; pipelines
// never wait for the outbox.
func (e *Engine) DeliverEvents(ctx context.Context) (int, error) {
	// One delivery pass at a time, so that one process never hands the
	// same event out twice.
	e.deliverMu.Lock()
	defer e.deliverMu.Unlock()
	delivered := 0
	for {
		events, err := e.store.DueEvents(ctx, e.clock.Now(), 100)
		if err != nil {
			return delivered, err
		}
		if len(events) == 0 {
			return delivered, nil
		}
		var done []int64
		failed := map[string]bool{} // pipelines whose next event must wait
		for _, ev := range events {
			if failed[ev.PipelineID] {
				continue
			}
			if err := e.notify(ctx, ev); err != nil {
				failed[ev.PipelineID] = true
				backoff := min(e.retryMin<<min(ev.Attempts, 20), e.retryMax)
				e.log.Warn("notifier failed; will retry", "pipeline", ev.PipelineID, "event", ev.Seq, "kind", ev.Kind,
					"attempt", ev.Attempts+1, "retry_in", backoff, "err", err)
				if err := e.store.DeferEvent(ctx, ev.Seq, e.clock.Now().Add(backoff), err.Error()); err != nil {
					return delivered, err
				}
				continue
			}
			done = append(done, ev.Seq)
		}
		// A crash before this line delivers these events again: at least once.
		if err := e.store.MarkEventsDelivered(ctx, done, e.clock.Now()); err != nil {
			return delivered, err
		}
		delivered += len(done)
		if len(done) == 0 {
			return delivered, nil
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
