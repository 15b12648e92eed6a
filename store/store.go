// Package store keeps slipway's state in one SQLite file (through sqlx and
// go-sqlite3): pipelines, workflows, jobs and their attempts, approvals,
// deployments, environment locks, webhook deliveries, the outbox of
// notifications and the audit log. Job logs are rows for attempts that
// end quickly and quietly, files beside it for the others (see logs.go).
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
	"github.com/slipway-ci/slipway/workflows/engine"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is slipway's store. It is safe for concurrent use.
type DB struct {
	db     *sqlx.DB
	logDir string
	// w is the one connection this process writes through, held for the
	// life of the DB, so that PRAGMA data_version on it changes only when
	// another process wrote (see stateCache).
	w *sqlx.Conn
	// wmu serializes this process's writes: SQLite has one writer at a
	// time anyway, and a writer waiting in SQLite's busy handler sleeps
	// in steps of milliseconds where a mutex hands over in microseconds.
	// The busy timeout still covers other processes.
	wmu       sync.Mutex
	cache     *stateCache   // guarded by wmu
	consumers []string      // of the outbox; guarded by wmu
	stmts     sync.Map      // query -> *sqlx.Stmt; see runner
	liveLogs  sync.Map      // attempt ID -> *jobLog being written
	logAge    time.Duration // smallLogAge; tests shorten it
	// observe, if set, is told how long each write transaction took
	// (ObserveWrites).
	observe atomic.Pointer[func(time.Duration)]
	// commits counts this process's write transactions, for the
	// checkpointer (see checkpoint.go); stopCheckpoints ends it and
	// checkpointsDone is closed once it has. Scratch stores have none.
	commits         atomic.Int64
	stopCheckpoints chan struct{}
	checkpointsDone chan struct{}
}

var _ engine.Store = (*DB)(nil)

// Open opens (creating if needed) the store at path and applies the
// migrations it has not seen. Job logs go to the "logs" folder beside it.
//
// The file runs in WAL mode so readers never wait for the writer;
// synchronous=NORMAL means a commit survives the process being killed
// (what the crash test checks) and may be lost only to a power cut, never
// corrupted. Every transaction begins IMMEDIATE: writers queue on the busy
// timeout instead of failing to upgrade a read lock.
func Open(ctx context.Context, path string) (*DB, error) {
	return open(ctx, path, "NORMAL", false)
}

// OpenScratch opens a store that lives no longer than its process, as
// `slipway run`'s and the console's in their run folder: transactions
// are as atomic as Open's and every decision is committed, but nothing
// waits for the disk (synchronous=OFF), which took a one-job run 9 fsyncs;
// a machine's crash may lose what the run's end would have emptied anyway.
//
// A scratch store starts empty. The files of an earlier scratch store at
// path are reused, emptied, and the store leaves its own behind when it
// closes (SQLite's persistent WAL), for the next to reuse: on ext4
// without a journal, making a file cost up to 1 ms on the development VM
// (see the local executor's trash), and a store is three.
func OpenScratch(ctx context.Context, path string) (*DB, error) {
	for _, p := range []string{path + "-wal", path + "-shm", path} {
		// The WAL above all: an earlier store's frames would be
		// replayed into this one.
		if err := os.Truncate(p, 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	return open(ctx, path, "OFF", true)
}

// scratchDriver is go-sqlite3 keeping a store's WAL and shared-memory
// files when its last connection closes (SQLITE_FCNTL_PERSIST_WAL), for
// the next scratch store at the same path.
const scratchDriver = "sqlite3-scratch"

func init() {
	sql.Register(scratchDriver, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		return c.SetFileControlInt("main", sqlite3.SQLITE_FCNTL_PERSIST_WAL, 1)
	}})
}

// open opens the store at path; a scratch one is made anew from the
// template over an empty file at path.
func open(ctx context.Context, path, synchronous string, scratch bool) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	fresh, driver := false, "sqlite3"
	if scratch {
		fresh, driver = !fromTemplate(path, true), scratchDriver
	} else if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		fresh = !fromTemplate(path, false)
	}
	// A URI filename: a '#' or '?' in the path would end it early.
	dsn := "file:" + uriPath.Replace(path) + "?_journal_mode=WAL&_busy_timeout=10000&_foreign_keys=on&_synchronous=" + synchronous + "&_txlock=immediate"
	db, err := sqlx.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetConnMaxIdleTime(time.Minute)
	s := &DB{db: db, logDir: filepath.Join(filepath.Dir(path), "logs"), logAge: smallLogAge, cache: newStateCache()}
	if s.w, err = db.Connx(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if fresh {
		s.saveTemplate(ctx)
	}
	if synchronous != "OFF" {
		// Checkpoints wait for the disk: in the background, not in a
		// commit (see checkpoint.go).
		if err := s.autoCheckpointOff(ctx); err != nil {
			s.Close()
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		s.stopCheckpoints, s.checkpointsDone = make(chan struct{}), make(chan struct{})
		go s.checkpointer(s.stopCheckpoints, s.checkpointsDone)
	}
	if err := os.MkdirAll(s.logDir, 0o755); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	return s, nil
}

// uriPath escapes what ends a path in a SQLite URI filename.
var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// Close closes the database, storing first the logs of ended attempts
// still in memory.
func (s *DB) Close() error {
	if s.stopCheckpoints != nil {
		close(s.stopCheckpoints)
		<-s.checkpointsDone
	}
	s.storeClosedLogs(context.Background())
	s.stmts.Range(func(_, v any) bool {
		v.(*sqlx.Stmt).Close()
		return true
	})
	s.w.Close()
	return s.db.Close()
}

// migrate applies, in name order and all in one transaction, the
// embedded migrations not yet recorded in schema_migrations: a new store
// is made in one commit (a transaction per migration cost a `slipway run`
// most of its start), and a failed upgrade changes nothing.
func (s *DB) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("store: migrations table: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	sort.Strings(names)
	// Most opens find nothing to do: a read says so without a write
	// transaction.
	var applied []string
	if err := sqlx.SelectContext(ctx, s.w, &applied, `SELECT name FROM schema_migrations`); err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	if !slices.ContainsFunc(names, func(n string) bool { return !slices.Contains(applied, filepath.Base(n)) }) {
		return nil
	}
	return s.update(ctx, func(tx *sqlx.Tx) error {
		var applied []string
		if err := tx.SelectContext(ctx, &applied, `SELECT name FROM schema_migrations`); err != nil {
			return fmt.Errorf("store: migrations: %w", err)
		}
		for _, name := range names {
			base := filepath.Base(name)
			if slices.Contains(applied, base) {
				continue
			}
			body, err := migrations.ReadFile(name)
			if err != nil {
				return fmt.Errorf("store: migration %s: %w", base, err)
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("store: migration %s: %w", base, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)`, base, time.Now().UnixNano()); err != nil {
				return fmt.Errorf("store: migration %s: %w", base, err)
			}
		}
		return nil
	})
}

// update runs fn in one transaction, committed when fn returns nil.
// Every write of this process goes through here, on connection w.
func (s *DB) update(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	return s.updateThen(ctx, fn, nil)
}

// updateThen is update, calling committed (still holding wmu) once the
// transaction committed.
func (s *DB) updateThen(ctx context.Context, fn func(tx *sqlx.Tx) error, committed func()) error {
	if obs := s.observe.Load(); obs != nil {
		defer func(start time.Time) { (*obs)(time.Since(start)) }(time.Now())
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := ctx.Err(); err != nil {
		// The caller gave up: its statements ran to their end (see
		// txContext), and nothing of them is kept.
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.commits.Add(1)
	if committed != nil {
		committed()
	}
	return nil
}

// ObserveWrites has fn told how long each write transaction of this
// process takes, waiting for the writer included: the metrics' hook.
func (s *DB) ObserveWrites(fn func(time.Duration)) { s.observe.Store(&fn) }

// begin starts a transaction on w, the connection this process writes
// through. The transaction does not end with ctx: database/sql closes a
// connection whose transaction's context ends before the transaction
// does, and w is held for the DB's life. Its statements run to their end
// too (see txContext); the transaction of a caller that gave up is
// rolled back instead of committed. A connection lost all the same is
// replaced. It is called with wmu held.
func (s *DB) begin(ctx context.Context) (*sqlx.Tx, error) {
	tx, err := s.w.BeginTxx(context.WithoutCancel(ctx), nil)
	if !errors.Is(err, sql.ErrConnDone) {
		return tx, err
	}
	w, err := s.db.Connx(ctx)
	if err != nil {
		return nil, err
	}
	s.w.Close()
	s.w = w
	s.cache.version = -1 // data_version counts per connection
	if s.stopCheckpoints != nil {
		if err := s.autoCheckpointOff(ctx); err != nil {
			return nil, err
		}
	}
	return s.w.BeginTxx(context.WithoutCancel(ctx), nil)
}

// Update runs fn in one write transaction.
func (s *DB) Update(ctx context.Context, fn func(tx engine.StoreTx) error) error {
	t := &tx{db: s, cache: s.cache, work: map[string]*held{}}
	err := s.updateThen(ctx, func(sqltx *sqlx.Tx) error {
		t.q = s.inTx(sqltx)
		if err := s.cache.check(ctx, t.q); err != nil {
			return err
		}
		return fn(t)
	}, func() {
		s.cache.commit(t.work)
		for _, fn := range t.after {
			fn()
		}
	})
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// AuditLog lists the audit entries, oldest first.
func (s *DB) AuditLog(ctx context.Context) ([]engine.AuditEntry, error) {
	var rows []struct {
		At      int64  `db:"at"`
		Actor   string `db:"actor"`
		Action  string `db:"action"`
		Subject string `db:"subject"`
		Detail  string `db:"detail"`
	}
	if err := sqlx.SelectContext(ctx, s.run(), &rows, `SELECT at, actor, action, subject, detail FROM audit ORDER BY seq`); err != nil {
		return nil, fmt.Errorf("store: audit log: %w", err)
	}
	out := make([]engine.AuditEntry, len(rows))
	for i, r := range rows {
		out[i] = engine.AuditEntry{At: fromNanos(r.At), Actor: r.Actor, Action: r.Action, Subject: r.Subject, Detail: r.Detail}
	}
	return out, nil
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func notFound(what, id string, err error) error {
	if err == sql.ErrNoRows {
		return fmt.Errorf("%s %q: %w", what, id, engine.ErrNotFound)
	}
	return err
}
