package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Who may see the dashboard and who may act on it. The dashboard shows
// logs, so nothing but /healthz, /readyz, /metrics and the static files
// is open without one of:
//
//   - a signed link (SignedLink): what slipway posts in Slack and GitHub
//     statuses. It lets its holder view the path it was made for and
//     what lies under it, until it expires; never act.
//   - a configured user (HTTP Basic authentication, bcrypt hashes), or a
//     user named by a trusted header that a company SSO proxy sets.
//     They view everything; those mapped to a chat user ID may act as
//     that user, and the engine's policy decides what they may do.

// Auth says who may use the dashboard.
type Auth struct {
	// Users sign in with HTTP Basic authentication, by name.
	Users map[string]User
	// TrustedHeader names the header an authenticating proxy puts the
	// user's name in ("X-Forwarded-User"). It is believed only on
	// requests from TrustedProxies, so that nobody else can claim a name.
	TrustedHeader  string
	TrustedProxies []netip.Prefix
	// HeaderUsers maps the names the proxy sends to chat user IDs; a
	// name not listed may view, not act.
	HeaderUsers map[string]string
}

// User is a dashboard user.
type User struct {
	// PasswordHash is a bcrypt hash, as `htpasswd -nBC 10 NAME` prints it
	// after the colon.
	PasswordHash string
	// ChatID is the chat user (a Slack user ID) the user acts as; empty
	// for one who may only view.
	ChatID string
}

// viewer is who makes a request.
type viewer struct {
	Name   string // the signed-in user's name; "" for a signed link
	ChatID string // who the user acts as; "" when they may not act
	// Link is the path a signed link grants, when that is all the
	// request has.
	Link string
}

// mayView reports whether the viewer may see path.
func (v *viewer) mayView(path string) bool {
	if v == nil {
		return false
	}
	if v.Name != "" {
		return true
	}
	return v.Link != "" && under(path, v.Link)
}

// under reports whether path is prefix or below it.
func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, strings.TrimSuffix(prefix, "/")+"/")
}

// signing keys are used for one purpose each, so that a value signed for
// one (a CSRF token) never passes for another (a link).
const (
	purposeLink = "slipway link v1\x00"
	purposeCSRF = "slipway csrf v1\x00"
)

func mac(key []byte, purpose string, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// linkParam is the query parameter of a signed link's token.
const linkParam = "sig"

// SignedLink returns base+path with a token that lets whoever holds the
// link view path, and what lies under it (a pipeline's jobs and logs),
// until ttl has passed; never act. The token signs the path and its
// expiry with key (HMAC-SHA256), so it cannot be moved to another path
// or made to last longer. base is http.public_url; path starts with "/".
func SignedLink(key []byte, base, path string, ttl time.Duration) string {
	return signedLink(key, base, path, time.Now().Add(ttl))
}

func signedLink(key []byte, base, path string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	sig := base64.RawURLEncoding.EncodeToString(mac(key, purposeLink, path, exp)[:20])
	return strings.TrimRight(base, "/") + path + "?" + linkParam + "=" + exp + "." + sig
}

// checkLink verifies a token made by signedLink for path; it returns
// when it expires.
func checkLink(key []byte, path, token string, now time.Time) (time.Time, error) {
	exp, sig, ok := strings.Cut(token, ".")
	if !ok {
		return time.Time{}, errors.New("malformed link token")
	}
	n, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return time.Time{}, errors.New("malformed link token")
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, mac(key, purposeLink, path, exp)[:20]) {
		return time.Time{}, errors.New("link signature does not match")
	}
	expires := time.Unix(n, 0)
	if !now.Before(expires) {
		return time.Time{}, fmt.Errorf("link expired %s", expires.UTC().Format(time.RFC3339))
	}
	return expires, nil
}

// linkCookie carries a signed link's grant on the pages under its path:
// the browser sends it only there (its Path), and it holds the path, the
// expiry and the signature, checked again on each request.
const linkCookie = "slipway_link"

func encodeGrant(path, token string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(path)) + "~" + token
}

func decodeGrant(v string) (path, token string, ok bool) {
	p, token, ok := strings.Cut(v, "~")
	if !ok {
		return "", "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(p)
	return string(b), token, err == nil
}

// identify says who makes r, or nil. The order: a configured user's
// credentials, the trusted header, a signed link's cookie.
func (h *Handler) identify(r *http.Request) *viewer {
	if name, pass, ok := r.BasicAuth(); ok {
		u, known := h.auth.Users[name]
		hash := u.PasswordHash
		if !known {
			hash = dummyHash // the same work for unknown names
		}
		if bcrypt.CompareHashAndPassword([]byte(hash), []byte(pass)) == nil && known {
			return &viewer{Name: name, ChatID: u.ChatID}
		}
		return nil
	}
	if h.auth.TrustedHeader != "" && h.fromProxy(r) {
		if name := strings.TrimSpace(r.Header.Get(h.auth.TrustedHeader)); name != "" {
			return &viewer{Name: name, ChatID: h.auth.HeaderUsers[name]}
		}
	}
	now := h.now()
	for _, c := range r.Cookies() {
		if c.Name != linkCookie {
			continue
		}
		path, token, ok := decodeGrant(c.Value)
		if !ok || !under(r.URL.Path, path) {
			continue
		}
		if _, err := checkLink(h.key, path, token, now); err == nil {
			return &viewer{Link: path}
		}
	}
	return nil
}

// dummyHash is compared against when a name is unknown, so that an
// unknown name costs what a known one does: a bcrypt hash of cost 10,
// written out rather than made at start (that took 88 ms of every
// slipway command's start). No password signs in with it: the name is
// unknown.
const dummyHash = "$2a$10$e7oVk70JpnXBUiqJUH2Ab.aDakj9UfPdgLrImDF8p1Yw5o/EpYwo6"

func (h *Handler) fromProxy(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range h.auth.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// acceptLink turns a signed link's token into a cookie scoped to its path
// and redirects to the same URL without it, so that the token leaves the
// address bar and Referer headers. It reports whether it answered.
func (h *Handler) acceptLink(w http.ResponseWriter, r *http.Request) bool {
	token := r.URL.Query().Get(linkParam)
	if token == "" {
		return false
	}
	expires, err := checkLink(h.key, r.URL.Path, token, h.now())
	if err != nil {
		h.log.Info("signed link refused", "path", r.URL.Path, "err", err)
		h.fail(w, r, http.StatusForbidden, "This link is not valid any more ("+err.Error()+"). Ask slipway for a new one, or sign in.")
		return true
	}
	http.SetCookie(w, &http.Cookie{Name: linkCookie, Value: encodeGrant(r.URL.Path, token), Path: r.URL.Path,
		Expires: expires, HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode})
	q := r.URL.Query()
	q.Del(linkParam)
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
	return true
}

// challenge asks for credentials.
func (h *Handler) challenge(w http.ResponseWriter, r *http.Request) {
	if len(h.auth.Users) > 0 {
		w.Header().Set("WWW-Authenticate", `Basic realm="slipway", charset="UTF-8"`)
	}
	h.fail(w, r, http.StatusUnauthorized, "Sign in to see this page, or open it from a link slipway posted.")
}

// csrfToken is the token a viewer's forms carry: it names who acts, so a
// page fetched by one user cannot be replayed by another's browser.
func (h *Handler) csrfToken(v *viewer) string {
	if v == nil || v.ChatID == "" {
		return ""
	}
	return hex.EncodeToString(mac(h.key, purposeCSRF, v.Name, v.ChatID)[:16])
}

func (h *Handler) checkCSRF(v *viewer, token string) bool {
	want := h.csrfToken(v)
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(token)) == 1
}

// KV is where StoredKey keeps the key: a namespace of the store
// (*store.KV).
type KV interface {
	Get(ctx context.Context, key string) (string, bool, error)
	Put(ctx context.Context, key, value string) error
}

// StoredKey returns the server's signing key, made at random and kept in
// kv the first time, so that links stay valid across restarts. An
// operator who sets one in the config does not need it.
func StoredKey(ctx context.Context, kv KV) ([]byte, error) {
	v, ok, err := kv.Get(ctx, "signing_key")
	if err != nil {
		return nil, fmt.Errorf("web: signing key: %w", err)
	}
	if ok {
		if b, err := hex.DecodeString(v); err == nil && len(b) >= 32 {
			return b, nil
		}
	}
	b := make([]byte, 32)
	rand.Read(b)
	if err := kv.Put(ctx, "signing_key", hex.EncodeToString(b)); err != nil {
		return nil, fmt.Errorf("web: signing key: %w", err)
	}
	return b, nil
}
