package executors

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/slipway-ci/slipway/workflows/engine"
)

// KeyData is what a CircleCI cache key template can refer to.
type KeyData struct {
	Branch      string            // {{ .Branch }}
	Revision    string            // {{ .Revision }}
	BuildNum    string            // {{ .BuildNum }}
	Environment map[string]string // {{ .Environment.X }}: the step's environment
	// Checksum returns the checksum of a file named in
	// {{ checksum "file" }}, relative to the job's working directory.
	// The executor supplies it because the file may live in a container;
	// it should read the file and return Checksum's answer.
	Checksum func(file string) (string, error)
	// Now is the clock behind {{ epoch }}; time.Now when nil.
	Now func() time.Time
	// Arch is {{ arch }}; HostArch() when empty.
	Arch string
}

// KeyDataFor fills KeyData from a job attempt and the environment its step
// sees. The branch, revision and build number come from the CIRCLE_*
// variables the engine sets, as on CircleCI, falling back to the source
// revision.
func KeyDataFor(job *engine.JobRun, env map[string]string, checksum func(string) (string, error)) KeyData {
	rev := env["CIRCLE_SHA1"]
	if rev == "" {
		rev = job.Source.Revision
	}
	return KeyData{
		Branch:      env["CIRCLE_BRANCH"],
		Revision:    rev,
		BuildNum:    env["CIRCLE_BUILD_NUM"],
		Environment: env,
		Checksum:    checksum,
	}
}

// RenderKey expands a CircleCI cache key template: the actions CircleCI
// documents, {{ .Branch }}, {{ .Revision }}, {{ .BuildNum }},
// {{ .Environment.NAME }}, {{ checksum "file" }}, {{ epoch }} and
// {{ arch }}, with Go template syntax ({{- and -}} trim spaces, a variable
// missing from .Environment renders "<no value>", as on CircleCI, where
// keys are Go templates). Anything else is an error that names what keys
// may hold. It is not text/template on purpose: executing one keeps every
// exported method of the binary alive for reflection, 15 MB of it.
func RenderKey(tmpl string, d KeyData) (string, error) {
	var b strings.Builder
	rest := tmpl
	for {
		open := strings.Index(rest, "{{")
		if open < 0 {
			b.WriteString(rest)
			break
		}
		text := rest[:open]
		rest = rest[open+2:]
		if strings.HasPrefix(rest, "- ") || strings.HasPrefix(rest, "-\t") || strings.HasPrefix(rest, "-\n") {
			text = strings.TrimRight(text, " \t\r\n")
			rest = rest[1:]
		}
		b.WriteString(text)
		end := strings.Index(rest, "}}")
		if end < 0 {
			return "", fmt.Errorf("cache key %q: unclosed {{", tmpl)
		}
		action := rest[:end]
		rest = rest[end+2:]
		if strings.HasSuffix(action, " -") || strings.HasSuffix(action, "\t-") || strings.HasSuffix(action, "\n-") {
			action = action[:len(action)-1]
			rest = strings.TrimLeft(rest, " \t\r\n")
		}
		out, err := d.action(strings.TrimSpace(action))
		if err != nil {
			return "", fmt.Errorf("cache key %q: %w", tmpl, err)
		}
		b.WriteString(out)
	}
	key := strings.TrimSpace(b.String())
	if key == "" {
		return "", fmt.Errorf("cache key %q: renders empty", tmpl)
	}
	return key, nil
}

// action is the value of one {{ action }} of a cache key.
func (d KeyData) action(a string) (string, error) {
	switch a {
	case ".Branch":
		return d.Branch, nil
	case ".Revision":
		return d.Revision, nil
	case ".BuildNum":
		return d.BuildNum, nil
	case "epoch":
		now := d.Now
		if now == nil {
			now = time.Now
		}
		return strconv.FormatInt(now().Unix(), 10), nil
	case "arch":
		if d.Arch == "" {
			return HostArch(), nil
		}
		return d.Arch, nil
	}
	if name, ok := strings.CutPrefix(a, ".Environment."); ok && isIdentifier(name) {
		if v, ok := d.Environment[name]; ok {
			return v, nil
		}
		return "<no value>", nil
	}
	if arg, ok := strings.CutPrefix(a, "checksum"); ok && arg != "" && (arg[0] == ' ' || arg[0] == '\t') {
		file, err := strconv.Unquote(strings.TrimSpace(arg))
		if err != nil {
			return "", fmt.Errorf("checksum wants one quoted file name, got %s", strings.TrimSpace(arg))
		}
		if d.Checksum == nil {
			return "", fmt.Errorf("checksum %q: no file access", file)
		}
		sum, err := d.Checksum(file)
		if err != nil {
			return "", fmt.Errorf("checksum %q: %w", file, err)
		}
		return sum, nil
	}
	return "", fmt.Errorf("unknown {{ %s }}: a key may use .Branch, .Revision, .BuildNum, .Environment.NAME, checksum \"file\", epoch and arch", a)
}

// isIdentifier says whether s is a Go identifier, as a template field
// name must be.
func isIdentifier(s string) bool {
	for i, r := range s {
		if r != '_' && !unicode.IsLetter(r) && (i == 0 || !unicode.IsDigit(r)) {
			return false
		}
	}
	return s != ""
}

// Checksum is CircleCI's {{ checksum }} of a file's contents: the
// standard base64 of its SHA-256.
func Checksum(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("checksum: %w", err)
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// HostArch is {{ arch }} for jobs on this host, in CircleCI's form
// "arch1-<os>-<arch>-<cpu family>_<model>", for example
// "arch1-linux-amd64-6_85": caches of compiled code are then not shared
// between CPUs that may not run it. Family and model come from
// /proc/cpuinfo; where it has none (arm64 lists no "cpu family") the
// suffix is left out: "arch1-linux-arm64". Docker jobs run on the same
// host's CPU, so the docker executor uses it too.
func HostArch() string {
	hostArchOnce.Do(func() {
		hostArch = "arch1-" + runtime.GOOS + "-" + runtime.GOARCH
		if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
			if fm := cpuFamilyModel(data); fm != "" {
				hostArch += "-" + fm
			}
		}
	})
	return hostArch
}

var (
	hostArchOnce sync.Once
	hostArch     string
)

// cpuFamilyModel reads "cpu family" and "model" of the first processor.
func cpuFamilyModel(cpuinfo []byte) string {
	var family, model string
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" && family != "" {
			break // end of the first processor
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "cpu family":
			family = strings.TrimSpace(v)
		case "model":
			model = strings.TrimSpace(v)
		}
	}
	if family == "" || model == "" {
		return ""
	}
	return family + "_" + model
}
