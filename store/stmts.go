package store

import (
	"context"
	"database/sql"

	"github.com/jmoiron/sqlx"
)

// runner runs queries through prepared statements kept for the life of
// the DB, inside a transaction when tx is set. go-sqlite3 keeps no
// statement cache, and compiling the scheduler's statements again at each
// step cost more CPU than running them.
type runner struct {
	db *DB
	tx *sqlx.Tx
}

var _ sqlx.QueryerContext = runner{}

func (s *DB) run() runner             { return runner{db: s} }
func (s *DB) inTx(tx *sqlx.Tx) runner { return runner{db: s, tx: tx} }

// stmt returns query's prepared statement, bound to the transaction if any.
func (r runner) stmt(ctx context.Context, query string) (*sqlx.Stmt, error) {
	v, ok := r.db.stmts.Load(query)
	if !ok {
		st, err := r.db.db.PreparexContext(ctx, query)
		if err != nil {
			return nil, err
		}
		if prev, loaded := r.db.stmts.LoadOrStore(query, st); loaded {
			st.Close()
			v = prev
		} else {
			v = st
		}
	}
	st := v.(*sqlx.Stmt)
	if r.tx != nil {
		// database/sql reuses the statement already prepared on the
		// transaction's connection.
		return r.tx.StmtxContext(ctx, st), nil
	}
	return st, nil
}

// txContext is the context a statement of a write transaction runs
// under: ctx's values without its end. go-sqlite3 runs a statement whose
// context can end on a goroutine of its own, to interrupt it, which cost
// the scheduler's transaction of 15 statements a third of its time; the
// statements of a write transaction are short, and the transaction is
// what a caller who gives up rolls back.
func (r runner) txContext(ctx context.Context) context.Context {
	if r.tx != nil {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

func (r runner) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = r.txContext(ctx)
	st, err := r.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (r runner) QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	ctx = r.txContext(ctx)
	st, err := r.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryxContext(ctx, args...)
}

func (r runner) QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row {
	ctx = r.txContext(ctx)
	st, err := r.stmt(ctx, query)
	if err != nil {
		// sqlx.Row carries its error to Scan; an unprepared statement
		// is reported the way the driver reports a bad query.
		return r.db.db.QueryRowxContext(ctx, query, args...)
	}
	return st.QueryRowxContext(ctx, args...)
}

func (r runner) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = r.txContext(ctx)
	st, err := r.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}
