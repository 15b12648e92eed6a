// Package web is slipway's dashboard, served by `slipway serve` on the
// listener of the webhooks: the pipelines, each drawn as its workflows'
// graphs with the chat's buttons, jobs with their steps, live logs,
// artifacts and test results, and deployments with their history and
// locks; plus /healthz, /readyz and /metrics (metrics.go). Pages are
// rendered on the server with templ (the *.templ files, generated into
// *_templ.go); a little plain JavaScript streams logs and refreshes a
// running pipeline. Who may see and do what is in auth.go.
package web

// templ rather than html/template: executing a text/template makes the
// linker keep every exported method in the binary (it looks methods up
// by name), some 15 MB of slipway's.
//go:generate go run github.com/a-h/templ/cmd/templ@v0.3.1100 generate

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/slipway-ci/slipway/bot"
	"github.com/slipway-ci/slipway/store"
	"github.com/slipway-ci/slipway/workflows/engine"
)

//go:embed static
var staticFS embed.FS

// Store is what the dashboard reads (*store.DB).
type Store interface {
	Pipelines(ctx context.Context, f store.PipelineFilter) ([]engine.PipelineRecord, error)
	PipelineState(ctx context.Context, id string) (*engine.PipelineState, error)
	PipelineApprovals(ctx context.Context, pipelineID string) ([]engine.ApprovalRecord, error)
	Attempts(ctx context.Context, jobID string) ([]engine.AttemptRecord, error)
	Attempt(ctx context.Context, attemptID string) (*engine.AttemptRecord, error)
	// JobLog opens an attempt's log: what it holds so far while the
	// attempt runs. Reading it again from an offset is how a live log is
	// followed (see logs.go).
	JobLog(ctx context.Context, attemptID string) (io.ReadCloser, error)
	Releases(ctx context.Context, app, env string) ([]engine.Release, error)
	EnvLocks(ctx context.Context, app string) ([]engine.EnvLock, error)
}

// Engine is what the dashboard's buttons ask of the engine
// (*engine.Engine). It decides who may; the page only shows its answer.
type Engine interface {
	Approve(ctx context.Context, jobID string, by engine.Actor) (engine.Decision, error)
	Reject(ctx context.Context, jobID string, by engine.Actor) (engine.Decision, error)
	Cancel(ctx context.Context, pipelineID string, by engine.Actor) (engine.Decision, error)
	RerunWorkflow(ctx context.Context, pipelineID, workflow string, by engine.Actor) (engine.Decision, error)
	RerunJob(ctx context.Context, pipelineID, workflow, job string, by engine.Actor) (engine.Decision, error)
}

// Directory tells the chat's user groups a user belongs to, which the
// engine's policy looks at (the chat's bot.Directory).
type Directory interface {
	Groups(ctx context.Context, user string) ([]string, error)
}

// Options configure a Handler. Store, Engine and Key are required.
type Options struct {
	Store  Store
	Engine Engine
	// Apps are the configured apps, by name: their environments say who
	// may do what (engine policy) and what /deployments lists.
	Apps map[string]*engine.App
	// DataDir is the engine's: an attempt's artifacts and test results
	// are under DataDir/output/<attempt ID>/.
	DataDir string
	// PublicURL is http.public_url; an https one makes cookies Secure.
	PublicURL string
	// Key signs links (SignedLink) and forms; StoredKey makes one.
	Key  []byte
	Auth Auth
	// Directory tells users' groups; nil: nobody is in a group.
	Directory Directory
	// Words says the engine's refusals; its Now is the page's clock too.
	Words bot.Words
	// Metrics serves /metrics; nil: no /metrics.
	Metrics *Metrics
	// Checks are what /readyz runs.
	Checks []Check
	Logger *slog.Logger
	// LogPoll is how often a live log is looked at for more; 400ms
	// (BenchmarkLiveLogViewers: 50 viewers cost 4.4% of a core there).
	LogPoll time.Duration
}

// Handler serves the dashboard, /healthz, /readyz and /metrics.
type Handler struct {
	store   Store
	engine  Engine
	apps    map[string]*engine.App
	dataDir string
	key     []byte
	auth    Auth
	dir     Directory
	words   bot.Words
	metrics *Metrics
	checks  []Check
	log     *slog.Logger
	poll    time.Duration
	lives   liveLogs // the running attempts' logs being viewed (livelog.go)
	secure  bool
	mux     *http.ServeMux
	cop     *http.CrossOriginProtection
}

// New returns the dashboard's handler.
func New(opts Options) (*Handler, error) {
	if opts.Store == nil || opts.Engine == nil {
		return nil, errors.New("web: a store and an engine are required")
	}
	if len(opts.Key) < 16 {
		return nil, errors.New("web: a signing key of at least 16 bytes is required")
	}
	h := &Handler{store: opts.Store, engine: opts.Engine, apps: opts.Apps, dataDir: opts.DataDir, key: opts.Key,
		auth: opts.Auth, dir: opts.Directory, words: opts.Words, metrics: opts.Metrics, checks: opts.Checks,
		log: opts.Logger, poll: opts.LogPoll, secure: strings.HasPrefix(opts.PublicURL, "https:"),
		cop: http.NewCrossOriginProtection()}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.poll <= 0 {
		h.poll = 400 * time.Millisecond
	}
	if h.apps == nil {
		h.apps = map[string]*engine.App{}
	}
	h.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, http.StatusForbidden, "This request came from another site; nothing was done.")
	}))
	h.routes()
	return h, nil
}

func (h *Handler) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(time.Hour, http.FileServerFS(static))))
	m.HandleFunc("GET /healthz", h.healthz)
	m.HandleFunc("GET /readyz", h.readyz)
	if h.metrics != nil {
		m.Handle("GET /metrics", h.metrics.Handler())
	}
	m.Handle("GET /{$}", http.RedirectHandler("/pipelines", http.StatusSeeOther))
	m.Handle("GET /pipelines", h.view(h.pipelinesPage))
	m.Handle("GET /pipelines/{id}", h.view(h.pipelinePage))
	m.Handle("GET /pipelines/{id}/jobs/{job}", h.view(h.jobPage))
	m.Handle("GET /pipelines/{id}/jobs/{job}/log", h.view(h.logStream))
	m.Handle("GET /pipelines/{id}/jobs/{job}/log.txt", h.view(h.logText))
	m.Handle("GET /pipelines/{id}/jobs/{job}/artifacts/{attempt}/{path...}", h.view(h.artifact))
	m.Handle("GET /deployments", h.view(h.deploymentsPage))
	m.Handle("POST /pipelines/{id}/{action}", h.cop.Handler(h.act(h.action)))
	h.mux = m
}

// ServeHTTP serves a request, with the headers every answer carries.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	// Inline style attributes only size the graphs; scripts and style
	// sheets come from /static alone.
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; style-src-attr 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.mux.ServeHTTP(w, r)
}

func cacheFor(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(d.Seconds())))
		next.ServeHTTP(w, r)
	})
}

type viewerKey struct{}

// view lets through those who may see the page: a signed link's token
// becomes a cookie first.
func (h *Handler) view(page func(w http.ResponseWriter, r *http.Request, v *viewer)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.acceptLink(w, r) {
			return
		}
		v := h.identify(r)
		if !v.mayView(r.URL.Path) {
			h.challenge(w, r)
			return
		}
		page(w, r, v)
	})
}

// act lets through those who may act: a user with a chat identity whose
// form carries their CSRF token (cross-site requests are refused before,
// by CrossOriginProtection).
func (h *Handler) act(fn func(w http.ResponseWriter, r *http.Request, v *viewer)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := h.identify(r)
		switch {
		case v == nil || v.Name == "":
			h.challenge(w, r)
		case v.ChatID == "":
			h.fail(w, r, http.StatusForbidden, "You may look, not act: your user has no chat identity (chat_id) in slipway's config.")
		case !h.checkCSRF(v, r.PostFormValue("csrf")):
			h.fail(w, r, http.StatusForbidden, "This form is stale or was not slipway's; reload the page and try again.")
		default:
			fn(w, r, v)
		}
	})
}

// actor is the engine's view of who acts.
func (h *Handler) actor(ctx context.Context, v *viewer) (engine.Actor, error) {
	a := engine.Actor{ID: v.ChatID}
	if h.dir != nil && a.ID != "" {
		groups, err := h.dir.Groups(ctx, a.ID)
		if err != nil {
			return a, fmt.Errorf("web: groups of %s: %w", a.ID, err)
		}
		a.Groups = groups
	}
	return a, nil
}

func (h *Handler) now() time.Time {
	if h.words.Now != nil {
		return h.words.Now()
	}
	return time.Now()
}

// fail answers with an error page that says what went wrong in words;
// an internal error's cause goes to the log, not to the page.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "text/html") || r.Method == http.MethodPost {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(code)
		errorHTML(errorPage{page: page{Title: http.StatusText(code)}, Code: code, Message: msg}).Render(r.Context(), w)
		return
	}
	http.Error(w, msg, code)
}

func (h *Handler) internal(w http.ResponseWriter, r *http.Request, err error) {
	h.log.Error("dashboard: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	h.fail(w, r, http.StatusInternalServerError, "Internal error; the server's log says more.")
}

// notFound answers a 404 for errors that say engine.ErrNotFound, else 500.
func (h *Handler) notFound(w http.ResponseWriter, r *http.Request, err error, what string) {
	if errors.Is(err, engine.ErrNotFound) {
		h.fail(w, r, http.StatusNotFound, "There is no "+what+" here.")
		return
	}
	h.internal(w, r, err)
}

// render renders a page into a buffer first, so that an error halfway
// gives an error page rather than half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, name string, c templ.Component) {
	var b strings.Builder
	if err := c.Render(r.Context(), &b); err != nil {
		if r.Context().Err() != nil {
			return // the client has gone: nobody to answer
		}
		h.internal(w, r, fmt.Errorf("render %s: %w", name, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, b.String())
}
