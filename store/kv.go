package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// KV is a namespace of keys and values an adapter keeps across restarts
// (what it posted, the IDs the outside world gave it). Get and Put are
// each one statement; a Put replaces the value.
type KV struct {
	db *DB
	ns string
}

// KV returns the namespace ns.
func (s *DB) KV(ns string) *KV { return &KV{db: s, ns: ns} }

// Get returns the value of key, and whether it is set.
func (kv *KV) Get(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := sqlx.GetContext(ctx, kv.db.run(), &v, `SELECT value FROM kv WHERE namespace = ? AND key = ?`, kv.ns, key)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: kv %s: %w", kv.ns, err)
	}
	return v, true, nil
}

// Put sets key to value.
func (kv *KV) Put(ctx context.Context, key, value string) error {
	err := kv.db.update(ctx, func(tx *sqlx.Tx) error {
		_, err := kv.db.inTx(tx).ExecContext(ctx, `INSERT INTO kv (namespace, key, value) VALUES (?, ?, ?)
			ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value`, kv.ns, key, value)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: kv %s: %w", kv.ns, err)
	}
	return nil
}
