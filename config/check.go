package config

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/internal/lazyre"
	"golang.org/x/crypto/bcrypt"
)

// Each check returns what is wrong with a value, or "" when nothing is.

var (
	envNameRE     = lazyre.New(`^[A-Za-z_][A-Za-z0-9_]*$`)
	appNameRE     = lazyre.New(`^[a-z0-9][a-z0-9-]{0,62}$`)
	contextNameRE = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)
	repoRE        = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9_.-]{1,100}$`)
	loginRE       = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$`)
	slackUserRE   = lazyre.New(`^[UW][A-Z0-9]{2,}$`)
	slackGroupRE  = lazyre.New(`^S[A-Z0-9]{2,}$`)
	channelRE     = lazyre.New(`^[CG][A-Z0-9]{2,}$`)
)

func validEnvName(s string) bool { return envNameRE.MatchString(s) }

func checkEnvName(s string) string {
	if !validEnvName(s) {
		return fmt.Sprintf("%q is not a variable name: want letters, digits and _, not starting with a digit", s)
	}
	return ""
}

func checkAppName(s string) string {
	if !appNameRE.MatchString(s) {
		return fmt.Sprintf("%q is not an app name: want lowercase letters, digits and -, starting with a letter or digit, at most 63", s)
	}
	return ""
}

func checkContextName(s string) string {
	if !contextNameRE.MatchString(s) {
		return fmt.Sprintf("%q is not a context name: want letters, digits, -, _ and ., starting with a letter or digit, at most 100", s)
	}
	return ""
}

func checkRepo(s string) string {
	if !repoRE.MatchString(s) || strings.HasSuffix(s, "/.") || strings.HasSuffix(s, "/..") {
		return fmt.Sprintf("%q is not a GitHub repository: want owner/name, as in acme/backend", s)
	}
	return ""
}

func checkLogin(s string) string {
	if !loginRE.MatchString(s) {
		return fmt.Sprintf("%q is not a GitHub login: want letters, digits, - and _", s)
	}
	return ""
}

func checkSlackUser(s string) string {
	if !slackUserRE.MatchString(s) {
		return fmt.Sprintf("%q is not a Slack user ID: want U… or W… (a profile's \"Copy member ID\")", s)
	}
	return ""
}

// checkSlackUserOrGroup checks an entry of deployers or approvers: these
// are IDs, never names, so that renaming a person or a group in Slack
// cannot hand out rights.
func checkSlackUserOrGroup(s string) string {
	if !slackUserRE.MatchString(s) && !slackGroupRE.MatchString(s) {
		return fmt.Sprintf("%q is not a Slack user or user group ID: want U… or W… for a person (a profile's \"Copy member ID\") or S… for a user group", s)
	}
	return ""
}

func checkChannel(s string) string {
	if !channelRE.MatchString(s) {
		return fmt.Sprintf("%q is not a Slack channel ID: want C… or G… (a channel's details, at the bottom)", s)
	}
	return ""
}

func checkExecutor(s string) string {
	switch s {
	case "", "docker", "local":
		return ""
	}
	return fmt.Sprintf("want docker or local (or nothing: docker when an engine answers), got %q", s)
}

// checkAddr checks a listen address: host:port, the host optional.
func checkAddr(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q is not host:port (as in :8080 or 127.0.0.1:8080)", s)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Sprintf("%q is not host:port: bad host %q", s, host)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("%q is not host:port: bad port %q (want 0 to 65535)", s, port)
	}
	return ""
}

// checkURL checks an absolute http or https URL.
func checkURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return fmt.Sprintf("%q is not an absolute http(s) URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Sprintf("%q: a base URL has no query or fragment", s)
	}
	return ""
}

func checkDuration(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Sprintf("want a duration such as 30s or 2m, got %q", s)
	}
	if d < 0 {
		return fmt.Sprintf("want a duration of 0 or more, got %s", s)
	}
	return ""
}

// checkConfigPath checks a path inside a repository.
func checkConfigPath(s string) string {
	if s == "" || path.IsAbs(s) || path.Clean(s) == ".." || strings.HasPrefix(path.Clean(s), "../") || strings.Contains(s, `\`) {
		return fmt.Sprintf("%q is not a path inside the repository (relative, with /)", s)
	}
	return ""
}

func checkNotEmpty(s string) string {
	if s == "" {
		return "is empty"
	}
	return ""
}

func checkPrefix(prefix string) func(string) string {
	return func(s string) string {
		if !strings.HasPrefix(s, prefix) || len(s) == len(prefix) {
			return fmt.Sprintf("want a token starting %s", prefix)
		}
		return ""
	}
}

// maxKeySize bounds the read of a private key file; an RSA key in PEM
// form is a few kilobytes.
const maxKeySize = 64 << 10

// readPrivateKey reads a GitHub App's private key: an RSA key in PEM form
// (PKCS #1, as GitHub hands it out, or PKCS #8).
func readPrivateKey(file string) (string, string) {
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Sprintf("cannot read the key: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeySize+1))
	if err != nil {
		return "", fmt.Sprintf("cannot read the key: %v", err)
	}
	if len(b) > maxKeySize {
		return "", fmt.Sprintf("%s is too large for a key", file)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return "", fmt.Sprintf("%s is not a PEM file (GitHub's .pem key of the app)", file)
	}
	var key any
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return "", fmt.Sprintf("%s holds %q, not an RSA private key", file, block.Type)
	}
	if err != nil {
		// The parser's ASN.1 detail would not help anyone fix the file.
		return "", fmt.Sprintf("%s holds a damaged %s", file, block.Type)
	}
	if _, ok := key.(*rsa.PrivateKey); !ok {
		return "", fmt.Sprintf("%s is not an RSA private key (GitHub App keys are RSA)", file)
	}
	return string(b), ""
}

// checkLinkKey checks the key posted links are signed with: long enough
// that it cannot be guessed.
func checkLinkKey(s string) string {
	if len(s) < 32 {
		return fmt.Sprintf("want at least 32 characters (openssl rand -hex 32), got %d", len(s))
	}
	return ""
}

// checkDashboardUser checks a dashboard user's name, which HTTP Basic
// authentication sends before a colon.
func checkDashboardUser(s string) string {
	if s == "" || strings.ContainsAny(s, ": \t") || len(s) > 100 {
		return fmt.Sprintf("%q is not a user name (no colon or space, 100 characters at most)", s)
	}
	return ""
}

// checkBcrypt checks a bcrypt hash, as htpasswd -B prints it.
func checkBcrypt(s string) string {
	cost, err := bcrypt.Cost([]byte(s))
	if err != nil {
		return "not a bcrypt hash ($2y$10$..., from htpasswd -nBC 10 NAME)"
	}
	if cost > 14 {
		return fmt.Sprintf("a bcrypt cost of %d makes each sign-in take seconds; use 10 to 12", cost)
	}
	return ""
}

// checkHeaderName checks an HTTP header name.
func checkHeaderName(s string) string {
	if s == "" || strings.IndexFunc(s, func(r rune) bool {
		return !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) >= 0 {
		return fmt.Sprintf("%q is not a header name (such as X-Forwarded-User)", s)
	}
	return ""
}

func checkLogFormat(s string) string {
	if s != "text" && s != "json" {
		return fmt.Sprintf("want text or json, got %q", s)
	}
	return ""
}

// checkJobUser checks who local jobs run as: a user name, or uid[:gid].
func checkJobUser(s string) string {
	if s == "" || strings.ContainsAny(s, " /\t\n") || len(s) > 64 {
		return fmt.Sprintf("%q is not a user name or uid[:gid]", s)
	}
	return ""
}
