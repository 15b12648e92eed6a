package forge

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/google/go-github/v60/github"
)

var (
	// ErrNoSuchRef is GitHub saying the repository or the ref does not
	// exist (404, 422), or a ref that cannot name anything.
	ErrNoSuchRef = errors.New("no such ref")
	// ErrUnreachable is GitHub not answering, or not able to: a network
	// error, a timeout, a 5xx, a rate limit. Trying again later may work.
	ErrUnreachable = errors.New("github unreachable")
)

// httpStatus is the status of GitHub's answer that err reports, or 0 when
// there was none (a network error).
func httpStatus(err error) int {
	var er *github.ErrorResponse
	var rl *github.RateLimitError
	var ab *github.AbuseRateLimitError
	switch {
	case errors.As(err, &rl) && rl.Response != nil:
		return rl.Response.StatusCode
	case errors.As(err, &ab) && ab.Response != nil:
		return ab.Response.StatusCode
	case errors.As(err, &er) && er.Response != nil:
		return er.Response.StatusCode
	}
	return 0
}

// rateLimited says whether err is GitHub's rate limit, primary or
// secondary, and how long to wait.
func rateLimited(err error) (time.Duration, bool) {
	var rl *github.RateLimitError
	if errors.As(err, &rl) {
		return max(time.Until(rl.Rate.Reset.Time), time.Second), true
	}
	var ab *github.AbuseRateLimitError
	if errors.As(err, &ab) {
		if ab.RetryAfter != nil {
			return max(*ab.RetryAfter, time.Second), true
		}
		return time.Minute, true
	}
	// go-github does not read a 429's headers, nor a 403's that is not
	// worded as a rate limit.
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		code := er.Response.StatusCode
		if d, ok := retryHeaders(er.Response.Header); ok && (code == http.StatusForbidden || code == http.StatusTooManyRequests) {
			return d, true
		}
		if code == http.StatusTooManyRequests {
			return time.Minute, true
		}
	}
	return 0, false
}

// retryHeaders reads the wait GitHub asks for: Retry-After in seconds,
// else X-RateLimit-Reset in Unix seconds when X-RateLimit-Remaining is 0.
func retryHeaders(h http.Header) (time.Duration, bool) {
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
			return max(time.Duration(s)*time.Second, time.Second), true
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(time.Until(t), time.Second), true
		}
	}
	if v := h.Get("X-RateLimit-Reset"); v != "" && h.Get("X-RateLimit-Remaining") == "0" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil {
			return max(time.Until(time.Unix(s, 0)), time.Second), true
		}
	}
	return 0, false
}

// unreachable says whether err means GitHub did not answer, or could not:
// worth trying again later.
func unreachable(err error) bool {
	if _, ok := rateLimited(err); ok {
		return true
	}
	code := httpStatus(err)
	return code == 0 || code >= 500
}
