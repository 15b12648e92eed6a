// Package forge is slipway's side of GitHub: it resolves refs for
// /deploy, reads a commit's config and vendored orbs, fetches source
// tarballs for checkout, and reports pipelines back as commit statuses and
// deployments (the "github" consumer of the engine's outbox). Every call to
// GitHub goes through go-github; it is named forge so that it does not
// clash with go-github's package.
package forge

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v60/github"
	"github.com/slipway-ci/slipway/internal/lazyre"
	"golang.org/x/sync/singleflight"
)

// DefaultAPIURL is github.com's REST API.
const DefaultAPIURL = "https://api.github.com/"

// DefaultMaxTarballSize bounds a source tarball unless Options say
// otherwise.
const DefaultMaxTarballSize = 1 << 30

// Options configure a Client. It authenticates with Token, or as a GitHub
// App installation with AppID, PrivateKey and InstallationID.
type Options struct {
	// APIURL is the REST API's root: https://api.github.com/ by default,
	// https://ghe.example.com/api/v3/ for GitHub Enterprise Server.
	APIURL string
	Token  string
	// AppID, PrivateKey (PEM, as GitHub hands it out) and InstallationID
	// make the Client a GitHub App installation: its tokens are fetched
	// and refreshed as they expire.
	AppID          int64
	PrivateKey     []byte
	InstallationID int64
	// HTTPClient supplies the transport requests go through (tests point
	// it at a fake); default: a transport with connection and response
	// header timeouts.
	HTTPClient *http.Client
	// DataDir holds what the Client caches: source tarballs and vendored
	// orbs, by commit. FetchSource needs it; without it, Config fetches
	// a commit's orbs again at each load.
	DataDir   string
	Logger    *slog.Logger
	UserAgent string // default "slipway"
	// MaxTarballSize bounds a source tarball; default 1 GB.
	MaxTarballSize int64
}

// Client talks to one GitHub (github.com or an Enterprise Server) as one
// identity. It is safe for concurrent use.
type Client struct {
	gh         *github.Client
	http       *http.Client // the transport go-github uses: credentials for the API's host only
	api        *url.URL
	dataDir    string
	log        *slog.Logger
	maxTarball int64
	fetches    singleflight.Group
}

// New makes a Client. It checks the options (a private key that does not
// parse, missing or double credentials are errors) but calls nobody.
func New(opts Options) (*Client, error) {
	apiURL := opts.APIURL
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	if !strings.HasSuffix(apiURL, "/") {
		apiURL += "/"
	}
	api, err := url.Parse(apiURL)
	if err != nil || (api.Scheme != "https" && api.Scheme != "http") || api.Host == "" {
		return nil, fmt.Errorf("forge: api url %q: want http(s)://host/path/", opts.APIURL)
	}
	base := http.RoundTripper(defaultTransport())
	if opts.HTTPClient != nil && opts.HTTPClient.Transport != nil {
		base = opts.HTTPClient.Transport
	} else if opts.HTTPClient != nil {
		base = http.DefaultTransport
	}
	var authed http.RoundTripper
	app := opts.AppID != 0 || len(opts.PrivateKey) > 0 || opts.InstallationID != 0
	switch {
	case opts.Token != "" && app:
		return nil, errors.New("forge: both a token and a GitHub App are configured; give one")
	case opts.Token != "":
		authed = &tokenTransport{token: opts.Token, base: base}
	case app:
		var missing []string
		if opts.AppID == 0 {
			missing = append(missing, "app ID")
		}
		if len(opts.PrivateKey) == 0 {
			missing = append(missing, "private key")
		}
		if opts.InstallationID == 0 {
			missing = append(missing, "installation ID")
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("forge: GitHub App: missing %s", strings.Join(missing, ", "))
		}
		itr, err := ghinstallation.New(base, opts.AppID, opts.InstallationID, opts.PrivateKey)
		if err != nil {
			// The error names the parse failure, never the key.
			return nil, fmt.Errorf("forge: GitHub App %d: private key: %w", opts.AppID, err)
		}
		itr.BaseURL = strings.TrimSuffix(api.String(), "/")
		authed = itr
	default:
		return nil, errors.New("forge: no GitHub credentials: set a token, or a GitHub App's ID, private key and installation ID")
	}
	hc := &http.Client{
		Transport: &hostTransport{host: api.Host, authed: authed, plain: base},
		// Redirects are followed at most a few times; credentials are
		// only ever added for the API's host (hostTransport), whatever a
		// redirect says.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("stopped after 5 redirects")
			}
			return nil
		},
	}
	if opts.HTTPClient != nil {
		hc.Timeout = opts.HTTPClient.Timeout
	}
	gh := github.NewClient(hc)
	gh.BaseURL = api
	gh.UserAgent = opts.UserAgent
	if gh.UserAgent == "" {
		gh.UserAgent = "slipway"
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	maxTarball := opts.MaxTarballSize
	if maxTarball <= 0 {
		maxTarball = DefaultMaxTarballSize
	}
	return &Client{gh: gh, http: hc, api: api, dataDir: opts.DataDir, log: logger.With("component", "forge"),
		maxTarball: maxTarball}, nil
}

func defaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// codeload may take a while to start a large repository's tarball.
	t.ResponseHeaderTimeout = time.Minute
	return t
}

// tokenTransport adds a token to each request.
type tokenTransport struct {
	token string
	base  http.RoundTripper
}

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+t.token)
	return t.base.RoundTrip(req)
}

// hostTransport sends requests to the API's host with credentials and
// every other request without: a redirect to codeload (or anywhere) never
// carries the token. http.Client strips Authorization on a redirect to
// another domain, but a transport adding it would put it back.
type hostTransport struct {
	host   string
	authed http.RoundTripper
	plain  http.RoundTripper
}

func (t *hostTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.EqualFold(req.URL.Host, t.host) {
		return t.authed.RoundTrip(req)
	}
	if req.Header.Get("Authorization") != "" {
		req = req.Clone(req.Context())
		req.Header.Del("Authorization")
	}
	return t.plain.RoundTrip(req)
}

// GitHub's rules for names: an account is letters, digits and hyphens; a
// repository also has dots and underscores. Enterprise Server allows
// underscores in accounts too.
var (
	ownerRe = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9_-]{0,38}$`)
	nameRe  = lazyre.New(`^[A-Za-z0-9._-]{1,100}$`)
	shaRe   = lazyre.New(`^(?:[0-9a-f]{40}|[0-9a-f]{64})$`)
)

// splitRepo splits "owner/name", refusing what is not a GitHub
// repository's name (and so cannot escape a URL path or a cache folder).
func splitRepo(repo string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || !ownerRe.MatchString(owner) || !nameRe.MatchString(name) || name == "." || name == ".." {
		return "", "", fmt.Errorf("forge: %q is not a GitHub repository (want owner/name)", repo)
	}
	return owner, name, nil
}

// short is the 7-character form of a SHA, for messages.
func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
