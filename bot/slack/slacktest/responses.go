package slacktest

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// responder is what a response to a command or an interaction addresses:
// the user and channel it came from and, for a click, the message
// clicked (replace_original, delete_original).
type responder struct {
	channel   string
	user      string
	messageTS string
}

// responseURLLocked makes a response_url for a payload, kind "commands" or
// "actions" as Slack's are. f.mu must be held.
func (f *Fake) responseURLLocked(kind string, to *responder) string {
	n := f.nextID()
	path := fmt.Sprintf("/%s/%s/%d/slacktest%06d", kind, TeamID, 1000000+n, n)
	f.responders[path] = *to
	return f.srv.URL + path
}

// triggerIDLocked makes a trigger_id shaped like Slack's. f.mu must be
// held.
func (f *Fake) triggerIDLocked() string {
	n := f.nextID()
	return fmt.Sprintf("%d.%d.%032x", 1000000+n, 2625160776, n)
}

// serveResponseURL takes a response posted to a response_url as Slack
// does: a JSON message with response_type, replace_original or
// delete_original. It is recorded among the Calls as the method
// "response_url"; faults do not apply to it.
func (f *Fake) serveResponseURL(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	params := url.Values{}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var apiErr *apiError
	if err != nil || addJSON(params, body) != nil {
		apiErr = errCode("invalid_json")
	}

	f.mu.Lock()
	to, ok := f.responders[r.URL.Path]
	if !ok {
		f.calls = append(f.calls, Call{Method: "response_url", Params: params, At: at, Status: http.StatusNotFound})
		f.notifyLocked()
		f.mu.Unlock()
		f.logf("response_url: %s is not one the fake gave out", r.URL.Path)
		http.Error(w, "invalid_url", http.StatusNotFound)
		return
	}
	if apiErr == nil {
		apiErr = f.respondLocked(to, params)
	}
	answer := encodeAnswer(map[string]any{}, apiErr)
	call := Call{Method: "response_url", Params: params, At: at, Status: http.StatusOK, Response: answer}
	if apiErr != nil {
		call.Error = apiErr.code
	}
	f.calls = append(f.calls, call)
	f.notifyLocked()
	f.mu.Unlock()

	if apiErr != nil {
		f.logf("response_url: %s", apiErr.code)
	} else {
		f.logf("response_url: ok")
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write(answer)
}

// respondLocked shows a response: it deletes or replaces the message
// clicked, or posts a message in the channel (response_type in_channel),
// or an ephemeral one to the user. f.mu must be held.
func (f *Fake) respondLocked(to responder, p url.Values) *apiError {
	replace, remove := truthy(p.Get("replace_original")), truthy(p.Get("delete_original"))
	if (replace || remove) && to.messageTS == "" {
		return errCode("message_not_found")
	}
	var original *message
	if replace || remove {
		original = f.findLocked(to.channel, to.messageTS)
		if original == nil || original.Deleted {
			return errCode("message_not_found")
		}
	}
	if remove {
		original.Deleted = true
		return nil
	}
	ts := f.nextTS()
	c, apiErr := contentOf(p, to.channel+"/"+ts)
	if apiErr != nil {
		return apiErr
	}
	switch {
	case replace:
		// The response replaces the message whole: what it leaves out
		// is gone.
		c.hasText, c.hasBlocks = true, true
		f.editLocked(original, c)
	case p.Get("response_type") == "in_channel":
		threadTS := p.Get("thread_ts")
		if threadTS != "" && f.findLocked(to.channel, threadTS) == nil {
			return errCode("thread_not_found")
		}
		f.postLocked(to.channel, ts, threadTS, c)
	default:
		f.ephemeralLocked(to.channel, to.user, ts, p.Get("thread_ts"), c)
	}
	return nil
}
