package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyplane/keyplane"
)

const tokenColumns = `id, name, role, account_id, hash, created_at, updated_at, expires_at, revoked_at`

func scanToken(row pgx.Row) (*keyplane.Token, error) {
	var t keyplane.Token
	var h []byte
	var account *string
	var created, updated time.Time
	if err := row.Scan(&t.ID, &t.Name, &t.Role, &account, &h, &created, &updated, &t.ExpiresAt, &t.RevokedAt); err != nil {
		return nil, err
	}
	copy(t.Hash[:], h)
	if account != nil {
		t.AccountID = *account
	}
	t.CreatedAt, t.UpdatedAt = utc(created), utc(updated)
	t.ExpiresAt, t.RevokedAt = utcPtr(t.ExpiresAt), utcPtr(t.RevokedAt)
	return &t, nil
}

func tokenWhere(ctx context.Context, q queryer, where string, arg any) (*keyplane.Token, error) {
	t, err := scanToken(q.QueryRow(ctx, `SELECT `+tokenColumns+` FROM operator_tokens WHERE `+where, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "token not found")
	}
	return t, translate(err)
}

// CreateToken inserts t.
func (db *DB) CreateToken(ctx context.Context, t *keyplane.Token) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO operator_tokens (`+tokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			t.ID, t.Name, t.Role, nullIfEmpty(t.AccountID), t.Hash[:], t.CreatedAt, t.UpdatedAt, t.ExpiresAt, t.RevokedAt)
		return translate(err)
	})
}

// TokenByHash returns the token with hash.
func (db *DB) TokenByHash(ctx context.Context, hash [32]byte) (*keyplane.Token, error) {
	return tokenWhere(ctx, db.pool, `hash = $1`, hash[:])
}

// Token returns the token with id.
func (db *DB) Token(ctx context.Context, id string) (*keyplane.Token, error) {
	return tokenWhere(ctx, db.pool, `id = $1`, id)
}

// ListTokens lists tokens newest first.
func (db *DB) ListTokens(ctx context.Context, page keyplane.Page) ([]*keyplane.Token, string, error) {
	after, err := keyplane.DecodeCursor(page.Cursor)
	if err != nil {
		return nil, "", err
	}
	rows, err := db.pool.Query(ctx, `SELECT `+tokenColumns+` FROM operator_tokens
		WHERE ($1 = '' OR id < $1) ORDER BY id DESC LIMIT $2`, after, page.Limit+1)
	if err != nil {
		return nil, "", translate(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*keyplane.Token, error) { return scanToken(row) })
	if err != nil {
		return nil, "", translate(err)
	}
	out, next := cut(out, page.Limit, func(t *keyplane.Token) string { return t.ID })
	return out, next, nil
}

// UpdateToken applies update in one transaction. Every unscoped admin token
// is locked first, so two revocations at once cannot both see the other's
// token as the remaining admin.
func (db *DB) UpdateToken(ctx context.Context, id string, now time.Time, update func(*keyplane.Token, int) error) (*keyplane.Token, error) {
	var out *keyplane.Token
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM operator_tokens WHERE role = 'admin' AND account_id IS NULL
			AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) ORDER BY id FOR UPDATE`, now)
		if err != nil {
			return translate(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return translate(err)
		}
		t, err := tokenWhere(ctx, tx, `id = $1 FOR UPDATE`, id)
		if err != nil {
			return err
		}
		admins := 0
		for _, other := range ids {
			if other != id {
				admins++
			}
		}
		if err := update(t, admins); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE operator_tokens SET name = $1, expires_at = $2, revoked_at = $3, updated_at = $4 WHERE id = $5`,
			t.Name, t.ExpiresAt, t.RevokedAt, t.UpdatedAt, id)
		t.ID = id
		out = t
		return translate(err)
	})
	return out, err
}

// CountTokens returns how many operator tokens exist.
func (db *DB) CountTokens(ctx context.Context) (int, error) {
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM operator_tokens`).Scan(&n); err != nil {
		return 0, translate(err)
	}
	return n, nil
}
