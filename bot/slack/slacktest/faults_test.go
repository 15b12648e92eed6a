package slacktest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/slack-go/slack"

	"github.com/slipway-ci/slipway/bot/slack/slacktest"
)

// statuses lists the HTTP statuses of the calls to method.
func statuses(fake *slacktest.Fake, method string) []int {
	var out []int
	for _, c := range fake.Calls(method) {
		out = append(out, c.Status)
	}
	return out
}

// texts lists the texts of a channel's top-level messages.
func texts(fake *slacktest.Fake, channel string) []string {
	var out []string
	for _, m := range fake.Messages(channel) {
		out = append(out, m.Text)
	}
	return out
}

func TestRateLimitedCalls(t *testing.T) {
	fake := newFake(t)
	api := botAPI(fake)
	fake.Inject(slacktest.Fault{Method: "chat.postMessage", Status: http.StatusTooManyRequests, RetryAfter: 1500 * time.Millisecond, Calls: 2})

	for i := range 2 {
		_, _, err := api.PostMessage(deploys, slack.MsgOptionText("hello", false))
		var rl *slack.RateLimitedError
		if !errors.As(err, &rl) {
			t.Fatalf("call %d: error %T %v, want *slack.RateLimitedError", i, err, err)
		}
		if rl.RetryAfter != 2*time.Second {
			t.Errorf("call %d: RetryAfter %v, want 2s (1.5s in whole seconds, rounded up)", i, rl.RetryAfter)
		}
	}
	if _, err := api.GetUserInfo(alice); err != nil {
		t.Errorf("another method met the fault: %v", err)
	}
	if _, _, err := api.PostMessage(deploys, slack.MsgOptionText("hello", false)); err != nil {
		t.Fatalf("third call: %v, want the fault used up", err)
	}
	if diff := cmp.Diff([]int{429, 429, 200}, statuses(fake, "chat.postMessage")); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"hello"}, texts(fake, deploys)); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
}

func TestFaultForADuration(t *testing.T) {
	fake := newFake(t)
	api := botAPI(fake)
	fake.Inject(slacktest.Fault{Status: http.StatusServiceUnavailable, For: 200 * time.Millisecond})

	_, err := api.GetUserInfo(alice)
	var status slack.StatusCodeError
	if !errors.As(err, &status) || status.Code != http.StatusServiceUnavailable {
		t.Fatalf("error %T %v, want a 503 StatusCodeError", err, err)
	}
	if _, err := api.AuthTest(); err == nil {
		t.Fatal("auth.test passed during a fault of every method")
	}
	time.Sleep(250 * time.Millisecond)
	if _, err := api.GetUserInfo(alice); err != nil {
		t.Errorf("after the fault: %v", err)
	}
	if diff := cmp.Diff([]int{503, 200}, statuses(fake, "users.info")); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}

// TestServerErrorsRetried shows what a test of the adapter asserts after a
// fault: every message arrives once, in order.
func TestServerErrorsRetried(t *testing.T) {
	fake := newFake(t)
	cfg := slack.RetryConfig{MaxRetries: 3, BackoffInitial: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond}
	cfg.Handlers = []slack.RetryHandler{slack.NewServerErrorRetryHandler(cfg)}
	api := botAPI(fake, slack.OptionRetryConfig(cfg))
	fake.Inject(slacktest.Fault{Method: "chat.postMessage", Status: http.StatusInternalServerError, Calls: 2})
	fake.Inject(slacktest.Fault{Method: "chat.postMessage", Status: http.StatusBadGateway, Calls: 1})

	var want []string
	for i := range 3 {
		text := fmt.Sprintf("message %d", i)
		want = append(want, text)
		if _, _, err := api.PostMessage(deploys, slack.MsgOptionText(text, false)); err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
	}
	if diff := cmp.Diff(want, texts(fake, deploys)); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{500, 500, 502, 200, 200, 200}, statuses(fake, "chat.postMessage")); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}

func TestDelay(t *testing.T) {
	fake := newFake(t)
	api := botAPI(fake)
	fake.Inject(slacktest.Fault{Method: "chat.postMessage", Delay: 200 * time.Millisecond, Calls: 2})

	start := time.Now()
	if _, _, err := api.PostMessage(deploys, slack.MsgOptionText("slow", false)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("answered after %v, want 200ms", d)
	}

	// A client that gives up does not undo the call, as at Slack.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := api.PostMessageContext(ctx, deploys, slack.MsgOptionText("given up", false)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the deadline", err)
	}
	wait, stop := context.WithTimeout(t.Context(), 2*time.Second)
	defer stop()
	if err := fake.WaitFor(wait, func() bool { return len(fake.Messages(deploys)) == 2 }); err != nil {
		t.Fatalf("%v: messages %v", err, texts(fake, deploys))
	}
}

func TestClearFaults(t *testing.T) {
	fake := newFake(t)
	api := botAPI(fake)
	fake.Inject(slacktest.Fault{Status: http.StatusInternalServerError})
	if _, err := api.AuthTest(); err == nil {
		t.Fatal("auth.test passed a fault without end")
	}
	fake.ClearFaults()
	if _, err := api.AuthTest(); err != nil {
		t.Fatal(err)
	}
}
