package executors

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/slipway-ci/slipway/workflows"
	"github.com/slipway-ci/slipway/workflows/engine"
)

// tarOf builds a tar stream of regular files, name → contents, in the
// order given by names.
func tarOf(t *testing.T, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i < len(files); i += 2 {
		hdr := &tar.Header{Name: files[i], Mode: 0o644, Size: int64(len(files[i+1])), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readTree returns every regular file under dir, relative name → contents.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// clock returns a clock that moves a second forward on every call, so
// that "most recent" is decided by order and not by the machine's timer.
func clock() func() time.Time {
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(time.Second); return t }
}

func TestRenderKey(t *testing.T) {
	data := KeyData{
		Branch:      "main",
		Revision:    "3f2a9c1",
		BuildNum:    "42",
		Environment: map[string]string{"NODE": "22"},
		Checksum: func(f string) (string, error) {
			if f != "package-lock.json" {
				return "", os.ErrNotExist
			}
			return "c2hh", nil
		},
		Now:  func() time.Time { return time.Unix(1700000000, 0) },
		Arch: "arch1-linux-amd64-6_85",
	}
	tests := []struct {
		name, tmpl, want, err string
	}{
		{name: "branch and revision", tmpl: "v1-{{ .Branch }}-{{ .Revision }}", want: "v1-main-3f2a9c1"},
		{name: "build number", tmpl: "b{{ .BuildNum }}", want: "b42"},
		{name: "environment", tmpl: "node{{ .Environment.NODE }}", want: "node22"},
		{name: "missing environment as on CircleCI", tmpl: "x-{{ .Environment.NOPE }}", want: "x-<no value>"},
		{name: "checksum", tmpl: `deps-{{ checksum "package-lock.json" }}`, want: "deps-c2hh"},
		{name: "epoch", tmpl: "e-{{ epoch }}", want: "e-1700000000"},
		{name: "arch", tmpl: "{{ arch }}-x", want: "arch1-linux-amd64-6_85-x"},
		{name: "checksum of a missing file", tmpl: `{{ checksum "nope" }}`, err: `checksum "nope"`},
		{name: "no spaces", tmpl: "{{.Branch}}-{{checksum `package-lock.json`}}", want: "main-c2hh"},
		{name: "trim markers", tmpl: "a- {{- .Branch -}} -b", want: "a-main-b"},
		{name: "a CIRCLE variable", tmpl: "{{ .Environment.NODE }}-{{ .Environment.CIRCLE_NODE_INDEX }}", want: "22-<no value>"},
		{name: "bad template", tmpl: "{{ .Branch ", err: "cache key"},
		{name: "unknown field", tmpl: "{{ .Tag }}", err: "unknown {{ .Tag }}"},
		{name: "a pipeline", tmpl: `{{ checksum "a" | printf "%s" }}`, err: "checksum wants one quoted file name"},
		{name: "checksum of nothing", tmpl: "{{ checksum }}", err: "unknown"},
		{name: "not a variable name", tmpl: "{{ .Environment.A-B }}", err: "unknown"},
		{name: "empty", tmpl: "  ", err: "renders empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RenderKey(tt.tmpl, data)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("RenderKey(%q) error = %v, want one containing %q", tt.tmpl, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("RenderKey(%q) = %q, %v; want %q", tt.tmpl, got, err, tt.want)
			}
		})
	}
}

func TestChecksumIsCircleCIs(t *testing.T) {
	// sha256("hello\n") in standard base64.
	got, err := Checksum(strings.NewReader("hello\n"))
	if want := "WJG1tSLV3whtD/CxEPvZ0hu0/HFjrzTQgoai6Eb2vgM="; err != nil || got != want {
		t.Fatalf("Checksum = %q, %v; want %q", got, err, want)
	}
}

func TestCPUFamilyModel(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"x86", "processor\t: 0\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: Xeon\n\nprocessor\t: 1\ncpu family\t: 9\nmodel\t\t: 9\n", "6_85"},
		{"arm64 has no family", "processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cpuFamilyModel([]byte(tt.in)); got != tt.want {
				t.Fatalf("cpuFamilyModel = %q, want %q", got, tt.want)
			}
		})
	}
	if a := HostArch(); !strings.HasPrefix(a, "arch1-") {
		t.Fatalf("HostArch() = %q, want the arch1- form", a)
	}
}

func TestCache(t *testing.T) {
	c := &Cache{Dir: t.TempDir(), Now: clock(), MaxBytes: 4096}
	save := func(key, content string) bool {
		t.Helper()
		saved, err := c.Save(key, bytes.NewReader(tarOf(t, "f", content)))
		if err != nil {
			t.Fatalf("Save(%q): %v", key, err)
		}
		return saved
	}
	if !save("v1-deps-aaa", "first") || !save("v1-deps-bbb", "second") || !save("v2-other", "third") {
		t.Fatal("first saves of new keys reported not saved")
	}
	if save("v1-deps-aaa", "overwritten?") {
		t.Fatal("saving an existing key reported saved; keys are immutable")
	}
	tests := []struct {
		name    string
		keys    []string
		wantKey string
		want    string
	}{
		{"exact", []string{"v1-deps-aaa"}, "v1-deps-aaa", "first"},
		{"prefix picks the most recent", []string{"v1-deps-"}, "v1-deps-bbb", "second"},
		{"exact beats a more recent prefix match", []string{"v1-deps-aaa", "v1-"}, "v1-deps-aaa", "first"},
		{"falls through to the next key", []string{"v3-", "v2-"}, "v2-other", "third"},
		{"empty keys are skipped", []string{"", "v2-other"}, "v2-other", "third"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, rc, err := c.Restore(tt.keys)
			if err != nil {
				t.Fatalf("Restore(%q): %v", tt.keys, err)
			}
			defer rc.Close()
			dir := t.TempDir()
			if err := Untar(rc, dir); err != nil {
				t.Fatal(err)
			}
			if got := readTree(t, dir)["f"]; key != tt.wantKey || got != tt.want {
				t.Fatalf("Restore(%q) = %q with %q, want %q with %q", tt.keys, key, got, tt.wantKey, tt.want)
			}
		})
	}
	t.Run("no match", func(t *testing.T) {
		if _, _, err := c.Restore([]string{"nope-"}); !errors.Is(err, ErrNoCache) {
			t.Fatalf("Restore of an unknown key: %v, want ErrNoCache", err)
		}
	})
	t.Run("size limit", func(t *testing.T) {
		_, err := c.Save("big", bytes.NewReader(tarOf(t, "f", strings.Repeat("x", 8192))))
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Save over the limit: %v, want ErrTooLarge", err)
		}
		if _, _, err := c.Restore([]string{"big"}); !errors.Is(err, ErrNoCache) {
			t.Fatalf("a refused archive was kept: %v", err)
		}
	})
}

func TestWorkspace(t *testing.T) {
	w := &Workspace{Dir: t.TempDir(), Now: clock(), MaxBytes: 8192}
	attach := func() (map[string]string, error) {
		dir := t.TempDir()
		err := w.Attach(func(r io.Reader) error { return Untar(r, dir) })
		return readTree(t, dir), err
	}
	if _, err := attach(); err == nil {
		t.Fatal("attaching an empty workspace succeeded")
	}
	if err := w.Persist("build-1", bytes.NewReader(tarOf(t, "bin/app", "v1", "VERSION", "1"))); err != nil {
		t.Fatal(err)
	}
	if err := w.Persist("test-1", bytes.NewReader(tarOf(t, "VERSION", "2", "report.xml", "<ok/>"))); err != nil {
		t.Fatal(err)
	}
	got, err := attach()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"bin/app": "v1", "VERSION": "2", "report.xml": "<ok/>"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("attached workspace (-want +got):\n%s", d)
	}
	if err := w.Persist("big-1", bytes.NewReader(tarOf(t, "f", strings.Repeat("x", 8192)))); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("persist over the limit: %v, want ErrTooLarge", err)
	}
	if err := w.Persist("../evil", bytes.NewReader(nil)); err == nil {
		t.Fatal("a layer id with a slash was accepted")
	}
}

func TestOutputs(t *testing.T) {
	o := &Outputs{Dir: t.TempDir(), MaxBytes: 8192}
	if err := o.StoreArtifacts(bytes.NewReader(tarOf(t, "app.log", "hi")), "logs/run"); err != nil {
		t.Fatal(err)
	}
	if err := o.StoreTestResults(bytes.NewReader(tarOf(t, "unit/junit.xml", "<x/>")), ""); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"artifacts/logs/run/app.log": "hi", "test-results/unit/junit.xml": "<x/>"}
	if d := cmp.Diff(want, readTree(t, o.Dir)); d != "" {
		t.Fatalf("outputs (-want +got):\n%s", d)
	}
	if err := o.StoreArtifacts(bytes.NewReader(tarOf(t, "big", strings.Repeat("x", 9000))), ""); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("artifact over the limit: %v, want ErrTooLarge", err)
	}
	if err := o.StoreArtifacts(bytes.NewReader(tarOf(t, "a", "b")), "../../etc"); err != nil {
		// A destination is cleaned to stay inside artifacts/.
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(o.Dir, "artifacts", "etc", "a")); err != nil {
		t.Fatalf("a ../ destination did not land inside artifacts/: %v", err)
	}
}

func TestUntarStaysInside(t *testing.T) {
	tests := []struct {
		name    string
		entries func(tw *tar.Writer) error
	}{
		{"dot-dot name", func(tw *tar.Writer) error {
			return tw.WriteHeader(&tar.Header{Name: "../escaped", Typeflag: tar.TypeReg, Mode: 0o644})
		}},
		{"write through a symlink", func(tw *tar.Writer) error {
			if err := tw.WriteHeader(&tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "..", Mode: 0o777}); err != nil {
				return err
			}
			return tw.WriteHeader(&tar.Header{Name: "link/escaped", Typeflag: tar.TypeReg, Mode: 0o644})
		}},
		{"hard link outside", func(tw *tar.Writer) error {
			return tw.WriteHeader(&tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			if err := tt.entries(tw); err != nil {
				t.Fatal(err)
			}
			tw.Close()
			parent := t.TempDir()
			if err := Untar(&buf, filepath.Join(parent, "in")); err == nil {
				t.Fatal("Untar accepted an archive that leaves its folder")
			}
			if _, err := os.Stat(filepath.Join(parent, "escaped")); err == nil {
				t.Fatal("a file was written outside the folder")
			}
		})
	}
}

func TestWriteTarRoundTrip(t *testing.T) {
	src := t.TempDir()
	for name, content := range map[string]string{"a/b.txt": "b", "a/c/d.txt": "d", "top.txt": "t"} {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("b.txt", filepath.Join(src, "a", "link")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	rel := func(p string) (string, error) { return filepath.Rel(src, p) }
	if err := WriteTar(&buf, []string{filepath.Join(src, "a"), filepath.Join(src, "a", "c"), filepath.Join(src, "top.txt")}, rel); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := Untar(&buf, dst); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a/b.txt": "b", "a/c/d.txt": "d", "top.txt": "t"}
	if d := cmp.Diff(want, readTree(t, dst)); d != "" {
		t.Fatalf("round trip (-want +got):\n%s", d)
	}
	if l, err := os.Readlink(filepath.Join(dst, "a", "link")); err != nil || l != "b.txt" {
		t.Fatalf("symlink = %q, %v; want b.txt", l, err)
	}
	if err := WriteTar(io.Discard, []string{filepath.Join(src, "missing")}, rel); err == nil {
		t.Fatal("WriteTar of a missing path succeeded")
	}
}

func TestEnvAndWhen(t *testing.T) {
	job := &engine.JobRun{
		Env: map[string]string{"A": "engine", "B": "engine", "C": "engine", "D": "engine", "CIRCLE_SHA1": "abc"},
		Spec: &workflows.JobSpec{
			Docker:      []workflows.DockerImage{{Image: "x", Environment: map[string]string{"B": "image", "C": "image", "D": "image"}}},
			Environment: map[string]string{"B": "job", "C": "job"},
		},
	}
	got := StepEnv(map[string]string{"HOME": "/h", "A": "base"}, job, map[string]string{"C": "step"})
	want := map[string]string{"HOME": "/h", "A": "engine", "B": "job", "C": "step", "D": "image", "CIRCLE_SHA1": "abc"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("StepEnv (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"A=1", "B=2"}, EnvList(map[string]string{"B": "2", "A": "1"})); d != "" {
		t.Fatalf("EnvList not sorted:\n%s", d)
	}

	whens := []struct {
		name   string
		step   workflows.Step
		failed bool
		want   bool
	}{
		{"run default after success", workflows.Step{Run: &workflows.RunStep{}}, false, true},
		{"run default after failure", workflows.Step{Run: &workflows.RunStep{}}, true, false},
		{"on_fail after success", workflows.Step{Run: &workflows.RunStep{When: workflows.WhenOnFail}}, false, false},
		{"on_fail after failure", workflows.Step{Run: &workflows.RunStep{When: workflows.WhenOnFail}}, true, true},
		{"always after failure", workflows.Step{Run: &workflows.RunStep{When: workflows.WhenAlways}}, true, true},
		{"artifacts after failure", workflows.Step{StoreArtifacts: &workflows.StoreArtifactsStep{}}, true, true},
		{"checkout after failure", workflows.Step{Checkout: &workflows.CheckoutStep{}}, true, false},
		{"save_cache on_fail", workflows.Step{SaveCache: &workflows.SaveCacheStep{When: workflows.WhenOnFail}}, true, true},
		{"checkout always", workflows.Step{Checkout: &workflows.CheckoutStep{When: workflows.WhenAlways}}, true, true},
		{"restore_cache on_fail after success", workflows.Step{RestoreCache: &workflows.RestoreCacheStep{When: workflows.WhenOnFail}}, false, false},
		{"persist_to_workspace always", workflows.Step{PersistToWorkspace: &workflows.PersistStep{When: workflows.WhenAlways}}, true, true},
		{"attach_workspace on_fail", workflows.Step{AttachWorkspace: &workflows.AttachStep{When: workflows.WhenOnFail}}, true, true},
		{"setup_remote_docker on_fail after success", workflows.Step{SetupRemoteDocker: &workflows.SetupRemoteDockerStep{When: workflows.WhenOnFail}}, false, false},
		{"add_ssh_keys always", workflows.Step{AddSSHKeys: &workflows.AddSSHKeysStep{When: workflows.WhenAlways}}, true, true},
	}
	for _, tt := range whens {
		t.Run(tt.name, func(t *testing.T) {
			if got := ShouldRun(StepWhen(tt.step), tt.failed); got != tt.want {
				t.Fatalf("ShouldRun(%q, %v) = %v, want %v", StepWhen(tt.step), tt.failed, got, tt.want)
			}
		})
	}
	if DefaultShell(true) != "/bin/bash -eo pipefail" || DefaultShell(false) != "/bin/sh -eo pipefail" {
		t.Fatal("DefaultShell is not CircleCI's")
	}
	if d := cmp.Diff([]string{"/bin/bash", "-eo", "pipefail", "/s"}, ShellArgv("/bin/bash -eo pipefail", "/s")); d != "" {
		t.Fatalf("ShellArgv:\n%s", d)
	}
}

// keyData is what the differential test renders keys with.
func keyData() KeyData {
	return KeyData{
		Branch: "main", Revision: "3f2a9c1", BuildNum: "42",
		Environment: map[string]string{"NODE": "22", "CIRCLE_JOB": "build"},
		Checksum:    func(f string) (string, error) { return "sum(" + f + ")", nil },
		Now:         func() time.Time { return time.Unix(1700000000, 0) },
		Arch:        "arch1-linux-amd64-6_85",
	}
}

// goTemplate renders a key the way CircleCI does, with Go's text/template.
func goTemplate(tmpl string, d KeyData) (string, error) {
	t, err := template.New("key").Funcs(template.FuncMap{
		"checksum": d.Checksum,
		"epoch":    func() string { return strconv.FormatInt(d.Now().Unix(), 10) },
		"arch":     func() string { return d.Arch },
	}).Parse(tmpl)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

// Every key of the CircleCI corpus renders as text/template renders it.
func TestRenderKeyOfTheCorpusIsGoTemplates(t *testing.T) {
	files, _ := filepath.Glob("../../shared/corpus/circleci/configs/*")
	if len(files) == 0 {
		t.Skip("no corpus beside the project")
	}
	// A key is the value of a line such as `key: v1-{{ .Branch }}` or
	// `- v1-{{ .Branch }}`, quoted or not.
	line := regexp.MustCompile(`(?m)^\s*(?:- )?\s*(?:key: )?\s*(['"]?)(\S*\{\{.*\}\}\S*)['"]?\s*$`)
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range line.FindAllStringSubmatch(string(data), -1) {
			key := m[2]
			if m[1] == `"` {
				key = strings.ReplaceAll(key, `\"`, `"`)
			}
			if strings.Contains(key, "<<") {
				continue // a parameter, expanded before the key is rendered
			}
			n++
			want, werr := goTemplate(key, keyData())
			got, err := RenderKey(key, keyData())
			if err != nil || werr != nil || got != want {
				t.Errorf("%s: RenderKey(%q) = %q, %v; text/template: %q, %v", filepath.Base(f), key, got, err, want, werr)
			}
		}
	}
	if n < 40 {
		t.Fatalf("found %d keys in the corpus, want at least 40", n)
	}
}

// A key RenderKey accepts renders as text/template renders it.
func FuzzRenderKeyIsGoTemplates(f *testing.F) {
	for _, s := range []string{
		"v1-{{ .Branch }}-{{ .Revision }}", `deps-{{ checksum "package-lock.json" }}`, "{{- .BuildNum -}}",
		"{{ epoch }}{{ arch }}", "{{ .Environment.NODE }}{{ .Environment.NOPE }}", "{{`x`}}", "{{ checksum `a\"b` }}",
		"a {{- .Branch}}", "{{.Branch -}} b", "{{-3}}", "{{ checksum \"a\\x41\" }}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tmpl string) {
		got, err := RenderKey(tmpl, keyData())
		if err != nil {
			return // refused: CircleCI keys are a small part of Go templates
		}
		want, werr := goTemplate(tmpl, keyData())
		if werr != nil || got != want {
			t.Fatalf("RenderKey(%q) = %q; text/template: %q, %v", tmpl, got, want, werr)
		}
	})
}
