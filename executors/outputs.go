package executors

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
)

// DefaultOutputMaxBytes bounds an attempt's artifacts and test results
// together when Outputs.MaxBytes is zero.
const DefaultOutputMaxBytes = 1 << 30

// Outputs keeps an attempt's artifacts and test results under its
// JobRun.OutputDir:
//
//	<OutputDir>/artifacts/<destination>/...
//	<OutputDir>/test-results/<destination>/...
//
// OutputDir is per attempt, so a rerun never mixes its reports with an
// earlier attempt's.
type Outputs struct {
	Dir      string // JobRun.OutputDir
	MaxBytes int64  // artifacts and test results together; DefaultOutputMaxBytes when zero
}

// StoreArtifacts unpacks the tar stream r under artifacts/<destination>.
// Entry names are relative to the stored path.
func (o *Outputs) StoreArtifacts(r io.Reader, destination string) error {
	return o.store("artifacts", r, destination)
}

// StoreTestResults unpacks the tar stream r under
// test-results/<destination>; an empty destination puts the reports at
// the top, merged with those of earlier store_test_results steps.
func (o *Outputs) StoreTestResults(r io.Reader, destination string) error {
	return o.store("test-results", r, destination)
}

// ArtifactsDir and TestResultsDir are where the stored files end up.
func (o *Outputs) ArtifactsDir() string   { return filepath.Join(o.Dir, "artifacts") }
func (o *Outputs) TestResultsDir() string { return filepath.Join(o.Dir, "test-results") }

func (o *Outputs) store(kind string, r io.Reader, destination string) error {
	dest := path.Clean("/" + filepath.ToSlash(destination))[1:]
	if dest != "" && !filepath.IsLocal(dest) {
		return fmt.Errorf("store %s: bad destination %q", kind, destination)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return fmt.Errorf("store %s: %w", kind, err)
	}
	used, err := dirSize(o.Dir)
	if err != nil {
		return fmt.Errorf("store %s: %w", kind, err)
	}
	budget := max(limit(o.MaxBytes, DefaultOutputMaxBytes)-used, 0)
	// The stream is spooled before anything is unpacked, so that one
	// over the limit leaves no partial files behind to count against the
	// attempt's later steps.
	spool, err := os.CreateTemp(o.Dir, ".storing-*")
	if err != nil {
		return fmt.Errorf("store %s: %w", kind, err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	if _, err := copyLimited(spool, r, budget); err != nil {
		return fmt.Errorf("store %s: %w", kind, err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("store %s: %w", kind, err)
	}
	if err := Untar(spool, filepath.Join(o.Dir, kind, filepath.FromSlash(dest))); err != nil {
		return fmt.Errorf("store %s: %w", kind, err)
	}
	return nil
}
