package executors

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DefaultWorkspaceMaxBytes bounds a workflow's workspace when
// Workspace.MaxBytes is zero.
const DefaultWorkspaceMaxBytes = 5 << 30

// Workspace is a workflow's workspace folder, shared by its jobs.
//
// As on CircleCI, persist_to_workspace adds a layer and attach_workspace
// replays every layer in the order they were added, later files
// replacing earlier ones. A layer is a tar stream whose names are
// relative to the persist step's root; it is stored as
// <unix nanoseconds>-<layer ID>.tar so that names sort in the order of
// persisting.
type Workspace struct {
	Dir      string
	MaxBytes int64            // all layers together; DefaultWorkspaceMaxBytes when zero
	Now      func() time.Time // orders layers; time.Now when nil
}

// Persist adds the tar stream r as a layer. id names the layer's origin
// (an attempt ID, as CheckAttemptID accepts). A layer that would
// take the workspace past its limit is refused with ErrTooLarge and
// leaves nothing behind.
func (w *Workspace) Persist(id string, r io.Reader) error {
	if err := CheckAttemptID(id); err != nil {
		return fmt.Errorf("workspace persist: %w", err)
	}
	if err := os.MkdirAll(w.Dir, 0o755); err != nil {
		return fmt.Errorf("workspace persist: %w", err)
	}
	used, err := dirSize(w.Dir)
	if err != nil {
		return fmt.Errorf("workspace persist: %w", err)
	}
	tmp, err := os.CreateTemp(w.Dir, ".persisting-*")
	if err != nil {
		return fmt.Errorf("workspace persist: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = copyLimited(tmp, r, max(limit(w.MaxBytes, DefaultWorkspaceMaxBytes)-used, 0))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("workspace persist: %w", err)
	}
	name := fmt.Sprintf("%020d-%s.tar", now(w.Now).UnixNano(), id)
	if err := os.Rename(tmp.Name(), filepath.Join(w.Dir, name)); err != nil {
		return fmt.Errorf("workspace persist: %w", err)
	}
	return nil
}

// Attach calls apply with each layer in order. A workspace that nobody
// persisted to is an error, as on CircleCI, where attaching an empty
// workspace fails the step rather than silently giving the job nothing.
func (w *Workspace) Attach(apply func(layer io.Reader) error) error {
	layers, err := w.layers()
	if err != nil {
		return fmt.Errorf("workspace attach: %w", err)
	}
	if len(layers) == 0 {
		return errors.New("workspace attach: no upstream job persisted to the workspace")
	}
	for _, l := range layers {
		if err := applyFile(l, apply); err != nil {
			return fmt.Errorf("workspace attach %s: %w", filepath.Base(l), err)
		}
	}
	return nil
}

func applyFile(name string, apply func(io.Reader) error) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return apply(f)
}

func (w *Workspace) layers() ([]string, error) {
	entries, err := os.ReadDir(w.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".tar") && !strings.HasPrefix(n, ".") {
			out = append(out, filepath.Join(w.Dir, n))
		}
	}
	slices.Sort(out)
	return out, nil
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return nil // removed while walking
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}
