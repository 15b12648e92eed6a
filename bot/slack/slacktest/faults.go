package slacktest

import (
	"net/http"
	"time"
)

// Fault makes Web API calls wait, or answer an HTTP error instead of
// being handled, as Slack does when it rate-limits a method or fails. A
// refused call changes nothing (it is recorded among the Calls with its
// Status), so that a test can see every message arrive once, in order,
// after the fault.
//
// A fault lasts for its next Calls calls, or for the duration For from
// its injection, or whichever ends first when both are set; with neither,
// until ClearFaults.
type Fault struct {
	// Method is the Web API method it applies to ("chat.postMessage"), or
	// "" for every method. It never applies to Socket Mode or response_url.
	Method string
	// Status is the HTTP status refused with: 429, or 500 and above. 0
	// refuses nothing, for a fault that only delays.
	Status int
	// RetryAfter is the Retry-After of a 429, which Slack states in whole
	// seconds: rounded up, 0 stays 0.
	RetryAfter time.Duration
	// Delay is how long a call waits before it is answered or refused. A
	// delayed call whose client gave up is still carried out, as it would
	// be at Slack.
	Delay time.Duration
	Calls int
	For   time.Duration
}

// fault is an injected Fault with what remains of it.
type fault struct {
	Fault
	calls int       // calls left, when Calls was set
	until time.Time // end, when For was set
}

// Inject adds a fault. Faults apply in the order injected: a call meets
// the first one that matches it and is still running.
func (f *Fake) Inject(ft Fault) {
	f.tb.Helper()
	if ft.Status != 0 && ft.Status != http.StatusTooManyRequests && ft.Status < 500 {
		f.tb.Fatalf("slacktest: Inject: status %d: want 0, 429 or 5xx", ft.Status)
	}
	if ft.Calls < 0 || ft.For < 0 || ft.Delay < 0 || ft.RetryAfter < 0 {
		f.tb.Fatalf("slacktest: Inject: negative Calls, For, Delay or RetryAfter in %+v", ft)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	injected := &fault{Fault: ft, calls: ft.Calls}
	if ft.For > 0 {
		injected.until = time.Now().Add(ft.For)
	}
	f.faults = append(f.faults, injected)
}

// ClearFaults ends every fault.
func (f *Fake) ClearFaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
}

// faultLocked returns the fault a call to method at time at meets, and
// counts the call against it; the zero Fault if none. f.mu must be held.
func (f *Fake) faultLocked(method string, at time.Time) Fault {
	live := f.faults[:0]
	var met Fault
	found := false
	for _, ft := range f.faults {
		if !ft.until.IsZero() && !at.Before(ft.until) {
			continue // over
		}
		if !found && (ft.Method == "" || ft.Method == method) {
			met, found = ft.Fault, true
			if ft.Calls > 0 {
				ft.calls--
				if ft.calls == 0 {
					continue // used up
				}
			}
		}
		live = append(live, ft)
	}
	clear(f.faults[len(live):])
	f.faults = live
	return met
}

// retryAfterSeconds is d in whole seconds, rounded up.
func retryAfterSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}
