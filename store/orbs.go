package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/slipway-ci/slipway/workflows"
)

// OrbCache keeps the orb registry's answers in the store: each orb
// version's source, and what each partial version resolved to last.
type OrbCache struct{ db *DB }

var _ workflows.OrbCache = (*OrbCache)(nil)

// OrbCache returns the store's orb cache.
func (s *DB) OrbCache() *OrbCache { return &OrbCache{db: s} }

// Get returns an orb version's source, and whether it is kept.
func (c *OrbCache) Get(ctx context.Context, name, version string) ([]byte, bool, error) {
	var src []byte
	err := sqlx.GetContext(ctx, c.db.run(), &src, `SELECT source FROM orb_versions WHERE name = ? AND version = ?`, name, version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: orb %s@%s: %w", name, version, err)
	}
	return src, true, nil
}

// Put keeps an orb version's source; a version's source never changes,
// so keeping it again changes nothing.
func (c *OrbCache) Put(ctx context.Context, name, version string, source []byte) error {
	err := c.db.update(ctx, func(tx *sqlx.Tx) error {
		_, err := c.db.inTx(tx).ExecContext(ctx, `INSERT INTO orb_versions (name, version, source, fetched_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (name, version) DO NOTHING`, name, version, source, nanos(time.Now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: orb %s@%s: %w", name, version, err)
	}
	return nil
}

// Pinned returns what a partial version last resolved to.
func (c *OrbCache) Pinned(ctx context.Context, name, ref string) (string, bool, error) {
	var v string
	err := sqlx.GetContext(ctx, c.db.run(), &v, `SELECT version FROM orb_pins WHERE name = ? AND ref = ?`, name, ref)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: orb %s@%s: %w", name, ref, err)
	}
	return v, true, nil
}

// Pin records what a partial version resolved to.
func (c *OrbCache) Pin(ctx context.Context, name, ref, version string) error {
	err := c.db.update(ctx, func(tx *sqlx.Tx) error {
		_, err := c.db.inTx(tx).ExecContext(ctx, `INSERT INTO orb_pins (name, ref, version, resolved_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (name, ref) DO UPDATE SET version = excluded.version, resolved_at = excluded.resolved_at`,
			name, ref, version, nanos(time.Now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: orb %s@%s: %w", name, ref, err)
	}
	return nil
}
