package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"

	"github.com/jmoiron/sqlx"
)

// A new store is made by copying a template of the current schema, when
// this user has one, rather than by running the migrations: their DDL
// was most of what a `slipway run` of one job cost (6 of about 15 ms).
// The template is made from the first store created with this schema
// (VACUUM INTO), named by a hash of the migrations, in the user's cache
// folder, and used only if it is a regular file of this user's that no
// one else can write: a template planted by someone else would be a store
// with their contents.

// templatePath is where this user's template of the current schema is;
// "" when the user has no cache folder.
func templatePath() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "slipway", "store-"+schemaHash()+".db")
}

// schemaHash names the current schema: a hash of every migration, and of
// the template's form (in WAL mode, so that a copy opens without being
// converted, which cost 4 fsyncs).
var schemaHash = sync.OnceValue(func() string {
	names, _ := fs.Glob(migrations, "migrations/*.sql")
	sort.Strings(names)
	h := sha256.New()
	io.WriteString(h, "template in WAL mode\n")
	for _, n := range names {
		body, _ := migrations.ReadFile(n)
		io.WriteString(h, n)
		h.Write(body)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
})

// fromTemplate makes a new store at path from the template; false when
// there is none to use (or path exists, unless overwrite: then the
// template is copied over what path holds).
func fromTemplate(path string, overwrite bool) bool {
	tpl := templatePath()
	if tpl == "" {
		return false
	}
	fi, err := os.Lstat(tpl)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o022 != 0 {
		return false
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() {
		return false
	}
	src, err := os.Open(tpl)
	if err != nil {
		return false
	}
	defer src.Close()
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if overwrite {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC | syscall.O_NOFOLLOW
	}
	dst, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return false
	}
	_, err = io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return false
	}
	return true
}

// saveTemplate keeps a copy of a store just made as this user's template
// of its schema, if there is none yet. A failure only means the next new
// store is made the slow way.
func (s *DB) saveTemplate(ctx context.Context) {
	tpl := templatePath()
	if tpl == "" {
		return
	}
	if _, err := os.Lstat(tpl); !errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err := os.MkdirAll(filepath.Dir(tpl), 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(tpl), ".store-*.db")
	if err != nil {
		return
	}
	name := tmp.Name()
	tmp.Close()
	os.Remove(name) // VACUUM INTO wants to make the file itself
	defer os.Remove(name)
	if _, err := s.w.ExecContext(ctx, `VACUUM INTO ?`, name); err != nil {
		return
	}
	if !toWAL(ctx, name) {
		return
	}
	if err := os.Chmod(name, 0o600); err != nil {
		return
	}
	os.Rename(name, tpl)
}

// toWAL puts the database file at path in WAL mode.
func toWAL(ctx context.Context, path string) bool {
	db, err := sqlx.Open("sqlite3", "file:"+uriPath.Replace(path)+"?_journal_mode=WAL")
	if err != nil {
		return false
	}
	defer db.Close()
	var mode string
	return db.GetContext(ctx, &mode, `PRAGMA journal_mode`) == nil && mode == "wal"
}
