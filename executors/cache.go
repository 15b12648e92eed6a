package executors

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrTooLarge is returned when an archive would exceed a size limit.
var ErrTooLarge = errors.New("size limit exceeded")

// ErrNoCache is returned by Cache.Restore when no key matches.
var ErrNoCache = errors.New("no cache found")

// DefaultCacheMaxBytes is the largest cache archive kept when
// Cache.MaxBytes is zero.
const DefaultCacheMaxBytes = 2 << 30

// Cache is a save_cache store on a folder shared by a project's jobs.
//
// Keys are immutable, as on CircleCI: saving a key that exists keeps the
// first archive. Each key is stored as <sha256 of key>.tar beside a
// <sha256>.json naming the key and when it was saved, so that any string
// is a valid key and prefix matching can still read the keys back.
type Cache struct {
	Dir      string
	MaxBytes int64            // per archive; DefaultCacheMaxBytes when zero
	Now      func() time.Time // when an archive was saved; time.Now when nil
}

type cacheMeta struct {
	Key   string    `json:"key"`
	Saved time.Time `json:"saved"`
	Size  int64     `json:"size"`
}

// Save stores the tar stream r under key. It returns false, reading
// nothing, when key already exists. A stream over the size limit is
// refused with ErrTooLarge and leaves nothing behind. Concurrent saves of
// one key are safe: one wins, the others report false.
func (c *Cache) Save(key string, r io.Reader) (saved bool, err error) {
	if key == "" {
		return false, errors.New("cache save: empty key")
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return false, fmt.Errorf("cache save: %w", err)
	}
	base := filepath.Join(c.Dir, keyFile(key))
	if _, err := os.Stat(base + ".tar"); err == nil {
		return false, nil
	}
	tmp, err := os.CreateTemp(c.Dir, ".saving-*")
	if err != nil {
		return false, fmt.Errorf("cache save: %w", err)
	}
	defer os.Remove(tmp.Name())
	n, err := copyLimited(tmp, r, limit(c.MaxBytes, DefaultCacheMaxBytes))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("cache save %q: %w", key, err)
	}
	// Linking, which refuses to replace a file, decides a race between
	// savers of one key; only the winner writes the metadata that prefix
	// lookups read. Exact lookups need only the archive, which appears
	// whole or not at all.
	if err := os.Link(tmp.Name(), base+".tar"); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("cache save: %w", err)
	}
	meta, err := json.Marshal(cacheMeta{Key: key, Saved: now(c.Now), Size: n})
	if err != nil {
		return false, fmt.Errorf("cache save: %w", err)
	}
	if err := writeFileAtomic(base+".json", meta); err != nil {
		return false, fmt.Errorf("cache save: %w", err)
	}
	return true, nil
}

// Restore opens the archive of the first of keys that matches, with
// CircleCI's rules: each key is tried exactly, then as a prefix of the
// stored keys, the most recently saved match winning; the next key is
// tried only when one matches neither way. It returns the key found, or
// ErrNoCache.
func (c *Cache) Restore(keys []string) (key string, archive io.ReadCloser, err error) {
	var stored []cacheMeta // read once, only if a prefix lookup needs it
	for _, want := range keys {
		if want == "" {
			continue
		}
		if f, err := os.Open(filepath.Join(c.Dir, keyFile(want)+".tar")); err == nil {
			return want, f, nil
		}
		if stored == nil {
			if stored, err = c.list(); err != nil {
				return "", nil, fmt.Errorf("cache restore: %w", err)
			}
		}
		var best *cacheMeta
		for i, m := range stored {
			if !strings.HasPrefix(m.Key, want) {
				continue
			}
			if best == nil || m.Saved.After(best.Saved) || (m.Saved.Equal(best.Saved) && m.Key > best.Key) {
				best = &stored[i]
			}
		}
		if best != nil {
			f, err := os.Open(filepath.Join(c.Dir, keyFile(best.Key)+".tar"))
			if err != nil {
				return "", nil, fmt.Errorf("cache restore %q: %w", best.Key, err)
			}
			return best.Key, f, nil
		}
	}
	return "", nil, ErrNoCache
}

// list reads the metadata of every complete archive.
func (c *Cache) list() ([]cacheMeta, error) {
	tars, err := filepath.Glob(filepath.Join(c.Dir, "*.tar"))
	if err != nil {
		return nil, err
	}
	out := make([]cacheMeta, 0, len(tars))
	for _, t := range tars {
		data, err := os.ReadFile(strings.TrimSuffix(t, ".tar") + ".json")
		if err != nil {
			continue // an archive without metadata is not ours
		}
		var m cacheMeta
		if err := json.Unmarshal(data, &m); err != nil {
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

func keyFile(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func limit(n, def int64) int64 {
	if n > 0 {
		return n
	}
	return def
}

func now(clock func() time.Time) time.Time {
	if clock != nil {
		return clock()
	}
	return time.Now()
}

// copyLimited copies r to w, failing with ErrTooLarge once more than max
// bytes came: the stream is read one byte past the limit to tell "exactly
// max" from "more".
func copyLimited(w io.Writer, r io.Reader, max int64) (int64, error) {
	n, err := io.Copy(w, io.LimitReader(r, max+1))
	if err != nil {
		return n, err
	}
	if n > max {
		return n, fmt.Errorf("more than %d bytes: %w", max, ErrTooLarge)
	}
	return n, nil
}

// writeFileAtomic writes a small file through a temporary name, so that
// readers see the old contents or the new ones, never a part.
func writeFileAtomic(name string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// SaveStep carries out a save_cache step for either executor, once it has
// rendered the key and found which of the step's paths exist: produce
// writes those paths as a tar stream. An existing key is kept, as
// CircleCI's caches are immutable; the log says which happened.
func (c *Cache) SaveStep(key string, paths []string, produce func(w io.Writer) error, log io.Writer) error {
	if len(paths) == 0 {
		fmt.Fprintf(log, "No files to save for key %s\n", key)
		return nil
	}
	var saved bool
	err := Pipe(produce, func(r io.Reader) (err error) {
		saved, err = c.Save(key, r)
		return err
	})
	if err != nil {
		return err
	}
	if !saved {
		fmt.Fprintf(log, "Skipping cache generation, cache already exists for key: %s\n", key)
		return nil
	}
	fmt.Fprintf(log, "Stored cache %s\n", key)
	return nil
}

// RestoreStep carries out a restore_cache step's lookup for either
// executor: it renders the key templates, and on a miss (the first build
// of a branch: normal, not a failure) says so in the log and returns a nil
// archive.
func (c *Cache) RestoreStep(templates []string, d KeyData, log io.Writer) (key string, archive io.ReadCloser, err error) {
	keys := make([]string, 0, len(templates))
	for _, t := range templates {
		k, err := RenderKey(t, d)
		if err != nil {
			return "", nil, err
		}
		keys = append(keys, k)
	}
	key, archive, err = c.Restore(keys)
	if errors.Is(err, ErrNoCache) {
		fmt.Fprintf(log, "No cache is found for keys: %s\n", strings.Join(keys, ", "))
		return "", nil, nil
	}
	return key, archive, err
}
