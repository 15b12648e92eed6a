package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
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

// PermanentError is a notifier's failure that no retry can mend (GitHub
// answering 422, Slack channel_not_found): the outbox parks the event
// for that notifier, logs it, and goes on with the pipeline's later
// events.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as a failure no retry can mend.
func Permanent(err error) error { return &PermanentError{Err: err} }

// RetryAfterError is a notifier's failure that says when to try again (a
// rate limit's Retry-After): the outbox waits that long, or its own
// backoff if longer.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter asks the outbox to try the event again no sooner than d.
func RetryAfter(err error, d time.Duration) error { return &RetryAfterError{Err: err, After: d} }

// consumer is one notifier of the outbox with its own place in it: its
// own pending events, retries and backoff, so that a consumer that fails
// neither holds back the others nor makes them hear an event twice.
type consumer struct {
	name string
	n    Notifier
	wake chan struct{}

	// mu makes one delivery pass at a time, so that one process never
	// hands the same event out twice; it guards the rest.
	mu  sync.Mutex
	out outbox
}

// outbox is the delivery side of the engine's events, for one consumer.
// Every transaction of the engine that writes events hands them over once
// committed, in commit order (queue), so that delivering them needs no
// query. The store is read instead (DueEvents) whenever it may hold
// events that memory does not: at start (a previous process's), after a
// failed delivery (the retries, and the later events of that pipeline,
// which wait for it), and after memory overflowed.
type outbox struct {
	freshMu  sync.Mutex
	fresh    []Event // committed, not yet handed out
	overflow bool    // fresh dropped events: the store has them all

	// The rest belongs to the delivery pass (consumer.mu).
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
	o.freshMu.Lock()
	defer o.freshMu.Unlock()
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
	o.freshMu.Lock()
	defer o.freshMu.Unlock()
	fresh, overflow := o.fresh, o.overflow
	o.fresh, o.overflow = nil, false
	return fresh, overflow
}

// newConsumers makes the outbox's consumers, in name order.
func newConsumers(notifiers map[string]Notifier) []*consumer {
	var cs []*consumer
	for _, name := range slices.Sorted(maps.Keys(notifiers)) {
		c := &consumer{name: name, n: notifiers[name], wake: make(chan struct{}, 1)}
		c.out.fromStore = true // a previous process may have left events
		cs = append(cs, c)
	}
	return cs
}

// consumerNames lists the consumers' names, for the store.
func (e *Engine) consumerNames() []string {
	names := make([]string, len(e.consumers))
	for i, c := range e.consumers {
		names[i] = c.name
	}
	return names
}

// queueEvents hands committed events to every consumer's delivery loop.
func (e *Engine) queueEvents(events []Event) {
	if len(events) == 0 {
		return
	}
	for _, c := range e.consumers {
		c.out.queue(events)
		c.kick()
	}
}

func (c *consumer) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// update runs fn in a store transaction and, once it committed, queues
// the events fn wrote for delivery. Every event is stamped with its
// pipeline's identity on the way in (see eventTx).
func (e *Engine) update(ctx context.Context, fn func(tx StoreTx) error) error {
	err := e.store.Update(ctx, func(tx StoreTx) error {
		etx := &eventTx{StoreTx: tx, e: e}
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

// eventTx is a transaction that stamps the events written through it
// with their pipeline's identity, and remembers them.
type eventTx struct {
	StoreTx
	e      *Engine
	events []Event
}

func (t *eventTx) AddEvents(ctx context.Context, events []Event) error {
	for i := range events {
		if events[i].Pipeline.ID != "" {
			continue
		}
		ref, err := t.e.refs.get(ctx, t.StoreTx, events[i].PipelineID)
		if err != nil {
			return err
		}
		events[i].Pipeline = ref
	}
	if err := t.StoreTx.AddEvents(ctx, events); err != nil {
		return err
	}
	t.events = append(t.events, events...)
	return nil
}

// deliver is a consumer's delivery loop: it delivers events until ctx
// ends, woken by new events, by a retry coming due and by deliveries to
// record.
func (e *Engine) deliver(ctx context.Context, c *consumer) {
	for {
		_, wait, err := e.deliverPass(ctx, c, false)
		if err != nil && ctx.Err() == nil {
			wait = e.trouble.failed("deliver events to "+c.name, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			c.mu.Lock()
			if err := e.recordDeliveries(context.WithoutCancel(ctx), c); err != nil {
				e.log.Error("record deliveries at shutdown; they will be delivered again", "consumer", c.name, "err", err)
			}
			c.mu.Unlock()
			return
		case <-c.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// DeliverEvents hands the events due now to every consumer: at least once
// (an event is recorded delivered only after Notify returns nil), in
// order per pipeline. A failed event waits with exponential backoff,
// holding back later events of its pipeline for that consumer only;
// pipelines never wait for the outbox. The deliveries are recorded before
// it returns. It reads the store, so that an event committed before the
// call is delivered even while its transaction is still handing it to
// memory.
func (e *Engine) DeliverEvents(ctx context.Context) (int, error) {
	total := 0
	var errs []error
	for _, c := range e.consumers {
		n, _, err := e.deliverPass(ctx, c, true)
		total += n
		c.mu.Lock()
		if rerr := e.recordDeliveries(ctx, c); err == nil {
			err = rerr
		}
		c.mu.Unlock()
		errs = append(errs, err)
	}
	return total, errors.Join(errs...)
}

// deliverPass delivers what is due to c and says how long its loop may
// sleep before the next pass, unless woken. With fromStore, what is due is
// read from the store, not only taken from memory.
func (e *Engine) deliverPass(ctx context.Context, c *consumer, fromStore bool) (delivered int, wait time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := &c.out
	fresh, overflow := o.take()
	if fromStore || overflow || time.Since(o.lastStore) >= storeCheck {
		o.fromStore = true
	}
	if !o.fromStore {
		delivered, err = e.deliverFresh(ctx, c, fresh)
		if err != nil {
			return delivered, e.retryMin, err
		}
	}
	if o.fromStore {
		// The store must not hand out again what memory delivered.
		if err := e.recordDeliveries(ctx, c); err != nil {
			return delivered, e.retryMin, err
		}
		o.lastStore = time.Now()
		n, err := e.deliverStored(ctx, c)
		delivered += n
		if err != nil {
			return delivered, e.retryMin, err
		}
		next, err := e.store.NextEventDue(ctx, c.name)
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
		if err := e.recordDeliveries(ctx, c); err != nil {
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
// store, which holds back the rest of its pipeline and retries it. An
// event parked for good holds nothing back.
func (e *Engine) deliverFresh(ctx context.Context, c *consumer, fresh []Event) (delivered int, err error) {
	o := &c.out
	for _, ev := range fresh {
		if ev.Seq <= o.floor {
			continue
		}
		if nerr := e.notify(ctx, c, ev); nerr != nil {
			if parked, err := e.failedDelivery(ctx, c, ev, nerr); err != nil || !parked {
				o.fromStore = true
				return delivered, err
			}
			continue
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
func (e *Engine) deliverStored(ctx context.Context, c *consumer) (delivered int, err error) {
	o := &c.out
	for {
		events, err := e.store.DueEvents(ctx, c.name, e.clock.Now(), deliverBatch)
		if err != nil {
			return delivered, err
		}
		if len(events) == 0 {
			return delivered, nil
		}
		var done []int64
		failed := map[string]bool{} // pipelines whose next event must wait
		progressed := false
		for _, ev := range events {
			o.floor = max(o.floor, ev.Seq)
			if failed[ev.PipelineID] {
				continue
			}
			if err := e.notify(ctx, c, ev); err != nil {
				parked, err := e.failedDelivery(ctx, c, ev, err)
				if err != nil {
					return delivered, err
				}
				if parked {
					progressed = true
				} else {
					failed[ev.PipelineID] = true
				}
				continue
			}
			done = append(done, ev.Seq)
		}
		// A crash before this line delivers these events again: at least once.
		if err := e.store.MarkEventsDelivered(ctx, c.name, done, e.clock.Now()); err != nil {
			return delivered, err
		}
		delivered += len(done)
		// A short batch was everything due when it was asked for; what
		// was written since comes with a wake-up of the delivery loop.
		if len(done) == 0 && !progressed || len(events) < deliverBatch {
			return delivered, nil
		}
	}
}

// recordDeliveries records in the store the deliveries made from memory.
// It is called with c.mu held.
func (e *Engine) recordDeliveries(ctx context.Context, c *consumer) error {
	o := &c.out
	if len(o.unmarked) == 0 {
		return nil
	}
	if err := e.store.MarkEventsDelivered(ctx, c.name, o.unmarked, e.clock.Now()); err != nil {
		return err
	}
	o.unmarked = o.unmarked[:0]
	return nil
}

// failedDelivery records a failed delivery: parked for good when the
// notifier says no retry can mend it, else deferred with exponential
// backoff (or the wait the notifier asked for, if longer).
func (e *Engine) failedDelivery(ctx context.Context, c *consumer, ev Event, cause error) (parked bool, err error) {
	log := e.log.With("consumer", c.name, "pipeline", ev.PipelineID, "event", ev.Seq, "kind", ev.Kind)
	var perm *PermanentError
	if errors.As(cause, &perm) {
		log.Error("notifier refused the event for good; it is parked and the pipeline's later events go on", "err", cause)
		return true, e.store.ParkEvent(ctx, c.name, ev.Seq, cause.Error())
	}
	backoff := e.retryMin
	for i := 0; i < ev.Attempts && backoff < e.retryMax; i++ {
		backoff *= 2
	}
	backoff = min(backoff, e.retryMax)
	var ra *RetryAfterError
	if errors.As(cause, &ra) {
		backoff = max(backoff, ra.After)
	}
	log.Warn("notifier failed; will retry", "attempt", ev.Attempts+1, "retry_in", backoff, "err", cause)
	return false, e.store.DeferEvent(ctx, c.name, ev.Seq, e.clock.Now().Add(backoff), cause.Error())
}

func (e *Engine) notify(ctx context.Context, c *consumer, ev Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("notifier %s panicked: %v", c.name, r)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	return c.n.Notify(ctx, ev)
}

// refs caches pipelines' identities, which never change, for stamping
// events.
type refs struct {
	mu sync.Mutex
	m  map[string]PipelineRef
}

// refsMax bounds the identities held; past it the cache starts over.
const refsMax = 4096

func (r *refs) get(ctx context.Context, tx StoreTx, pipelineID string) (PipelineRef, error) {
	r.mu.Lock()
	ref, ok := r.m[pipelineID]
	r.mu.Unlock()
	if ok {
		return ref, nil
	}
	p, err := tx.Pipeline(ctx, pipelineID)
	if err != nil {
		return PipelineRef{}, err
	}
	ref = p.Ref()
	r.put(ref)
	return ref, nil
}

func (r *refs) put(ref PipelineRef) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil || len(r.m) >= refsMax {
		r.m = map[string]PipelineRef{}
	}
	r.m[ref.ID] = ref
}
