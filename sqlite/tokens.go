package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/keyplane/keyplane"
)

const tokenColumns = `id, name, role, account_id, hash, created_at, updated_at, expires_at, revoked_at`

func scanToken(row scanner) (*keyplane.Token, error) {
	var t keyplane.Token
	var h []byte
	var account sql.NullString
	var created, updated int64
	var expires, revoked sql.NullInt64
	if err := row.Scan(&t.ID, &t.Name, &t.Role, &account, &h, &created, &updated, &expires, &revoked); err != nil {
		return nil, err
	}
	copy(t.Hash[:], h)
	t.AccountID = account.String
	t.CreatedAt, t.UpdatedAt = fromMicros(created), fromMicros(updated)
	t.ExpiresAt, t.RevokedAt = fromMicrosPtr(expires), fromMicrosPtr(revoked)
	return &t, nil
}

func tokenWhere(ctx context.Context, q querier, where string, arg any) (*keyplane.Token, error) {
	t, err := scanToken(q.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM operator_tokens WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "token not found")
	} else if err != nil {
		return nil, readErr(err)
	}
	return t, nil
}

// CreateToken inserts t.
func (db *DB) CreateToken(ctx context.Context, t *keyplane.Token) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO operator_tokens (`+tokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, t.Name, t.Role, nullString(t.AccountID), t.Hash[:], micros(t.CreatedAt), micros(t.UpdatedAt), microsPtr(t.ExpiresAt), microsPtr(t.RevokedAt))
		return translate(err)
	})
}

// TokenByHash returns the token with hash.
func (db *DB) TokenByHash(ctx context.Context, hash [32]byte) (*keyplane.Token, error) {
	return tokenWhere(ctx, db.read, `hash = ?`, hash[:])
}

// Token returns the token with id.
func (db *DB) Token(ctx context.Context, id string) (*keyplane.Token, error) {
	return tokenWhere(ctx, db.read, `id = ?`, id)
}

// ListTokens lists tokens newest first.
func (db *DB) ListTokens(ctx context.Context, page keyplane.Page) ([]*keyplane.Token, string, error) {
	after, err := keyplane.DecodeCursor(page.Cursor)
	if err != nil {
		return nil, "", err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+tokenColumns+` FROM operator_tokens
		WHERE (? = '' OR id < ?) ORDER BY id DESC LIMIT ?`, after, after, page.Limit+1)
	if err != nil {
		return nil, "", unavailable(err)
	}
	defer rows.Close()
	var out []*keyplane.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, "", readErr(err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, "", unavailable(err)
	}
	out, next := cut(out, page.Limit, func(t *keyplane.Token) string { return t.ID })
	return out, next, nil
}

// UpdateToken applies update in one transaction; SQLite's single writer
// makes the count of other admins exact.
func (db *DB) UpdateToken(ctx context.Context, id string, now time.Time, update func(*keyplane.Token, int) error) (*keyplane.Token, error) {
	var out *keyplane.Token
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		t, err := tokenWhere(ctx, tx, `id = ?`, id)
		if err != nil {
			return err
		}
		var admins int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM operator_tokens WHERE id <> ? AND role = 'admin' AND account_id IS NULL
			AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)`, id, micros(now)).Scan(&admins); err != nil {
			return unavailable(err)
		}
		if err := update(t, admins); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE operator_tokens SET name = ?, expires_at = ?, revoked_at = ?, updated_at = ? WHERE id = ?`,
			t.Name, microsPtr(t.ExpiresAt), microsPtr(t.RevokedAt), micros(t.UpdatedAt), id)
		t.ID = id
		out = t
		return translate(err)
	})
	return out, err
}

// CountTokens returns how many operator tokens exist.
func (db *DB) CountTokens(ctx context.Context) (int, error) {
	var n int
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM operator_tokens`).Scan(&n); err != nil {
		return 0, unavailable(err)
	}
	return n, nil
}
