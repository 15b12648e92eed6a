package executors

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// WriteTar writes the files at paths (host paths; folders are walked) to
// w as a tar stream. name maps each host path to its entry name; it lets
// callers choose what an archive is relative to (a workspace root, the
// job folder). Symbolic links are stored as links, not followed, so an
// archive never pulls in files from outside what was asked for. A path
// that does not exist is an error: CircleCI fails a persist or cache step
// whose path is missing, and so do we.
func WriteTar(w io.Writer, paths []string, name func(hostPath string) (string, error)) error {
	tw := tar.NewWriter(w)
	seen := map[string]bool{}
	for _, p := range paths {
		err := filepath.WalkDir(p, func(hp string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			n, err := name(hp)
			if err != nil {
				return err
			}
			n = path.Clean(filepath.ToSlash(n))
			if seen[n] {
				return nil // overlapping paths ("a" and "a/b"): one entry each
			}
			seen[n] = true
			return writeEntry(tw, hp, n, d)
		})
		if err != nil {
			return fmt.Errorf("tar %s: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("tar: %w", err)
	}
	return nil
}

func writeEntry(tw *tar.Writer, hostPath, name string, d fs.DirEntry) error {
	info, err := d.Info()
	if err != nil {
		return err
	}
	var link string
	if info.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(hostPath); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return err
	}
	hdr.Name = name
	if info.IsDir() {
		hdr.Name += "/"
	}
	// Owner names depend on the host's user database; numeric IDs are
	// enough to restore and keep archives identical across hosts.
	hdr.Uname, hdr.Gname = "", ""
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(hostPath)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(tw, f); err != nil {
		return err
	}
	return nil
}

// Untar unpacks a tar stream (optionally gzip-compressed) into dir,
// creating dir if needed. Existing files are replaced.
func Untar(r io.Reader, dir string) error {
	return UntarFunc(r, func(name string) (string, string, error) { return dir, name, nil })
}

// UntarFunc unpacks a tar stream (optionally gzip-compressed), asking
// route where each entry goes: the folder it lands in and its name
// relative to that folder. An empty rel skips the entry (a GitHub
// tarball's top folder, for example).
//
// Every entry is written through an os.Root on its folder: an archive
// from a cache, a workspace or a container is data from a job, and a
// crafted one ("../../etc/passwd", or a symlink followed by a file
// written through it) must not write outside the folder it is unpacked
// into.
func UntarFunc(r io.Reader, route func(name string) (dir, rel string, err error)) error {
	r, err := maybeGunzip(r)
	if err != nil {
		return fmt.Errorf("untar: %w", err)
	}
	roots := map[string]*os.Root{}
	defer func() {
		for _, root := range roots {
			root.Close()
		}
	}()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("untar: %w", err)
		}
		dir, rel, err := route(hdr.Name)
		if err != nil {
			return fmt.Errorf("untar %s: %w", hdr.Name, err)
		}
		rel = path.Clean(strings.TrimPrefix(rel, "/"))
		if rel == "" || rel == "." {
			continue
		}
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("untar %s: entry leaves its folder", hdr.Name)
		}
		root := roots[dir]
		if root == nil {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("untar: %w", err)
			}
			if root, err = os.OpenRoot(dir); err != nil {
				return fmt.Errorf("untar: %w", err)
			}
			roots[dir] = root
		}
		if hdr.Typeflag == tar.TypeLink {
			// A hard link names another entry of the same archive,
			// so it goes through the same route.
			ldir, lrel, err := route(hdr.Linkname)
			if err != nil {
				return fmt.Errorf("untar %s: %w", hdr.Name, err)
			}
			if ldir != dir {
				return fmt.Errorf("untar %s: hard link across folders", hdr.Name)
			}
			hdr.Linkname = lrel
		}
		if err := extractEntry(root, rel, hdr, tr); err != nil {
			return fmt.Errorf("untar %s: %w", hdr.Name, err)
		}
	}
}

func extractEntry(root *os.Root, rel string, hdr *tar.Header, r io.Reader) error {
	mode := hdr.FileInfo().Mode().Perm()
	if parent := path.Dir(rel); parent != "." {
		if err := root.MkdirAll(parent, 0o755); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := root.MkdirAll(rel, 0o755); err != nil {
			return err
		}
		return root.Chmod(rel, mode|0o700)
	case tar.TypeReg:
		if err := removeNonDir(root, rel); err != nil {
			return err
		}
		f, err := root.OpenFile(rel, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		return root.Chtimes(rel, hdr.ModTime, hdr.ModTime)
	case tar.TypeSymlink:
		if err := removeNonDir(root, rel); err != nil {
			return err
		}
		return root.Symlink(hdr.Linkname, rel)
	case tar.TypeLink:
		if err := removeNonDir(root, rel); err != nil {
			return err
		}
		target := path.Clean(strings.TrimPrefix(hdr.Linkname, "/"))
		if !filepath.IsLocal(target) {
			return fmt.Errorf("hard link to %s leaves its folder", hdr.Linkname)
		}
		return root.Link(target, rel)
	default:
		// Devices, FIFOs and the like have no place in caches or
		// workspaces; skipping them is what CircleCI's agent does too.
		return nil
	}
}

// removeNonDir clears the way for a new file: an old file or link at the
// same name is replaced, as tar does, but a folder is kept so that its
// contents from earlier layers survive.
func removeNonDir(root *os.Root, rel string) error {
	fi, err := root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("a folder is in the way")
	}
	return root.Remove(rel)
}

// maybeGunzip lets callers hand over a GitHub source tarball (.tar.gz)
// or a plain tar stream alike.
func maybeGunzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		return gzip.NewReader(br)
	}
	return br, nil
}
