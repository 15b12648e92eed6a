// Package changes lets goroutines wait for a condition on state that
// others change: the fakes of slipway's tests (Slack, AWS) wake their
// WaitFor callers at every change of their state with it.
package changes

import (
	"context"
	"sync"
)

// Signal is closed and replaced at every Notify. The zero value is ready.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// next returns the channel the next Notify closes.
func (s *Signal) next() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Notify wakes every WaitFor to look at its condition again.
func (s *Signal) Notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
	}
	s.ch = make(chan struct{})
}

// WaitFor waits until cond reports true, checking it at once and again
// after every Notify; it returns ctx's error if ctx ends first. cond runs
// without the Signal's lock: it may take the locks of the state it reads,
// and a change made while it runs wakes the wait that follows it.
func (s *Signal) WaitFor(ctx context.Context, cond func() bool) error {
	for {
		changed := s.next()
		if cond() {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
