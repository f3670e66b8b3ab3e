package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyplane/keyplane"
)

// CreateToken inserts t.
func (db *DB) CreateToken(ctx context.Context, t *keyplane.Token) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO operator_tokens (id, name, role, hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
			t.ID, t.Name, t.Role, t.Hash[:], t.CreatedAt)
		return translate(err)
	})
}

// TokenByHash returns the token with hash.
func (db *DB) TokenByHash(ctx context.Context, hash [32]byte) (*keyplane.Token, error) {
	var t keyplane.Token
	var h []byte
	var created time.Time
	err := db.pool.QueryRow(ctx, `SELECT id, name, role, hash, created_at FROM operator_tokens WHERE hash = $1`, hash[:]).
		Scan(&t.ID, &t.Name, &t.Role, &h, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "no token with that hash")
	} else if err != nil {
		return nil, translate(err)
	}
	copy(t.Hash[:], h)
	t.CreatedAt = utc(created)
	return &t, nil
}

// CountTokens returns how many operator tokens exist.
func (db *DB) CountTokens(ctx context.Context) (int, error) {
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM operator_tokens`).Scan(&n); err != nil {
		return 0, translate(err)
	}
	return n, nil
}
