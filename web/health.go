package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Check is one thing /readyz looks at: the store, the Slack connection,
// the executor. Func answers nil when it is fine, else what is wrong, in
// words an operator can act on.
type Check struct {
	Name string
	Func func(ctx context.Context) error
}

// checkTimeout bounds each check: a hanging dependency is not ready.
const checkTimeout = 3 * time.Second

// healthz answers that the process is up and serving.
func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, "ok\n")
}

// readyz runs every check at once and answers 200 when all pass, else
// 503; the body has a line per check, the failures with their reason.
func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	results := make([]error, len(h.checks))
	var wg sync.WaitGroup
	for i, c := range h.checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- c.Func(ctx) }() // ends with ctx, if the check honours it
			select {
			case err := <-done:
				results[i] = err
			case <-ctx.Done():
				results[i] = fmt.Errorf("no answer within %s", checkTimeout)
			}
		})
	}
	wg.Wait()
	var b strings.Builder
	code := http.StatusOK
	for i, c := range h.checks {
		if err := results[i]; err != nil {
			code = http.StatusServiceUnavailable
			fmt.Fprintf(&b, "FAIL %s: %v\n", c.Name, err)
			h.log.Warn("not ready", "check", c.Name, "err", err)
		} else {
			fmt.Fprintf(&b, "ok   %s\n", c.Name)
		}
	}
	if len(h.checks) == 0 {
		b.WriteString("ok (nothing to check)\n")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	io.WriteString(w, b.String())
}
