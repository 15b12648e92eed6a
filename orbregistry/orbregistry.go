// Package orbregistry is a client of CircleCI's orb registry: the
// GraphQL API that the CircleCI CLI asks for `circleci orb source` and
// `circleci orb info`, at circleci.com or a CircleCI server
// installation. It gives the config language the orbs that are not
// vendored (workflows.OrbRegistry).
package orbregistry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/workflows"
)

// DefaultURL is circleci.com's GraphQL endpoint, the CLI's default.
const DefaultURL = "https://circleci.com/graphql-unstable"

// versionCount is how many of an orb's versions Resolve asks for, the
// newest first: the CLI asks for as many.
const versionCount = 200

// maxResponse bounds an answer: the largest orbs are a few hundred KB.
const maxResponse = 8 << 20

// Options configure a Client.
type Options struct {
	// Token, when set, is sent as Circle-Token: private orbs need one.
	Token string
	// HTTPClient defaults to one with a 30 second timeout.
	HTTPClient *http.Client
}

// Client asks one orb registry. It is safe for concurrent use.
type Client struct {
	url   string
	token string
	http  *http.Client
}

var _ workflows.OrbRegistry = (*Client)(nil)

// New returns a client of the registry at url, the GraphQL endpoint
// (DefaultURL for circleci.com).
func New(url string, opts Options) *Client {
	if url == "" {
		url = DefaultURL
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{url: url, token: opts.Token, http: hc}
}

// semver matches the versions the registry publishes.
var semver = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)$`)

// Resolve says which published version of name a reference names: the
// highest version that starts with a partial one ("5", "5.1"), the
// highest of all for "volatile", an exact version or dev: label as it
// is.
func (c *Client) Resolve(ctx context.Context, name, ref string) (string, error) {
	if semver.MatchString(ref) || strings.HasPrefix(ref, "dev:") {
		return ref, nil
	}
	var want []int
	if ref != "volatile" {
		for _, p := range strings.Split(ref, ".") {
			n, err := strconv.Atoi(p)
			if err != nil || len(want) == 2 {
				return "", fmt.Errorf("orbregistry: %s@%s: not a version (want 5, 5.1, 5.1.2 or volatile): %w", name, ref, workflows.ErrOrbNotFound)
			}
			want = append(want, n)
		}
	}
	var resp struct {
		Orb *struct {
			Versions []struct{ Version string }
		}
	}
	q := `query($orbName: String!, $versionCount: Int!) {
  orb(name: $orbName) {
    id
    name
    versions(count: $versionCount) { version }
  }
}`
	if err := c.query(ctx, q, map[string]any{"orbName": name, "versionCount": versionCount}, &resp); err != nil {
		return "", fmt.Errorf("orbregistry: %s: %w", name, err)
	}
	if resp.Orb == nil {
		return "", fmt.Errorf("orbregistry: %s: %w", name, workflows.ErrOrbNotFound)
	}
	var best [3]int
	found := ""
	for _, v := range resp.Orb.Versions {
		m := semver.FindStringSubmatch(v.Version)
		if m == nil {
			continue
		}
		var n [3]int
		for i := range n {
			n[i], _ = strconv.Atoi(m[i+1])
		}
		if len(want) > 0 && n[0] != want[0] || len(want) > 1 && n[1] != want[1] {
			continue
		}
		if found == "" || less(best, n) {
			best, found = n, v.Version
		}
	}
	if found == "" {
		return "", fmt.Errorf("orbregistry: %s@%s: no such version: %w", name, ref, workflows.ErrOrbNotFound)
	}
	return found, nil
}

func less(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// Source returns the packed YAML of name at an exact version, as
// `circleci orb source` prints it.
func (c *Client) Source(ctx context.Context, name, version string) ([]byte, error) {
	var resp struct {
		OrbVersion *struct {
			ID      string
			Version string
			Source  string
		}
	}
	q := `query($orbVersionRef: String!) {
  orbVersion(orbVersionRef: $orbVersionRef) {
    id
    version
    orb { id }
    source
  }
}`
	ref := name + "@" + version
	if err := c.query(ctx, q, map[string]any{"orbVersionRef": ref}, &resp); err != nil {
		return nil, fmt.Errorf("orbregistry: %s: %w", ref, err)
	}
	if resp.OrbVersion == nil || resp.OrbVersion.ID == "" {
		return nil, fmt.Errorf("orbregistry: %s: %w", ref, workflows.ErrOrbNotFound)
	}
	return []byte(resp.OrbVersion.Source), nil
}

// query posts a GraphQL query and decodes its data into out.
func (c *Client) query(ctx context.Context, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Circle-Token", c.token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponse+1))
	if err != nil {
		return err
	}
	if len(data) > maxResponse {
		return fmt.Errorf("answer over %d bytes", maxResponse)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", c.url, res.Status)
	}
	var env struct {
		Data   json.RawMessage
		Errors []struct{ Message string }
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return fmt.Errorf("%s: bad answer: %w", c.url, err)
	}
	if len(env.Errors) > 0 {
		msgs := make([]string, len(env.Errors))
		for i, e := range env.Errors {
			msgs[i] = e.Message
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	if len(env.Data) == 0 || string(env.Data) == "null" {
		return fmt.Errorf("%s: an answer without data", c.url)
	}
	return json.Unmarshal(env.Data, out)
}
