package web

import (
	"encoding/xml"
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// An attempt's artifacts and test results are the files the executor
// stored under DataDir/output/<attempt ID>/ (executors.Outputs):
// artifacts/<destination>/... and test-results/<destination>/...
// They are read through an os.Root, so that no name (.., a symlink a job
// stored) reaches outside that folder.

// artifactRow is a stored file.
type artifactRow struct {
	Path string // relative to artifacts/ or test-results/
	Kind string // "artifact", "test result"
	Href string
	Size string
}

// maxListed bounds the files a job's page lists.
const maxListed = 500

func listArtifacts(fsys fs.FS, hrefBase string) []artifactRow {
	var out []artifactRow
	for _, top := range []string{"artifacts", "test-results"} {
		kind := "artifact"
		if top == "test-results" {
			kind = "test result"
		}
		fs.WalkDir(fsys, top, func(p string, d fs.DirEntry, err error) error {
			if err != nil || len(out) >= maxListed {
				return fs.SkipDir
			}
			if d.IsDir() || !d.Type().IsRegular() {
				return nil
			}
			size := ""
			if info, err := d.Info(); err == nil {
				size = byteSize(info.Size())
			}
			out = append(out, artifactRow{Path: strings.TrimPrefix(p, top+"/"), Kind: kind, Href: hrefBase + escapePath(p), Size: size})
			return nil
		})
	}
	return out
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return itoa(int(n)) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	s := strings.TrimSuffix(strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64), ".0")
	return s + " " + string("KMGTPE"[exp]) + "iB"
}

// testReport sums up the JUnit XML files of test-results/.
type testReport struct {
	Tests, Failures, Skipped int
	Failed                   []failedTest
	More                     int // failures not listed
	Unreadable               []string
}

type failedTest struct {
	Name, Class, Message, File string
}

const (
	maxReportFiles  = 200
	maxReportSize   = 32 << 20
	maxFailedListed = 50
)

// readTestResults reads the JUnit reports under test-results/; nil when
// there are none.
func readTestResults(fsys fs.FS) *testReport {
	var rep testReport
	files := 0
	fs.WalkDir(fsys, "test-results", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fs.SkipDir
		}
		if d.IsDir() || !strings.EqualFold(path.Ext(p), ".xml") || !d.Type().IsRegular() || files >= maxReportFiles {
			return nil
		}
		files++
		f, err := fsys.Open(p)
		if err != nil {
			rep.Unreadable = append(rep.Unreadable, p)
			return nil
		}
		defer f.Close()
		if err := rep.read(io.LimitReader(f, maxReportSize), strings.TrimPrefix(p, "test-results/")); err != nil {
			rep.Unreadable = append(rep.Unreadable, strings.TrimPrefix(p, "test-results/"))
		}
		return nil
	})
	if files == 0 {
		return nil
	}
	return &rep
}

// read counts the <testcase>s of one report, token by token, so that a
// large report is never held whole.
func (rep *testReport) read(r io.Reader, file string) error {
	dec := xml.NewDecoder(r)
	dec.Strict = false
	var cur *failedTest
	inFailure := false
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "testcase":
				rep.Tests++
				cur = &failedTest{File: file}
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "name":
						cur.Name = a.Value
					case "classname":
						cur.Class = a.Value
					}
				}
			case "failure", "error":
				if cur == nil {
					continue
				}
				rep.Failures++
				for _, a := range t.Attr {
					if a.Name.Local == "message" {
						cur.Message = a.Value
					}
				}
				inFailure = true
				text.Reset()
				if len(rep.Failed) < maxFailedListed {
					rep.Failed = append(rep.Failed, *cur)
				} else {
					rep.More++
				}
			case "skipped":
				if cur != nil {
					rep.Skipped++
				}
			}
		case xml.CharData:
			if inFailure && text.Len() < 600 {
				text.Write(t[:min(len(t), 600)])
			}
		case xml.EndElement:
			switch t.Name.Local {
			case "failure", "error":
				if inFailure && len(rep.Failed) > 0 && rep.Failed[len(rep.Failed)-1].Message == "" {
					rep.Failed[len(rep.Failed)-1].Message = strings.TrimSpace(text.String())
				}
				inFailure = false
			case "testcase":
				cur = nil
			}
		}
	}
}

// Types served inline; anything else is a download. Even inline, an
// artifact is sandboxed: a job's HTML must not run as the dashboard.
var inlineTypes = map[string]string{
	".txt": "text/plain; charset=utf-8", ".log": "text/plain; charset=utf-8", ".json": "text/plain; charset=utf-8",
	".xml": "text/plain; charset=utf-8", ".yml": "text/plain; charset=utf-8", ".yaml": "text/plain; charset=utf-8",
	".md": "text/plain; charset=utf-8", ".csv": "text/plain; charset=utf-8",
	".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp",
}

func (h *Handler) artifact(w http.ResponseWriter, r *http.Request, v *viewer) {
	ctx := r.Context()
	_, j, err := h.job(ctx, r)
	if err != nil {
		h.notFound(w, r, err, "such job")
		return
	}
	a, err := h.store.Attempt(ctx, r.PathValue("attempt"))
	if err != nil || a.JobID != j.ID {
		h.fail(w, r, http.StatusNotFound, "There is no such attempt of this job.")
		return
	}
	p := r.PathValue("path")
	if !strings.HasPrefix(p, "artifacts/") && !strings.HasPrefix(p, "test-results/") || !fs.ValidPath(p) {
		h.fail(w, r, http.StatusNotFound, "There is no such file.")
		return
	}
	root := h.outputRoot(a.ID)
	if root == nil {
		h.fail(w, r, http.StatusNotFound, "This attempt stored no files.")
		return
	}
	defer root.Close()
	f, err := root.Open(p)
	if err != nil {
		h.fail(w, r, http.StatusNotFound, "There is no such file.")
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		h.fail(w, r, http.StatusNotFound, "There is no such file.")
		return
	}
	hd := w.Header()
	hd.Set("Content-Security-Policy", "sandbox; default-src 'none'; img-src 'self'")
	ext := strings.ToLower(path.Ext(p))
	if ct, ok := inlineTypes[ext]; ok {
		hd.Set("Content-Type", ct)
	} else {
		hd.Set("Content-Type", "application/octet-stream")
		hd.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(p)}))
	}
	http.ServeContent(w, r, "", info.ModTime(), f)
}
