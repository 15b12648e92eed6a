package forge

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows/engine"
)

const testSecret = "It's a Secret to Everybody"

// sign is GitHub's X-Hub-Signature-256 of body under secret.
func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// delivery is a webhook request as GitHub sends it, signed.
func delivery(t testing.TB, event, id string, body []byte) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-GitHub-Event", event)
	r.Header.Set("X-GitHub-Delivery", id)
	r.Header.Set("X-Hub-Signature-256", sign(testSecret, body))
	return r
}

func corpus(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "github-webhooks", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openStore(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// pending lists the IDs of the deliveries kept for the intake.
func pending(t testing.TB, db *store.DB) []string {
	t.Helper()
	items, err := db.PendingInbox(context.Background(), "github", time.Now().Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	return ids
}

func TestReceiver(t *testing.T) {
	push := corpus(t, "push.with-new-branch.json")
	tests := []struct {
		name   string
		req    func() *http.Request
		status int
		body   string
		stored []string // deliveries kept afterwards
	}{
		{"a signed push", func() *http.Request { return delivery(t, "push", "d-1", push) },
			http.StatusAccepted, "accepted", []string{"d-1"}},
		{"ping", func() *http.Request { return delivery(t, "ping", "d-2", corpus(t, "ping.payload.json")) },
			http.StatusOK, "pong", nil},
		{"an event slipway does not act on", func() *http.Request {
			return delivery(t, "pull_request", "d-3", corpus(t, "pull_request.opened.json"))
		}, http.StatusAccepted, "ignored", nil},
		{"missing signature", func() *http.Request {
			r := delivery(t, "push", "d-4", push)
			r.Header.Del("X-Hub-Signature-256")
			return r
		}, http.StatusUnauthorized, "missing X-Hub-Signature-256", nil},
		{"a SHA-1 signature only", func() *http.Request {
			r := delivery(t, "push", "d-5", push)
			r.Header.Del("X-Hub-Signature-256")
			r.Header.Set("X-Hub-Signature", "sha1=0123")
			return r
		}, http.StatusUnauthorized, "missing X-Hub-Signature-256", nil},
		{"wrong secret", func() *http.Request {
			r := delivery(t, "push", "d-6", push)
			r.Header.Set("X-Hub-Signature-256", sign("guess", push))
			return r
		}, http.StatusUnauthorized, "signature does not match", nil},
		{"body changed after signing", func() *http.Request {
			r := delivery(t, "push", "d-7", push)
			r.Body = httptestBody(bytes.Replace(push, []byte("master"), []byte("mallory"), 1))
			return r
		}, http.StatusUnauthorized, "signature does not match", nil},
		{"malformed signature", func() *http.Request {
			r := delivery(t, "push", "d-8", push)
			r.Header.Set("X-Hub-Signature-256", "sha256=zz")
			return r
		}, http.StatusUnauthorized, "signature does not match", nil},
		{"malformed JSON, signed", func() *http.Request { return delivery(t, "push", "d-9", []byte(`{"ref": "refs/heads/main",`)) },
			http.StatusBadRequest, "malformed JSON", nil},
		{"a delivery ID that could name a path", func() *http.Request { return delivery(t, "push", "../../etc/passwd", push) },
			http.StatusBadRequest, "X-GitHub-Delivery", nil},
		{"no event", func() *http.Request { return delivery(t, "", "d-10", push) },
			http.StatusBadRequest, "X-GitHub-Event", nil},
		{"GET", func() *http.Request { return httptest.NewRequest(http.MethodGet, "/webhooks/github", nil) },
			http.StatusMethodNotAllowed, "POST", nil},
		{"an oversized body, announced", func() *http.Request {
			r := delivery(t, "push", "d-11", push)
			r.ContentLength = MaxWebhookBody + 1
			return r
		}, http.StatusRequestEntityTooLarge, "body over", nil},
		{"an oversized body, not announced", func() *http.Request {
			big := bytes.Repeat([]byte(" "), MaxWebhookBody+1)
			r := delivery(t, "push", "d-12", big)
			r.ContentLength = -1
			return r
		}, http.StatusRequestEntityTooLarge, "body over", nil},
		{"a form-encoded body", func() *http.Request {
			r := delivery(t, "push", "d-13", []byte("payload=%7B%7D"))
			r.Header.Set("Content-Type", "text/plain")
			return r
		}, http.StatusBadRequest, "application/json", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openStore(t)
			woken := 0
			rc, err := NewReceiver(testSecret, db, ReceiverOptions{Wake: func() { woken++ }})
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			rc.ServeHTTP(w, tt.req())
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.body) {
				t.Errorf("answer %d %q, want %d with %q", w.Code, w.Body.String(), tt.status, tt.body)
			}
			if got := pending(t, db); strings.Join(got, ",") != strings.Join(tt.stored, ",") {
				t.Errorf("stored %v, want %v", got, tt.stored)
			}
			if (woken > 0) != (len(tt.stored) > 0) {
				t.Errorf("intake woken %d times", woken)
			}
		})
	}
}

func httptestBody(b []byte) *readCloser { return &readCloser{bytes.NewReader(b)} }

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// A redelivery (GitHub's "Redeliver", or a retry after a lost answer) is
// answered 200 and keeps nothing new.
func TestReceiverRedelivery(t *testing.T) {
	db := openStore(t)
	rc, err := NewReceiver(testSecret, db, ReceiverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	push := corpus(t, "push.with-new-branch.json")
	for i, want := range []int{http.StatusAccepted, http.StatusOK, http.StatusOK} {
		w := httptest.NewRecorder()
		rc.ServeHTTP(w, delivery(t, "push", "72d3162e-cc78-11e3-81ab-4c9367dc0958", push))
		if w.Code != want {
			t.Errorf("delivery %d: %d %s, want %d", i+1, w.Code, w.Body, want)
		}
	}
	if got := pending(t, db); len(got) != 1 {
		t.Errorf("stored %v", got)
	}
}

func TestReceiverNeedsASecret(t *testing.T) {
	if _, err := NewReceiver("", openStore(t), ReceiverOptions{}); err == nil {
		t.Fatal("a receiver without a secret was made")
	}
}

// failingInbox is an inbox whose store is down.
type failingInbox struct{}

func (failingInbox) Receive(context.Context, engine.InboxItem) (bool, error) {
	return false, errStoreDown
}

var errStoreDown = &os.PathError{Op: "write", Path: "slipway.db", Err: os.ErrDeadlineExceeded}

// A delivery that could not be stored is answered 503, so that GitHub
// may deliver it again, and never 202.
func TestReceiverStoreDown(t *testing.T) {
	rc, _ := NewReceiver(testSecret, failingInbox{}, ReceiverOptions{})
	w := httptest.NewRecorder()
	rc.ServeHTTP(w, delivery(t, "push", "d-1", corpus(t, "push.with-new-branch.json")))
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("answer %d", w.Code)
	}
}

// FuzzReceiver feeds the handler hostile requests: it never panics, and
// nothing unsigned is ever kept.
func FuzzReceiver(f *testing.F) {
	f.Add([]byte(`{"ref":"refs/heads/main"}`), "push", "d-1", "sha256=00", true)
	f.Add(corpus(f, "push.with-new-branch.json"), "push", "d-2", "", true)
	f.Add([]byte{0xff, 0x00}, "ping", "../x", "sha256=", false)
	f.Fuzz(func(t *testing.T, body []byte, event, id, sig string, signIt bool) {
		db := openStore(t)
		rc, _ := NewReceiver(testSecret, db, ReceiverOptions{})
		r := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("X-GitHub-Event", event)
		r.Header.Set("X-GitHub-Delivery", id)
		if signIt {
			sig = sign(testSecret, body)
		}
		r.Header.Set("X-Hub-Signature-256", sig)
		w := httptest.NewRecorder()
		rc.ServeHTTP(w, r)
		stored := pending(t, db)
		if len(stored) > 0 && (!signIt || w.Code != http.StatusAccepted) {
			t.Fatalf("kept %v from a request answered %d (signed: %v)", stored, w.Code, signIt)
		}
	})
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
