// Package forgetest is a fake GitHub for tests: an HTTP server speaking
// the REST endpoints slipway uses (repositories, commits, contents, git
// blobs, tarballs with their redirect to a codeload server, commit
// statuses, deployments and their statuses, and the GitHub App
// installation token endpoint) with GitHub's request and response shapes,
// over repositories built in memory. It records every request, and can be
// told to fail (a status, rate-limit headers, a delay) for some of them.
//
// Its responses are written by hand from GitHub's documentation and real
// answers, not with go-github's types, so that a test against it checks
// the client's idea of the protocol rather than repeating it.
package forgetest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a fake GitHub. Point forge.Options.APIURL at URL (or at
// URL+"api/v3/", as for GitHub Enterprise Server; both are served) with
// Token, or with an App registered by AddApp.
type Server struct {
	// URL is the REST API's root, ending in "/".
	URL string
	// CodeloadURL is the root of the server tarballs redirect to, another
	// host than the API's, as codeload.github.com is.
	CodeloadURL string
	// Token is a token the API accepts, like a personal access token.
	Token string

	t        testing.TB
	api      *httptest.Server
	codeload *httptest.Server

	mu          sync.Mutex
	repos       map[string]*repo // by lowercase "owner/name"
	calls       []Call
	faults      []*Fault
	apps        map[int64]app // by installation ID
	tokens      map[string]time.Time
	tokenTTL    time.Duration
	archives    map[string]string // codeload token → "owner/name@sha"
	nextID      int64
	commitClock time.Time
}

// Call is one request the fake received.
type Call struct {
	Server string // "api" or "codeload"
	Method string
	Path   string // without the /api/v3 prefix; unescaped
	Query  string
	Header http.Header
	Body   []byte
}

// Fault makes the fake answer some requests otherwise than it would.
type Fault struct {
	Method string // empty: any method
	// Path is a path.Match pattern for the request's path, without the
	// /api/v3 prefix: "/repos/acme/backend/statuses/*".
	Path string
	// Times is how many requests it answers; 0: all of them.
	Times int
	// Status is the answer's status; 0 answers normally, after Delay.
	Status int
	// Header is added to the answer: Retry-After, X-RateLimit-Reset...
	Header map[string]string
	// Body is the answer's body; default GitHub's {"message": ...}.
	Body string
	// Delay holds the answer back (or until the request is canceled).
	Delay time.Duration

	used int
}

// Status is a commit status posted to the fake.
type Status struct {
	SHA         string
	State       string
	Context     string
	Description string
	TargetURL   string
}

// Deployment is a deployment created in the fake, with its statuses in
// the order they were posted.
type Deployment struct {
	ID          int64
	SHA         string
	Ref         string
	Task        string
	Environment string
	Description string
	Payload     json.RawMessage
	// AutoMerge and RequiredContexts are as the request gave them: nil
	// when absent.
	AutoMerge        *bool
	RequiredContexts *[]string
	Production       bool
	Created          time.Time
	Statuses         []DeploymentStatus
}

// DeploymentStatus is a status posted to a deployment.
type DeploymentStatus struct {
	ID           int64
	State        string
	Description  string
	LogURL       string
	Environment  string
	AutoInactive *bool // as the request gave it
}

// New starts a fake GitHub, closed when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		t:           t,
		Token:       "ghp_" + randomHex(18),
		repos:       map[string]*repo{},
		apps:        map[int64]app{},
		tokens:      map[string]time.Time{},
		tokenTTL:    time.Hour,
		archives:    map[string]string{},
		commitClock: time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC),
	}
	s.api = httptest.NewServer(s.front("api", s.apiMux()))
	s.codeload = httptest.NewServer(s.front("codeload", s.codeloadMux()))
	s.URL = s.api.URL + "/"
	s.CodeloadURL = s.codeload.URL + "/"
	t.Cleanup(s.Close)
	return s
}

// Close stops the fake; requests to it then fail to connect. It may be
// called more than once.
func (s *Server) Close() {
	s.api.CloseClientConnections()
	s.codeload.CloseClientConnections()
	s.api.Close()
	s.codeload.Close()
}

// AddRepo makes an empty repository whose default branch is branch. A
// repository is also made by its first commit.
func (s *Server) AddRepo(fullName, defaultBranch string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repo(fullName).defaultBranch = defaultBranch
}

// repo returns the repository, made if missing. s.mu is held.
func (s *Server) repo(fullName string) *repo {
	key := strings.ToLower(fullName)
	if r := s.repos[key]; r != nil {
		return r
	}
	owner, name, ok := strings.Cut(fullName, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		s.t.Fatalf("forgetest: %q is not owner/name", fullName)
	}
	s.nextID++
	r := &repo{id: 1000 + s.nextID, owner: owner, name: name, branches: map[string]string{},
		tags: map[string]string{}, commits: map[string]*commit{}}
	s.repos[key] = r
	return r
}

// AddCommit adds a commit on top of branch (made if missing; the first
// branch of a repository is its default) and returns its SHA, computed as
// git does.
func (s *Server) AddCommit(fullName, branch string, c Commit) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repo(fullName)
	if r.defaultBranch == "" {
		r.defaultBranch = branch
	}
	s.commitClock = s.commitClock.Add(time.Minute)
	cm := &commit{message: c.Message, author: c.Author, when: s.commitClock, files: map[string]*blob{}}
	if cm.message == "" {
		cm.message = fmt.Sprintf("commit %d", len(r.commits)+1)
	}
	if cm.author == (Person{}) {
		cm.author = Person{Name: "Alice Example", Email: "alice@example.com", Login: "alice"}
	}
	for p, data := range c.Files {
		p = strings.Trim(path.Clean("/"+p), "/")
		cm.files[p] = &blob{sha: gitHash("blob", []byte(data)), data: []byte(data), exec: slices.Contains(c.Executable, p)}
	}
	if head, ok := r.branches[branch]; ok {
		cm.parents = []string{head}
	}
	cm.hash()
	r.commits[cm.sha] = cm
	r.branches[branch] = cm.sha
	return cm.sha
}

// AddCommitFromDir adds a commit of the files of dir on top of branch and
// returns its SHA.
func (s *Server) AddCommitFromDir(fullName, branch, dir string) string {
	s.t.Helper()
	return s.AddCommit(fullName, branch, ReadTree(s.t, dir))
}

// Tag points a lightweight tag at a commit.
func (s *Server) Tag(fullName, tag, sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repo(fullName).tags[tag] = sha
}

// SetTokenTTL sets how long the installation tokens issued from now on
// live (default an hour; GitHub's).
func (s *Server) SetTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenTTL = d
}

// Inject adds a fault. Faults are tried in the order they were added;
// the first that matches a request and is not used up answers it.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// Calls returns the requests received so far, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// CallsTo returns the requests whose method is method and whose path
// matches the path.Match pattern.
func (s *Server) CallsTo(method, pattern string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if ok, _ := path.Match(pattern, c.Path); ok && c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Statuses returns the commit statuses posted to a repository, in order.
func (s *Server) Statuses(fullName string) []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.repos[strings.ToLower(fullName)]; r != nil {
		return slices.Clone(r.statuses)
	}
	return nil
}

// Deployments returns the deployments of a repository, oldest first.
func (s *Server) Deployments(fullName string) []Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repos[strings.ToLower(fullName)]
	if r == nil {
		return nil
	}
	out := make([]Deployment, len(r.deployments))
	for i, d := range r.deployments {
		out[i] = *d
		out[i].Statuses = slices.Clone(d.Statuses)
	}
	return out
}

// front records each request, strips the /api/v3 prefix of GitHub
// Enterprise Server, and applies the faults.
func (s *Server) front(server string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.Path, "/api/v3/"); ok && server == "api" {
			r.URL.Path = "/" + rest
			r.URL.RawPath = strings.TrimPrefix(r.URL.RawPath, "/api/v3")
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.mu.Lock()
		s.calls = append(s.calls, Call{Server: server, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			Header: r.Header.Clone(), Body: body})
		var fault *Fault
		for _, f := range s.faults {
			if f.Times > 0 && f.used >= f.Times {
				continue
			}
			if ok, _ := path.Match(f.Path, r.URL.Path); !ok || f.Method != "" && f.Method != r.Method {
				continue
			}
			f.used++
			fault = f
			break
		}
		s.mu.Unlock()
		if fault == nil {
			next.ServeHTTP(w, r)
			return
		}
		if fault.Delay > 0 {
			t := time.NewTimer(fault.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if fault.Status == 0 {
			next.ServeHTTP(w, r)
			return
		}
		for k, v := range fault.Header {
			w.Header().Set(k, v)
		}
		if fault.Body != "" {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(fault.Status)
			io.WriteString(w, fault.Body)
			return
		}
		writeError(w, fault.Status, http.StatusText(fault.Status))
	})
}

func (s *Server) apiMux() http.Handler {
	mux := http.NewServeMux()
	authed := func(h func(w http.ResponseWriter, r *http.Request, rp *repo)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !s.authorized(r) {
				writeError(w, http.StatusUnauthorized, "Bad credentials")
				return
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			rp := s.repos[strings.ToLower(r.PathValue("owner")+"/"+r.PathValue("repo"))]
			if rp == nil {
				writeError(w, http.StatusNotFound, "Not Found")
				return
			}
			h(w, r, rp)
		}
	}
	mux.HandleFunc("GET /repos/{owner}/{repo}", authed(s.getRepo))
	mux.HandleFunc("GET /repos/{owner}/{repo}/commits/{ref...}", authed(s.getCommit))
	mux.HandleFunc("GET /repos/{owner}/{repo}/git/ref/{ref...}", authed(s.getRef))
	mux.HandleFunc("GET /repos/{owner}/{repo}/contents/{path...}", authed(s.getContents))
	mux.HandleFunc("GET /repos/{owner}/{repo}/git/blobs/{sha}", authed(s.getBlob))
	mux.HandleFunc("GET /repos/{owner}/{repo}/tarball", authed(s.getTarball))
	mux.HandleFunc("GET /repos/{owner}/{repo}/tarball/{ref...}", authed(s.getTarball))
	mux.HandleFunc("POST /repos/{owner}/{repo}/statuses/{sha}", authed(s.postStatus))
	mux.HandleFunc("POST /repos/{owner}/{repo}/deployments", authed(s.postDeployment))
	mux.HandleFunc("GET /repos/{owner}/{repo}/deployments", authed(s.listDeployments))
	mux.HandleFunc("GET /repos/{owner}/{repo}/deployments/{id}", authed(s.getDeployment))
	mux.HandleFunc("POST /repos/{owner}/{repo}/deployments/{id}/statuses", authed(s.postDeploymentStatus))
	mux.HandleFunc("GET /repos/{owner}/{repo}/deployments/{id}/statuses", authed(s.listDeploymentStatuses))
	mux.HandleFunc("POST /app/installations/{id}/access_tokens", s.postAccessToken)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Not Found")
	})
	return mux
}

// authorized checks the Authorization header: the server's token or an
// installation token it issued and that has not expired.
func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(h, "token ")
	}
	if !ok || tok == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok == s.Token {
		return true
	}
	exp, ok := s.tokens[tok]
	return ok && time.Now().Before(exp)
}

// writeError answers as GitHub does when something is wrong.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"message": msg, "documentation_url": "https://docs.github.com/rest"})
}

// writeValidation answers 422 with a validation error, as GitHub does.
func writeValidation(w http.ResponseWriter, resource, field, msg string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
		"message":           "Validation Failed",
		"errors":            []any{map[string]any{"resource": resource, "code": "custom", "field": field, "message": msg}},
		"documentation_url": "https://docs.github.com/rest",
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) apiURL(format string, args ...any) string {
	return s.URL + strings.TrimPrefix(fmt.Sprintf(format, args...), "/")
}

func (s *Server) htmlURL(format string, args ...any) string {
	return s.api.URL + "/" + strings.TrimPrefix(fmt.Sprintf(format, args...), "/")
}

func (s *Server) getRepo(w http.ResponseWriter, r *http.Request, rp *repo) {
	writeJSON(w, http.StatusOK, map[string]any{
		"id":             rp.id,
		"node_id":        "R_" + strconv.FormatInt(rp.id, 10),
		"name":           rp.name,
		"full_name":      rp.fullName(),
		"private":        true,
		"owner":          map[string]any{"login": rp.owner, "id": rp.id + 1, "type": "Organization"},
		"html_url":       s.htmlURL("%s", rp.fullName()),
		"url":            s.apiURL("repos/%s", rp.fullName()),
		"clone_url":      s.htmlURL("%s.git", rp.fullName()),
		"default_branch": rp.defaultBranch,
		"visibility":     "private",
	})
}

// getRef answers GitHub's "get a reference" for heads/<branch> and
// tags/<tag>: the commit it points at, or 404 Not Found.
func (s *Server) getRef(w http.ResponseWriter, r *http.Request, rp *repo) {
	ref := r.PathValue("ref")
	var sha string
	var ok bool
	switch {
	case strings.HasPrefix(ref, "heads/"):
		sha, ok = rp.branches[strings.TrimPrefix(ref, "heads/")]
	case strings.HasPrefix(ref, "tags/"):
		sha, ok = rp.tags[strings.TrimPrefix(ref, "tags/")]
	}
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found",
			"documentation_url": "https://docs.github.com/rest/git/refs#get-a-reference"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ref": "refs/" + ref,
		"object": map[string]any{"sha": sha, "type": "commit", "url": s.apiURL("repos/%s/git/commits/%s", rp.fullName(), sha)}})
}

func (s *Server) user(login string) any {
	if login == "" {
		return nil
	}
	return map[string]any{"login": login, "id": 5000 + len(login), "type": "User",
		"html_url": s.htmlURL("%s", login), "url": s.apiURL("users/%s", login)}
}

func (s *Server) getCommit(w http.ResponseWriter, r *http.Request, rp *repo) {
	ref := r.PathValue("ref")
	c := rp.resolve(ref)
	if c == nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"message":           "No commit found for SHA: " + ref,
			"documentation_url": "https://docs.github.com/rest/commits/commits#get-a-commit",
		})
		return
	}
	sig := map[string]any{"name": c.author.Name, "email": c.author.Email, "date": c.when.Format(time.RFC3339)}
	var parents []any
	for _, p := range c.parents {
		parents = append(parents, map[string]any{"sha": p, "url": s.apiURL("repos/%s/commits/%s", rp.fullName(), p),
			"html_url": s.htmlURL("%s/commit/%s", rp.fullName(), p)})
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"sha":     c.sha,
		"node_id": "C_" + c.sha[:12],
		"commit": map[string]any{
			"author": sig, "committer": sig, "message": c.message,
			"tree":          map[string]any{"sha": c.tree, "url": s.apiURL("repos/%s/git/trees/%s", rp.fullName(), c.tree)},
			"url":           s.apiURL("repos/%s/git/commits/%s", rp.fullName(), c.sha),
			"comment_count": 0,
			"verification":  map[string]any{"verified": false, "reason": "unsigned", "signature": nil, "payload": nil},
		},
		"url":          s.apiURL("repos/%s/commits/%s", rp.fullName(), c.sha),
		"html_url":     s.htmlURL("%s/commit/%s", rp.fullName(), c.sha),
		"comments_url": s.apiURL("repos/%s/commits/%s/comments", rp.fullName(), c.sha),
		"author":       s.user(c.author.Login),
		"committer":    s.user(c.author.Login),
		"parents":      parents,
		"stats":        map[string]any{"total": 0, "additions": 0, "deletions": 0},
		"files":        []any{},
	})
}

// largeFile is the size from which the contents API gives a file's
// metadata without its content (encoding "none"), as GitHub does from
// 1 MB.
const largeFile = 1 << 20

func (s *Server) getContents(w http.ResponseWriter, r *http.Request, rp *repo) {
	ref := r.URL.Query().Get("ref")
	if ref == "" {
		ref = rp.defaultBranch
	}
	c := rp.resolve(ref)
	if c == nil {
		writeError(w, http.StatusNotFound, "No commit found for the ref "+ref)
		return
	}
	p := strings.Trim(r.PathValue("path"), "/")
	entry := func(p string, dir bool) map[string]any {
		e := map[string]any{
			"name": path.Base(p), "path": p,
			"url":      s.apiURL("repos/%s/contents/%s?ref=%s", rp.fullName(), p, ref),
			"html_url": s.htmlURL("%s/blob/%s/%s", rp.fullName(), ref, p),
		}
		if dir {
			e["type"], e["size"], e["sha"], e["download_url"] = "dir", 0, c.treeHash(p), nil
			e["git_url"] = s.apiURL("repos/%s/git/trees/%s", rp.fullName(), e["sha"])
		} else {
			b := c.files[p]
			e["type"], e["size"], e["sha"] = "file", len(b.data), b.sha
			e["download_url"] = s.htmlURL("raw/%s/%s/%s", rp.fullName(), c.sha, p)
			e["git_url"] = s.apiURL("repos/%s/git/blobs/%s", rp.fullName(), b.sha)
		}
		e["_links"] = map[string]any{"self": e["url"], "git": e["git_url"], "html": e["html_url"]}
		return e
	}
	if b, ok := c.files[p]; ok {
		e := entry(p, false)
		if len(b.data) >= largeFile {
			e["encoding"], e["content"] = "none", ""
		} else {
			e["encoding"], e["content"] = "base64", wrapBase64(b.data)
		}
		writeJSON(w, http.StatusOK, e)
		return
	}
	if !c.isDir(p) {
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found",
			"documentation_url": "https://docs.github.com/rest/repos/contents#get-repository-content", "status": "404"})
		return
	}
	list := []any{}
	children := c.list(p)
	for _, name := range slices.Sorted(maps.Keys(children)) {
		list = append(list, entry(path.Join(p, name), children[name]))
	}
	writeJSON(w, http.StatusOK, list)
}

// wrapBase64 encodes as the contents API does: base64 in lines of 60
// characters, each ending in a newline.
func wrapBase64(data []byte) string {
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(enc) > 60 {
		b.WriteString(enc[:60])
		b.WriteByte('\n')
		enc = enc[60:]
	}
	b.WriteString(enc)
	b.WriteByte('\n')
	return b.String()
}

func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, rp *repo) {
	sha := r.PathValue("sha")
	var found *blob
	for _, c := range rp.commits {
		for _, b := range c.files {
			if b.sha == sha {
				found = b
			}
		}
	}
	if found == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	if accept := r.Header.Get("Accept"); strings.Contains(accept, ".raw") {
		w.Header().Set("Content-Type", "application/vnd.github.raw")
		w.Write(found.data)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sha": sha, "node_id": "B_" + sha[:12], "size": len(found.data),
		"url": s.apiURL("repos/%s/git/blobs/%s", rp.fullName(), sha), "content": wrapBase64(found.data), "encoding": "base64"})
}

// getTarball answers as GitHub does: a redirect to codeload, whose URL
// carries a short-lived token instead of the caller's credentials.
func (s *Server) getTarball(w http.ResponseWriter, r *http.Request, rp *repo) {
	ref := r.PathValue("ref")
	if ref == "" {
		ref = rp.defaultBranch
	}
	c := rp.resolve(ref)
	if c == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	tok := randomHex(12)
	s.archives[tok] = rp.fullName() + "@" + c.sha
	w.Header().Set("Location", fmt.Sprintf("%s%s/legacy.tar.gz/%s?token=%s", s.CodeloadURL, rp.fullName(), c.sha, tok))
	w.WriteHeader(http.StatusFound)
}

func (s *Server) codeloadMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{owner}/{repo}/legacy.tar.gz/{sha}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		rp := s.repos[strings.ToLower(r.PathValue("owner")+"/"+r.PathValue("repo"))]
		var c *commit
		if rp != nil {
			c = rp.commits[r.PathValue("sha")]
		}
		granted := rp != nil && c != nil && s.archives[r.URL.Query().Get("token")] == rp.fullName()+"@"+c.sha
		var data []byte
		if granted {
			data = c.tarball(rp.owner, rp.name)
		}
		s.mu.Unlock()
		if !granted {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "404: Not Found")
			return
		}
		w.Header().Set("Content-Type", "application/x-gzip")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%s-%s-%s.tar.gz", rp.owner, rp.name, c.sha[:7]))
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "404: Not Found")
	})
	return mux
}

var statusStates = []string{"error", "failure", "pending", "success"}

func (s *Server) postStatus(w http.ResponseWriter, r *http.Request, rp *repo) {
	var req struct {
		State       string `json:"state"`
		TargetURL   string `json:"target_url"`
		Description string `json:"description"`
		Context     string `json:"context"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	sha := r.PathValue("sha")
	c := rp.resolve(sha)
	switch {
	case c == nil:
		writeError(w, http.StatusUnprocessableEntity, "No commit found for SHA: "+sha)
		return
	case !slices.Contains(statusStates, req.State):
		writeValidation(w, "Status", "state", "state is not included in the list")
		return
	case len([]rune(req.Description)) > 140:
		writeValidation(w, "Status", "description", "description is too long (maximum is 140 characters)")
		return
	case req.TargetURL != "" && !strings.HasPrefix(req.TargetURL, "http://") && !strings.HasPrefix(req.TargetURL, "https://"):
		writeValidation(w, "Status", "target_url", "target_url must use http(s) scheme")
		return
	}
	if req.Context == "" {
		req.Context = "default"
	}
	rp.statuses = append(rp.statuses, Status{SHA: c.sha, State: req.State, Context: req.Context,
		Description: req.Description, TargetURL: req.TargetURL})
	s.nextID++
	writeJSON(w, http.StatusCreated, map[string]any{
		"id": s.nextID, "node_id": fmt.Sprintf("SC_%d", s.nextID), "state": req.State, "description": req.Description,
		"target_url": req.TargetURL, "context": req.Context, "url": s.apiURL("repos/%s/statuses/%s", rp.fullName(), c.sha),
		"created_at": time.Now().UTC().Format(time.RFC3339), "updated_at": time.Now().UTC().Format(time.RFC3339),
		"creator": s.user("slipway[bot]"),
	})
}

func (s *Server) deploymentJSON(rp *repo, d *Deployment) map[string]any {
	payload := d.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("{}")
	}
	return map[string]any{
		"id": d.ID, "node_id": fmt.Sprintf("DE_%d", d.ID), "sha": d.SHA, "ref": d.Ref, "task": d.Task,
		"payload": payload, "original_environment": d.Environment, "environment": d.Environment,
		"description": d.Description, "creator": s.user("slipway[bot]"),
		"created_at": d.Created.Format(time.RFC3339), "updated_at": d.Created.Format(time.RFC3339),
		"statuses_url":           s.apiURL("repos/%s/deployments/%d/statuses", rp.fullName(), d.ID),
		"repository_url":         s.apiURL("repos/%s", rp.fullName()),
		"url":                    s.apiURL("repos/%s/deployments/%d", rp.fullName(), d.ID),
		"transient_environment":  false,
		"production_environment": d.Production,
	}
}

func (s *Server) postDeployment(w http.ResponseWriter, r *http.Request, rp *repo) {
	var req struct {
		Ref                   string          `json:"ref"`
		Task                  string          `json:"task"`
		AutoMerge             *bool           `json:"auto_merge"`
		RequiredContexts      *[]string       `json:"required_contexts"`
		Payload               json.RawMessage `json:"payload"`
		Environment           string          `json:"environment"`
		Description           string          `json:"description"`
		ProductionEnvironment *bool           `json:"production_environment"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	c := rp.resolve(req.Ref)
	if c == nil {
		writeError(w, http.StatusUnprocessableEntity, "No ref found for: "+req.Ref)
		return
	}
	// Without required_contexts, GitHub checks that every context of the
	// commit succeeded.
	if req.RequiredContexts == nil {
		latest := map[string]string{}
		for _, st := range rp.statuses {
			if st.SHA == c.sha {
				latest[st.Context] = st.State
			}
		}
		for ctx, state := range latest {
			if state != "success" {
				writeJSON(w, http.StatusConflict, map[string]any{"message": "Conflict: Commit status checks failed for " + req.Ref + ".",
					"errors": []any{map[string]any{"contexts": []any{map[string]any{"context": ctx, "state": state}}, "resource": "Deployment", "field": "required_contexts", "code": "invalid"}}})
				return
			}
		}
	}
	if req.Task == "" {
		req.Task = "deploy"
	}
	if req.Environment == "" {
		req.Environment = "production"
	}
	prod := req.Environment == "production"
	if req.ProductionEnvironment != nil {
		prod = *req.ProductionEnvironment
	}
	s.nextID++
	d := &Deployment{ID: s.nextID, SHA: c.sha, Ref: req.Ref, Task: req.Task, Environment: req.Environment,
		Description: req.Description, Payload: req.Payload, AutoMerge: req.AutoMerge, RequiredContexts: req.RequiredContexts,
		Production: prod, Created: time.Now().UTC().Truncate(time.Second)}
	rp.deployments = append(rp.deployments, d)
	writeJSON(w, http.StatusCreated, s.deploymentJSON(rp, d))
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request, rp *repo) {
	q := r.URL.Query()
	var match []any
	for _, d := range slices.Backward(rp.deployments) { // newest first
		if v := q.Get("sha"); v != "" && v != d.SHA ||
			q.Get("ref") != "" && q.Get("ref") != d.Ref ||
			q.Get("task") != "" && q.Get("task") != d.Task ||
			q.Get("environment") != "" && q.Get("environment") != d.Environment {
			continue
		}
		match = append(match, s.deploymentJSON(rp, d))
	}
	writeJSON(w, http.StatusOK, page(r, match))
}

// page cuts a list as GitHub's page and per_page parameters say.
func page(r *http.Request, all []any) []any {
	perPage, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if perPage <= 0 {
		perPage = 30
	}
	perPage = min(perPage, 100)
	n, _ := strconv.Atoi(r.URL.Query().Get("page"))
	n = max(n, 1)
	start := min((n-1)*perPage, len(all))
	end := min(start+perPage, len(all))
	out := all[start:end]
	if out == nil {
		out = []any{}
	}
	return out
}

func (rp *repo) deployment(id string) *Deployment {
	for _, d := range rp.deployments {
		if strconv.FormatInt(d.ID, 10) == id {
			return d
		}
	}
	return nil
}

func (s *Server) getDeployment(w http.ResponseWriter, r *http.Request, rp *repo) {
	d := rp.deployment(r.PathValue("id"))
	if d == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, s.deploymentJSON(rp, d))
}

var deploymentStates = []string{"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}

func (s *Server) deploymentStatusJSON(rp *repo, d *Deployment, st DeploymentStatus) map[string]any {
	return map[string]any{
		"id": st.ID, "node_id": fmt.Sprintf("DES_%d", st.ID), "state": st.State, "description": st.Description,
		"environment": st.Environment, "log_url": st.LogURL, "target_url": st.LogURL, "creator": s.user("slipway[bot]"),
		"created_at": time.Now().UTC().Format(time.RFC3339), "updated_at": time.Now().UTC().Format(time.RFC3339),
		"deployment_url": s.apiURL("repos/%s/deployments/%d", rp.fullName(), d.ID),
		"repository_url": s.apiURL("repos/%s", rp.fullName()),
		"url":            s.apiURL("repos/%s/deployments/%d/statuses/%d", rp.fullName(), d.ID, st.ID),
	}
}

func (s *Server) postDeploymentStatus(w http.ResponseWriter, r *http.Request, rp *repo) {
	d := rp.deployment(r.PathValue("id"))
	if d == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	var req struct {
		State        string `json:"state"`
		LogURL       string `json:"log_url"`
		Description  string `json:"description"`
		Environment  string `json:"environment"`
		AutoInactive *bool  `json:"auto_inactive"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	if !slices.Contains(deploymentStates, req.State) {
		writeValidation(w, "DeploymentStatus", "state", "state is not included in the list")
		return
	}
	if len([]rune(req.Description)) > 140 {
		writeValidation(w, "DeploymentStatus", "description", "description is too long (maximum is 140 characters)")
		return
	}
	env := d.Environment
	if req.Environment != "" {
		env = req.Environment
	}
	s.nextID++
	st := DeploymentStatus{ID: s.nextID, State: req.State, Description: req.Description, LogURL: req.LogURL,
		Environment: env, AutoInactive: req.AutoInactive}
	d.Statuses = append(d.Statuses, st)
	// GitHub marks the earlier successful deployments of the environment
	// inactive when one succeeds, unless told not to or production.
	if req.State == "success" && (req.AutoInactive == nil || *req.AutoInactive) {
		for _, o := range rp.deployments {
			if o == d || o.Environment != d.Environment || o.Production || len(o.Statuses) == 0 ||
				o.Statuses[len(o.Statuses)-1].State != "success" {
				continue
			}
			s.nextID++
			o.Statuses = append(o.Statuses, DeploymentStatus{ID: s.nextID, State: "inactive", Environment: o.Environment})
		}
	}
	writeJSON(w, http.StatusCreated, s.deploymentStatusJSON(rp, d, st))
}

func (s *Server) listDeploymentStatuses(w http.ResponseWriter, r *http.Request, rp *repo) {
	d := rp.deployment(r.PathValue("id"))
	if d == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	var out []any
	for _, st := range slices.Backward(d.Statuses) {
		out = append(out, s.deploymentStatusJSON(rp, d, st))
	}
	writeJSON(w, http.StatusOK, page(r, out))
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// app is a GitHub App installed in the fake.
type app struct {
	id  int64
	key *rsa.PublicKey
}
