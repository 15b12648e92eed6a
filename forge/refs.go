package forge

import (
	"context"
	"fmt"
	"net/url"
	"strings"
)

// Commit is a commit a ref resolved to.
type Commit struct {
	SHA         string
	Title       string // the message's first line
	AuthorLogin string // the GitHub account of the author; empty when GitHub matched none
	AuthorName  string
	AuthorEmail string
	URL         string // the commit's page on GitHub
	// Branch or Tag is the ref when it named one (Branch for the default
	// branch's head); both are empty for a SHA.
	Branch, Tag string
}

// DefaultBranch returns the repository's default branch. A repository
// that does not exist (or that the credentials cannot see) is
// ErrNoSuchRef; GitHub not answering is ErrUnreachable.
func (c *Client) DefaultBranch(ctx context.Context, repo string) (string, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return "", fmt.Errorf("%w: %w", err, ErrNoSuchRef)
	}
	r, _, err := c.gh.Repositories.Get(ctx, owner, name)
	if err != nil {
		return "", lookupError("forge: repository "+repo, err)
	}
	if r.GetDefaultBranch() == "" {
		return "", fmt.Errorf("forge: repository %s has no default branch (is it empty?): %w", repo, ErrNoSuchRef)
	}
	return r.GetDefaultBranch(), nil
}

// ResolveRef resolves a branch, a tag, a short or full SHA, or "" (the
// default branch's head) of repo ("owner/name") to a commit. A ref or
// repository GitHub does not know is ErrNoSuchRef; GitHub not answering
// (network, 5xx, timeout, rate limit) is ErrUnreachable.
func (c *Client) ResolveRef(ctx context.Context, repo, ref string) (Commit, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return Commit{}, fmt.Errorf("%w: %w", err, ErrNoSuchRef)
	}
	var isBranch bool
	if ref == "" {
		if ref, err = c.DefaultBranch(ctx, repo); err != nil {
			return Commit{}, err
		}
		isBranch = true
	}
	what := fmt.Sprintf("forge: resolve %s@%s", repo, ref)
	escaped, ok := escapeRef(ref)
	if !ok {
		return Commit{}, fmt.Errorf("%s: not a valid ref: %w", what, ErrNoSuchRef)
	}
	rc, _, err := c.gh.Repositories.GetCommit(ctx, owner, name, escaped, nil)
	if err != nil {
		return Commit{}, lookupError(what, err)
	}
	cm := Commit{SHA: rc.GetSHA(), URL: rc.GetHTMLURL(), AuthorLogin: rc.GetAuthor().GetLogin()}
	if gc := rc.GetCommit(); gc != nil {
		cm.Title, _, _ = strings.Cut(gc.GetMessage(), "\n")
		cm.Title = strings.TrimSpace(cm.Title)
		cm.AuthorName = gc.GetAuthor().GetName()
		cm.AuthorEmail = gc.GetAuthor().GetEmail()
	}
	if !shaRe.MatchString(cm.SHA) {
		return Commit{}, fmt.Errorf("%s: GitHub answered a commit without a SHA", what)
	}
	switch {
	case isBranch:
		cm.Branch = ref
	case strings.HasPrefix(cm.SHA, strings.ToLower(ref)):
		// A SHA names no branch or tag.
	default:
		// The ref is a branch or a tag: GitHub's commits API takes both.
		_, _, err := c.gh.Git.GetRef(ctx, owner, name, "heads/"+ref)
		switch code := httpStatus(err); {
		case err == nil:
			cm.Branch = ref
		case code == 404:
			cm.Tag = ref
		default:
			return Commit{}, lookupError(what, err)
		}
	}
	return cm, nil
}

// lookupError wraps a failed lookup with the sentinel it stands for.
func lookupError(what string, err error) error {
	switch code := httpStatus(err); {
	case unreachable(err):
		return fmt.Errorf("%s: %w: %w", what, ErrUnreachable, err)
	case code == 404 || code == 422:
		return fmt.Errorf("%s: %w: %w", what, ErrNoSuchRef, err)
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}

// escapeRef checks a ref as git check-ref-format would (plus a SHA, which
// is one) and escapes each of its segments for the URL path: go-github
// puts the ref in the path as it is, and a '#' or '%' in a branch name
// would otherwise change the URL's meaning.
func escapeRef(ref string) (string, bool) {
	if ref == "" || len(ref) > 255 || strings.Contains(ref, "..") || strings.Contains(ref, "//") ||
		strings.HasPrefix(ref, "/") || strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, ".") ||
		strings.HasPrefix(ref, "-") || strings.Contains(ref, "@{") {
		return "", false
	}
	for _, r := range ref {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return "", false
		}
	}
	segs := strings.Split(ref, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".lock") {
			return "", false
		}
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/"), true
}
