package forge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-github/v60/github"
	"github.com/slipway-ci/slipway/workflows/engine"
)

var _ engine.SourceFetcher = (*Client)(nil)

// FetchSource makes a GitHub commit's source ready for checkout: its
// tarball, as GitHub serves it (one top folder "owner-repo-sha7/"), cached
// at DataDir/sources/<owner>/<repo>/<sha>.tar.gz. Each commit is fetched
// once, however many jobs ask for it at the same time; later asks find
// the file. A source that is local already (GitDir or Tarball set) is
// returned as it is.
func (c *Client) FetchSource(ctx context.Context, src engine.Source) (engine.Source, error) {
	if src.GitDir != "" || src.Tarball != "" {
		return src, nil
	}
	owner, name, err := splitRepo(src.Repo)
	if err != nil {
		return src, err
	}
	if !shaRe.MatchString(src.Revision) {
		return src, fmt.Errorf("forge: source of %s: %q is not a full commit SHA", src.Repo, src.Revision)
	}
	if c.dataDir == "" {
		return src, errors.New("forge: no data folder to keep sources in")
	}
	dest := filepath.Join(c.dataDir, "sources", strings.ToLower(owner), strings.ToLower(name), src.Revision+".tar.gz")
	err = c.single(ctx, "source:"+dest, func(ctx context.Context) error {
		if _, err := os.Stat(dest); err == nil {
			return nil
		}
		return c.fetchTarball(ctx, owner, name, src.Revision, dest)
	})
	if err != nil {
		return src, err
	}
	src.Tarball = dest
	return src, nil
}

// fetchTarball asks GitHub for the commit's tarball link (a 302 to
// codeload, whose URL carries its own short-lived token) and downloads
// it, bounded, into a temporary file renamed to dest once whole.
func (c *Client) fetchTarball(ctx context.Context, owner, name, sha, dest string) error {
	what := fmt.Sprintf("forge: GET tarball %s/%s@%s", owner, name, short(sha))
	link, resp, err := c.gh.Repositories.GetArchiveLink(ctx, owner, name, github.Tarball,
		&github.RepositoryContentGetOptions{Ref: sha}, 1)
	switch {
	case err != nil && resp != nil:
		// GitHub answered something other than its redirect.
		if resp.StatusCode >= 500 {
			return fmt.Errorf("%s: %s: %w", what, resp.Status, ErrUnreachable)
		}
		return fmt.Errorf("%s: %s", what, resp.Status)
	case err != nil:
		return fmt.Errorf("%s: %w: %w", what, ErrUnreachable, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link.String(), nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	// c.http adds credentials for the API's host only: codeload's URL
	// authorizes the download by itself.
	res, err := c.http.Do(req)
	if err != nil {
		// The URL holds a token: say where, not what.
		return fmt.Errorf("%s: %s: %w: %w", what, link.Host, ErrUnreachable, scrubURL(err))
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", what, res.Status)
	}
	if res.ContentLength > c.maxTarball {
		return fmt.Errorf("%s: the tarball is %s; slipway fetches up to %s", what, size(res.ContentLength), size(c.maxTarball))
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("forge: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(dest), "."+sha+".tmp-")
	if err != nil {
		return fmt.Errorf("forge: %w", err)
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	body := bufio.NewReader(res.Body)
	// A gzip stream starts with 1f 8b: an error page served as 200 must
	// not be cached as a commit's source for good.
	if magic, err := body.Peek(2); err != nil || magic[0] != 0x1f || magic[1] != 0x8b {
		f.Close()
		return fmt.Errorf("%s: the answer is not a gzip file", what)
	}
	n, err := io.Copy(f, io.LimitReader(body, c.maxTarball+1))
	if err == nil && n > c.maxTarball {
		err = fmt.Errorf("the tarball is larger than %s", size(c.maxTarball))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), dest)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, scrubURL(err))
	}
	c.log.Info("fetched source", "repo", owner+"/"+name, "sha", short(sha), "bytes", n)
	return nil
}

// scrubURL takes the query (a codeload token) out of the URL that a
// *url.Error names.
func scrubURL(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	c := *ue
	if i := strings.IndexByte(c.URL, '?'); i >= 0 {
		c.URL = c.URL[:i]
	}
	return &c
}
