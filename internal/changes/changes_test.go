package changes

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitForWakesAtEachNotify(t *testing.T) {
	var s Signal
	var n atomic.Int32
	done := make(chan error)
	go func() { done <- s.WaitFor(context.Background(), func() bool { return n.Load() == 3 }) }()
	for range 3 {
		n.Add(1)
		s.Notify()
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitFor missed the change that made its condition true")
	}
}

func TestWaitForEndsWithItsContext(t *testing.T) {
	var s Signal
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := s.WaitFor(ctx, func() bool { return false }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor = %v, want the context's error", err)
	}
}
