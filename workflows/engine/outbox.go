package engine

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// notifyTimeout bounds one delivery, so that a hung notifier delays only
// its own events.
const notifyTimeout = 10 * time.Second

// deliverBatch is how many events one delivery pass asks the store for.
const deliverBatch = 100

// Deliveries are recorded in the store in batches: at most markDelay
// after they happened, or once markBatch of them wait. A process killed
// in between delivers those events again, which at-least-once allows; a
// transaction per delivery pass cost a pipeline of one job a third of
// its write transactions.
const (
	markDelay = 20 * time.Millisecond
	markBatch = 256
)

// maxFresh bounds the events held in memory for a notifier that cannot
// keep up; past it the outbox reads them from the store instead.
const maxFresh = 4096

// storeCheck is how often the outbox reads the store all the same, for
// events that another process wrote to it.
const storeCheck = time.Second

// outbox is the delivery side of the engine's events. Every transaction
// of the engine that writes events hands them over once committed, in
// commit order (queue), so that delivering them needs no query. The store
// is read instead (DueEvents) whenever it may hold events that memory
// does not: at start (a previous process's), after a failed delivery
// (the retries, and the later events of that pipeline, which wait for
// it), and after memory overflowed.
type outbox struct {
	mu       sync.Mutex
	fresh    []Event // committed, not yet handed out
	overflow bool    // fresh dropped events: the store has them all

	// The rest belongs to the delivery pass (Engine.deliverMu).
	fromStore bool
	// floor is the highest Seq a store pass handed out: fresh events up
	// to it went out that way already.
	floor     int64
	unmarked  []int64   // delivered, not yet recorded
	markDue   time.Time // when unmarked must be recorded
	lastStore time.Time // of the last store pass
}

// queue takes the events of a committed transaction.
func (o *outbox) queue(events []Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.overflow {
		return
	}
	if len(o.fresh)+len(events) > maxFresh {
		o.fresh, o.overflow = nil, true
		return
	}
	o.fresh = append(o.fresh, events...)
}

// take returns the fresh events and whether some were dropped.
func (o *outbox) take() ([]Event, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fresh, overflow := o.fresh, o.overflow
	o.fresh, o.overflow = nil, false
	return fresh, overflow
}

// queueEvents hands committed events to the outbox loop.
func (e *Engine) queueEvents(events []Event) {
	if len(events) == 0 {
		return
	}
	e.out.queue(events)
	e.notifyOutbox()
}

// update runs fn in a store transaction and, once it committed, queues
// the events fn wrote for delivery.
func (e *Engine) update(ctx context.Context, fn func(tx StoreTx) error) error {
	err := e.store.Update(ctx, func(tx StoreTx) error {
		etx := &eventTx{StoreTx: tx}
		if err := fn(etx); err != nil {
			return err
		}
		if len(etx.events) > 0 {
			tx.AfterCommit(func() { e.queueEvents(etx.events) })
		}
		return nil
	})
	if err == nil {
		e.trouble.ok()
	}
	return err
}

// eventTx is a transaction that remembers the events written through it.
type eventTx struct {
	StoreTx
	events []Event
}

func (t *eventTx) AddEvents(ctx context.Context, events []Event) error {
	if err := t.StoreTx.AddEvents(ctx, events); err != nil {
		return err
	}
	t.events = append(t.events, events...)
	return nil
}

// deliver is the outbox loop: it delivers events until ctx ends, woken by
// new events (notifyOutbox), by a retry coming due and by deliveries to
// record.
func (e *Engine) deliver(ctx context.Context) {
	for {
		_, wait, err := e.deliverPass(ctx)
		if err != nil && ctx.Err() == nil {
			wait = e.trouble.failed("deliver events", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			e.deliverMu.Lock()
			if err := e.recordDeliveries(context.WithoutCancel(ctx)); err != nil {
				e.log.Error("record deliveries at shutdown; they will be delivered again", "err", err)
			}
			e.deliverMu.Unlock()
			return
		case <-e.outboxWake:
		case <-t.C:
		}
		t.Stop()
	}
}

// DeliverEvents hands the events due now to the notifier: at least once
// (an event is recorded delivered only after Notify returns nil), in
// order per pipeline. A failed event waits with exponential backoff,
// holding back later events of its pipeline only; pipelines never wait
// for the outbox. The deliveries are recorded before it returns.
func (e *Engine) DeliverEvents(ctx context.Context) (int, error) {
	n, _, err := e.deliverPass(ctx)
	e.deliverMu.Lock()
	defer e.deliverMu.Unlock()
	if rerr := e.recordDeliveries(ctx); err == nil {
		err = rerr
	}
	return n, err
}

// deliverPass delivers what is due and says how long the loop may sleep
// before the next pass, unless woken.
func (e *Engine) deliverPass(ctx context.Context) (delivered int, wait time.Duration, err error) {
	// One pass at a time, so that one process never hands the same event
	// out twice.
	e.deliverMu.Lock()
	defer e.deliverMu.Unlock()
	o := &e.out
	fresh, overflow := o.take()
	if overflow || time.Since(o.lastStore) >= storeCheck {
		o.fromStore = true
	}
	if !o.fromStore {
		delivered, err = e.deliverFresh(ctx, fresh)
		if err != nil {
			return delivered, e.retryMin, err
		}
	}
	if o.fromStore {
		// The store must not hand out again what memory delivered.
		if err := e.recordDeliveries(ctx); err != nil {
			return delivered, e.retryMin, err
		}
		o.lastStore = time.Now()
		n, err := e.deliverStored(ctx)
		delivered += n
		if err != nil {
			return delivered, e.retryMin, err
		}
		next, err := e.store.NextEventDue(ctx)
		if err != nil {
			return delivered, e.retryMin, err
		}
		if !next.IsZero() {
			return delivered, min(max(next.Sub(e.clock.Now()), 10*time.Millisecond), e.retryMax), nil
		}
		// Nothing waits in the store: what is committed from now on is
		// delivered from memory.
		o.fromStore = false
	}
	if len(o.unmarked) >= markBatch || len(o.unmarked) > 0 && !time.Now().Before(o.markDue) {
		if err := e.recordDeliveries(ctx); err != nil {
			return delivered, e.retryMin, err
		}
	}
	if len(o.unmarked) > 0 {
		return delivered, max(time.Until(o.markDue), time.Millisecond), nil
	}
	return delivered, min(e.retryMax, storeCheck), nil
}

// deliverFresh delivers events from memory, in commit order. At the
// first failure it defers that event and hands delivery over to the
// store, which holds back the rest of its pipeline and retries it.
func (e *Engine) deliverFresh(ctx context.Context, fresh []Event) (delivered int, err error) {
	o := &e.out
	for _, ev := range fresh {
		if ev.Seq <= o.floor {
			continue
		}
		if nerr := e.notify(ctx, ev); nerr != nil {
			o.fromStore = true
			return delivered, e.deferEvent(ctx, ev, nerr)
		}
		if len(o.unmarked) == 0 {
			// Wall time, not the engine's clock: this is batching, not a
			// decision.
			o.markDue = time.Now().Add(markDelay)
		}
		o.unmarked = append(o.unmarked, ev.Seq)
		delivered++
	}
	return delivered, nil
}

// deliverStored delivers the events the store says are due, recording
// each batch's deliveries at once.
func (e *Engine) deliverStored(ctx context.Context) (delivered int, err error) {
	o := &e.out
	for {
		events, err := e.store.DueEvents(ctx, e.clock.Now(), deliverBatch)
		if err != nil {
			return delivered, err
		}
		if len(events) == 0 {
			return delivered, nil
		}
		var done []int64
		failed := map[string]bool{} // pipelines whose next event must wait
		for _, ev := range events {
			o.floor = max(o.floor, ev.Seq)
			if failed[ev.PipelineID] {
				continue
			}
			if err := e.notify(ctx, ev); err != nil {
				failed[ev.PipelineID] = true
				if err := e.deferEvent(ctx, ev, err); err != nil {
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
		// A short batch was everything due when it was asked for; what
		// was written since comes with a wake-up of the outbox loop.
		if len(done) == 0 || len(events) < deliverBatch {
			return delivered, nil
		}
	}
}

// recordDeliveries records in the store the deliveries made from memory.
// It is called with deliverMu held.
func (e *Engine) recordDeliveries(ctx context.Context) error {
	o := &e.out
	if len(o.unmarked) == 0 {
		return nil
	}
	if err := e.store.MarkEventsDelivered(ctx, o.unmarked, e.clock.Now()); err != nil {
		return err
	}
	o.unmarked = o.unmarked[:0]
	return nil
}

// deferEvent records a failed delivery and when to try again, with
// exponential backoff.
func (e *Engine) deferEvent(ctx context.Context, ev Event, cause error) error {
	backoff := e.retryMin
	for i := 0; i < ev.Attempts && backoff < e.retryMax; i++ {
		backoff *= 2
	}
	backoff = min(backoff, e.retryMax)
	e.log.Warn("notifier failed; will retry", "pipeline", ev.PipelineID, "event", ev.Seq, "kind", ev.Kind,
		"attempt", ev.Attempts+1, "retry_in", backoff, "err", cause)
	return e.store.DeferEvent(ctx, ev.Seq, e.clock.Now().Add(backoff), cause.Error())
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
