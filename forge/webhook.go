package forge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/slipway-ci/slipway/internal/lazyre"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// MaxWebhookBody is the largest delivery accepted, GitHub's own cap on
// what it sends (25 MB); a larger body is refused without being read.
const MaxWebhookBody = 25 << 20

// inboxSource names GitHub's deliveries in the inbox.
const inboxSource = "github"

// Inbox keeps deliveries until the intake handles them.
type Inbox interface {
	Receive(ctx context.Context, it engine.InboxItem) (bool, error)
}

// Receiver is the handler of GitHub's webhook deliveries (POST
// /webhooks/github). It defends the server against anyone who can reach
// it: nothing is parsed before the body's HMAC-SHA256 signature
// (X-Hub-Signature-256) checks out against the webhook secret, in
// constant time; bodies over MaxWebhookBody are refused unread; delivery
// IDs are checked before they name anything. A push it accepts is in the
// store before it answers 202, so a crash right after loses nothing; the
// intake does the work from there. A delivery ID seen before is answered
// 200 and starts nothing.
type Receiver struct {
	secret []byte
	inbox  Inbox
	wake   func()
	now    func() time.Time
	log    *slog.Logger
	events map[string]bool
}

// ReceiverOptions configure a Receiver.
type ReceiverOptions struct {
	// Wake is called after a delivery is stored (the intake's Wake).
	Wake   func()
	Logger *slog.Logger
	Now    func() time.Time
}

// handled are the events the intake acts on; the rest are acknowledged
// and dropped.
var handled = map[string]bool{"push": true}

// NewReceiver returns the webhook handler; secret must not be empty.
func NewReceiver(secret string, inbox Inbox, opts ReceiverOptions) (*Receiver, error) {
	if secret == "" {
		return nil, errors.New("forge: a webhook secret is required: without one anyone could start pipelines")
	}
	r := &Receiver{secret: []byte(secret), inbox: inbox, wake: opts.Wake, now: opts.Now, log: opts.Logger, events: handled}
	if r.wake == nil {
		r.wake = func() {}
	}
	if r.now == nil {
		r.now = func() time.Time { return time.Now().UTC() }
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// deliveryID is what GitHub sends as X-GitHub-Delivery (a GUID); the ID
// names inbox rows and pipeline IDs, so nothing else is let in.
var deliveryID = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)

func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-GitHub-Delivery")
	event := r.Header.Get("X-GitHub-Event")
	log := rc.log.With("delivery", id, "event", event)
	refuse := func(code int, msg string) {
		log.Warn("webhook refused", "status", code, "reason", msg)
		http.Error(w, msg, code)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(http.StatusMethodNotAllowed, "webhooks are POSTed")
		return
	}
	if r.ContentLength > MaxWebhookBody {
		refuse(http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", MaxWebhookBody))
		return
	}
	sig := r.Header.Get(github.SHA256SignatureHeader)
	if !strings.HasPrefix(sig, "sha256=") {
		refuse(http.StatusUnauthorized, "missing X-Hub-Signature-256")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			refuse(http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", MaxWebhookBody))
			return
		}
		refuse(http.StatusBadRequest, "the body could not be read")
		return
	}
	if err := github.ValidateSignature(sig, body, rc.secret); err != nil {
		refuse(http.StatusUnauthorized, "signature does not match the webhook secret")
		return
	}
	// The signature holds: what follows is GitHub's (or someone who has
	// the secret's), still checked before it is used.
	if !deliveryID.MatchString(id) || event == "" {
		refuse(http.StatusBadRequest, "missing or malformed X-GitHub-Delivery or X-GitHub-Event")
		return
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	payload, err := github.ValidatePayloadFromBody(ct, bytes.NewReader(body), sig, rc.secret)
	if err != nil {
		refuse(http.StatusBadRequest, "unsupported payload: send application/json")
		return
	}
	if event == "ping" {
		log.Info("webhook ping")
		fmt.Fprintln(w, "pong")
		return
	}
	if !rc.events[event] {
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, "ignored: slipway acts on push events, not %s\n", event)
		return
	}
	if !json.Valid(payload) {
		refuse(http.StatusBadRequest, "malformed JSON payload")
		return
	}
	fresh, err := rc.inbox.Receive(r.Context(), engine.InboxItem{Source: inboxSource, ID: id, Kind: event, Payload: payload, Received: rc.now()})
	if err != nil {
		log.Error("webhook not stored", "err", err)
		http.Error(w, "the delivery could not be stored; GitHub may redeliver it", http.StatusServiceUnavailable)
		return
	}
	if !fresh {
		log.Info("webhook redelivered; already received")
		fmt.Fprintln(w, "already received")
		return
	}
	rc.wake()
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintln(w, "accepted")
}
