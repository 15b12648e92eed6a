package web

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"time"
)

// The viewers of a running attempt's log share one liveLog: it looks at
// the log every poll, converts what was added once, and keeps the
// events it made for each viewer to write out. Fifty viewers of a log
// then cost fifty writes a poll, not fifty reads, conversions and status
// queries. A viewer writes the liveLog's events only from where its own
// stream is at the start of one, in the converter state the liveLog had
// there, so that what it sends is what it would have sent alone; until
// then, and whenever it falls behind what the liveLog keeps, it reads
// the log itself up to where the liveLog is.

// liveKeep is how many bytes of events a liveLog keeps for viewers that
// are behind.
const liveKeep = 1 << 20

// errAlone is follow's way of saying the viewer goes on alone: the
// attempt ended, or its liveLog failed.
var errAlone = errors.New("web: the log is read alone from here")

// liveLogs are the liveLogs of attempts being viewed. The zero value is
// ready.
type liveLogs struct {
	mu sync.Mutex
	m  map[string]*liveLog
}

type liveLog struct {
	attempt string
	viewers int                // guarded by liveLogs.mu
	stop    context.CancelFunc // ends run once nobody views the log
	done    chan struct{}      // closed when run returned

	mu     sync.Mutex
	events []liveEvent // oldest first, at most liveKeep bytes of data (and the newest)
	kept   int
	end    int64         // where the newest event ends: the liveLog has read this far
	ended  bool          // the liveLog stopped: viewers go on alone
	over   bool          // it stopped because the attempt ended
	next   chan struct{} // closed and replaced when events come or ended is set
}

// liveEvent is what the log held from start to end, as events.
type liveEvent struct {
	start, end    int64
	before, after ansiState
	data          []byte
}

// join returns the attempt's liveLog, started if it is the first
// viewer; leave must follow.
func (ls *liveLogs) join(h *Handler, attempt string) *liveLog {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l := ls.m[attempt]; l != nil {
		l.viewers++
		return l
	}
	if ls.m == nil {
		ls.m = map[string]*liveLog{}
	}
	ctx, stop := context.WithCancel(context.Background())
	l := &liveLog{attempt: attempt, viewers: 1, stop: stop, done: make(chan struct{}), next: make(chan struct{}), end: -1}
	ls.m[attempt] = l
	go l.run(ctx, h)
	return l
}

func (ls *liveLogs) leave(l *liveLog) {
	ls.mu.Lock()
	l.viewers--
	last := l.viewers == 0
	if last {
		delete(ls.m, l.attempt)
	}
	ls.mu.Unlock()
	if last {
		l.stop()
		<-l.done
	}
}

// run reads the log from its end at the start, every poll, until the
// attempt ends or ctx does.
func (l *liveLog) run(ctx context.Context, h *Handler) {
	defer close(l.done)
	over := false
	defer func() { l.finish(over) }()
	var out bytes.Buffer
	s := &logStreamer{h: h, w: &out, flush: func() error { return nil }, attempt: l.attempt,
		buf: make([]byte, logChunk), conv: newANSI()}
	defer s.closeSource()
	if err := s.open(ctx); err != nil {
		h.log.Warn("live log", "attempt", l.attempt, "err", err)
		return
	}
	if seeker, ok := s.src.(io.Seeker); ok {
		end, err := seeker.Seek(0, io.SeekEnd)
		if err != nil {
			return
		}
		s.offset = end
	} else if err := s.drain(ctx); err != nil { // a copy of memory: small
		return
	}
	l.mu.Lock()
	l.end = s.offset
	l.mu.Unlock()
	poll := time.NewTicker(h.poll)
	defer poll.Stop()
	lastStatus := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
		if !s.file && s.src != nil {
			s.closeSource() // a copy of memory: open again for more
		}
		out.Reset()
		start, before := s.offset, s.conv.state()
		if err := s.drain(ctx); err != nil {
			if ctx.Err() == nil {
				h.log.Warn("live log", "attempt", l.attempt, "err", err)
			}
			return
		}
		if s.offset > start {
			l.add(liveEvent{start: start, end: s.offset, before: before, after: s.conv.state(), data: bytes.Clone(out.Bytes())})
		}
		if now := time.Now(); now.Sub(lastStatus) >= statusEvery {
			lastStatus = now
			a, err := h.store.Attempt(ctx, l.attempt)
			if err != nil {
				if ctx.Err() == nil {
					h.log.Warn("live log", "attempt", l.attempt, "err", err)
				}
				return
			}
			if !a.Finished.IsZero() {
				over = true
				return
			}
		}
	}
}

func (l *liveLog) add(e liveEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	l.kept += len(e.data)
	drop := 0
	for l.kept > liveKeep && drop < len(l.events)-1 {
		l.kept -= len(l.events[drop].data)
		drop++
	}
	if drop > 0 {
		// A new array: viewers read the old one without the lock.
		l.events = slices.Clone(l.events[drop:])
	}
	l.end = e.end
	close(l.next)
	l.next = make(chan struct{})
}

// finish tells the viewers to go on alone; over says the attempt ended.
func (l *liveLog) finish(over bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ended, l.over = true, over
	close(l.next)
	l.next = make(chan struct{})
}

// follow streams the log with the attempt's liveLog until the attempt
// ends (errAlone: the rest is read alone) or ctx does.
func (s *logStreamer) follow(ctx context.Context) error {
	l := s.h.lives.join(s.h, s.attempt)
	defer s.h.lives.leave(l)
	beat := time.NewTimer(heartbeat)
	defer beat.Stop()
	for {
		l.mu.Lock()
		events, end, ended, over, next := l.events, l.end, l.ended, l.over, l.next
		l.mu.Unlock()
		sent := false
		for _, e := range events {
			if e.end <= s.offset {
				continue
			}
			if e.start != s.offset || e.before != s.conv.state() {
				break
			}
			if _, err := s.w.Write(e.data); err != nil {
				return err
			}
			s.offset = e.end
			s.conv.setState(e.after)
			s.closeSource() // read on from the new offset, if ever
			sent = true
		}
		if ended {
			s.ended = over
			s.closeSource() // the log may have moved from memory to a file
			if sent {
				if err := s.flush(); err != nil {
					return err
				}
			}
			return errAlone
		}
		if s.offset < end {
			// Behind, or not at the start of an event in the same state:
			// read alone to where the liveLog is, and look again.
			from := s.offset
			s.limit = end
			err := s.drain(ctx)
			s.limit = 0
			if err != nil {
				return err
			}
			if !s.file {
				s.closeSource()
			}
			if s.offset > from {
				continue
			}
		}
		if sent {
			if err := s.flush(); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-next:
		case <-beat.C:
			if err := s.heartbeat(); err != nil {
				return err
			}
			beat.Reset(heartbeat)
		}
	}
}
