package aws

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/workflows/engine"
)

// The job's files come as a tar whose entries are named relative to the
// parent of the path asked for ("app/Dockerfile" for the working
// directory ~/app), whichever executor streams them. Build contexts and
// archives want them relative to the path itself.

// folderTar streams the job's folder dir as a tar of its contents, named
// relative to dir, without the entries skip says (nil skips none).
// Closing it stops the stream.
func folderTar(ctx context.Context, files engine.Files, dir string, skip func(name string) bool) (io.ReadCloser, error) {
	if files == nil {
		return nil, errors.New("the job's files cannot be read here")
	}
	src, err := files.Tar(ctx, dir)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		// Ends when src does or when the reader is closed: Close closes
		// both.
		defer close(done)
		pw.CloseWithError(reroot(pw, src, dir, skip))
	}()
	return &pipeReader{PipeReader: pr, src: src, done: done}, nil
}

type pipeReader struct {
	*io.PipeReader
	src  io.Closer
	done chan struct{}
}

func (p *pipeReader) Close() error {
	p.PipeReader.Close()
	p.src.Close()
	<-p.done
	return nil
}

// reroot copies the tar src to w with its entries renamed relative to its
// first entry, the folder dir, leaving out those skip says.
func reroot(w io.Writer, src io.Reader, dir string, skip func(name string) bool) error {
	tr := tar.NewReader(src)
	tw := tar.NewWriter(w)
	root := ""
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", dir, err)
		}
		name := strings.TrimPrefix(path.Clean(hdr.Name), "./")
		if root == "" {
			if hdr.Typeflag != tar.TypeDir {
				return fmt.Errorf("%s is not a folder", dir)
			}
			root = name
			continue
		}
		rel, ok := strings.CutPrefix(name, root+"/")
		if !ok {
			return fmt.Errorf("read %s: entry %q outside it", dir, hdr.Name)
		}
		if skip != nil && skip(rel) {
			continue
		}
		hdr.Name = rel
		if hdr.Typeflag == tar.TypeDir {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	if root == "" {
		return fmt.Errorf("%s is empty", dir)
	}
	return tw.Close()
}

// readJobFile reads the job's regular file p, of at most limit bytes.
func readJobFile(ctx context.Context, files engine.Files, p string, limit int64) ([]byte, error) {
	if files == nil {
		return nil, errors.New("the job's files cannot be read here")
	}
	rc, err := files.Tar(ctx, p)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil, fmt.Errorf("%s is not a file", p)
	}
	if hdr.Size > limit {
		return nil, fmt.Errorf("%s is %s, over the %s this step takes", p, size(hdr.Size), size(limit))
	}
	return io.ReadAll(tr)
}

// archive is a zip archive of the job's path p: the file itself when it
// is one (a .zip made by an earlier step), else the folder's contents.
func archive(ctx context.Context, files engine.Files, p string, limit int64) ([]byte, error) {
	if files == nil {
		return nil, errors.New("the job's files cannot be read here")
	}
	rc, err := files.Tar(ctx, p)
	if err != nil {
		return nil, err
	}
	first, err := tar.NewReader(rc).Next()
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if first.Typeflag == tar.TypeReg {
		data, err := readJobFile(ctx, files, p, limit)
		if err != nil {
			return nil, err
		}
		if _, err := zip.NewReader(bytes.NewReader(data), int64(len(data))); err != nil {
			return nil, fmt.Errorf("%s is not a zip archive: %w", p, err)
		}
		return data, nil
	}
	folder, err := folderTar(ctx, files, p, nil)
	if err != nil {
		return nil, err
	}
	defer folder.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&limitedWriter{w: &buf, left: limit, what: p})
	tr := tar.NewReader(folder)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("zip %s: %w", p, err)
		}
		fh := &zip.FileHeader{Name: hdr.Name, Method: zip.Deflate, Modified: hdr.ModTime}
		switch hdr.Typeflag {
		case tar.TypeDir:
			fh.SetMode(fs.ModeDir | fs.FileMode(hdr.Mode).Perm())
			fh.Method = zip.Store
		case tar.TypeSymlink:
			fh.SetMode(fs.ModeSymlink | 0o777)
		case tar.TypeReg:
			fh.SetMode(fs.FileMode(hdr.Mode).Perm())
		default:
			continue // devices and fifos have no place in a bundle
		}
		w, err := zw.CreateHeader(fh)
		if err != nil {
			return nil, fmt.Errorf("zip %s: %w", p, err)
		}
		if hdr.Typeflag == tar.TypeSymlink {
			_, err = io.WriteString(w, hdr.Linkname)
		} else if hdr.Typeflag == tar.TypeReg {
			_, err = io.Copy(w, tr)
		}
		if err != nil {
			return nil, fmt.Errorf("zip %s: %w", p, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("zip %s: %w", p, err)
	}
	return buf.Bytes(), nil
}

// zipOf is a zip archive of files by name, with a fixed date, so that the
// same files make the same bytes.
func zipOf(files map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		fh := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}
		fh.SetMode(0o644)
		w, err := zw.CreateHeader(fh)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(files[name]); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// limitedWriter refuses to grow past its limit.
type limitedWriter struct {
	w    io.Writer
	left int64
	what string
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, fmt.Errorf("the archive of %s grows over its limit", l.what)
	}
	l.left -= int64(len(p))
	return l.w.Write(p)
}

// size is n bytes for people.
func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
