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
	"text/template"
	"time"

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

// RenderKey expands a CircleCI cache key template. It is Go's
// text/template, as on CircleCI, so a variable missing from .Environment
// renders as "<no value>" there and here alike.
func RenderKey(tmpl string, d KeyData) (string, error) {
	now := d.Now
	if now == nil {
		now = time.Now
	}
	arch := d.Arch
	if arch == "" {
		arch = HostArch()
	}
	funcs := template.FuncMap{
		"checksum": func(file string) (string, error) {
			if d.Checksum == nil {
				return "", fmt.Errorf("checksum %q: no file access", file)
			}
			sum, err := d.Checksum(file)
			if err != nil {
				return "", fmt.Errorf("checksum %q: %w", file, err)
			}
			return sum, nil
		},
		"epoch": func() string { return strconv.FormatInt(now().Unix(), 10) },
		"arch":  func() string { return arch },
	}
	t, err := template.New("key").Funcs(funcs).Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("cache key %q: %w", tmpl, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("cache key %q: %w", tmpl, err)
	}
	key := strings.TrimSpace(b.String())
	if key == "" {
		return "", fmt.Errorf("cache key %q: renders empty", tmpl)
	}
	return key, nil
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
