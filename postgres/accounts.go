package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyplane/keyplane"
)

const accountColumns = `id, name, plan, allowed_scopes, status, created_at, updated_at`

// rowLock is appended to a SELECT of one row: empty for a plain read.
type rowLock string

const (
	noLock    rowLock = ""
	forUpdate rowLock = " FOR UPDATE"
)

func scanAccount(row pgx.Row) (*keyplane.Account, error) {
	var a keyplane.Account
	var created, updated time.Time
	if err := row.Scan(&a.ID, &a.Name, &a.Plan, &a.AllowedScopes, &a.Status, &created, &updated); err != nil {
		return nil, err
	}
	a.CreatedAt, a.UpdatedAt = utc(created), utc(updated)
	return &a, nil
}

// CreateAccount inserts a.
func (db *DB) CreateAccount(ctx context.Context, a *keyplane.Account) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO accounts (`+accountColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			a.ID, a.Name, a.Plan, stringsOrEmpty(a.AllowedScopes), a.Status, a.CreatedAt, a.UpdatedAt)
		return translate(err)
	})
}

// Account returns the account with id.
func (db *DB) Account(ctx context.Context, id string) (*keyplane.Account, error) {
	return accountByID(ctx, db.pool, id, noLock)
}

func accountByID(ctx context.Context, q queryer, id string, lock rowLock) (*keyplane.Account, error) {
	a, err := scanAccount(q.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id = $1`+string(lock), id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "account %q not found", id)
	}
	return a, translate(err)
}

// ListAccounts returns accounts newest first.
func (db *DB) ListAccounts(ctx context.Context, page keyplane.Page) ([]*keyplane.Account, string, error) {
	after, err := keyplane.DecodeCursor(page.Cursor)
	if err != nil {
		return nil, "", err
	}
	rows, err := db.pool.Query(ctx, `SELECT `+accountColumns+` FROM accounts
		WHERE ($1 = '' OR id < $1) ORDER BY id DESC LIMIT $2`, after, page.Limit+1)
	if err != nil {
		return nil, "", translate(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*keyplane.Account, error) { return scanAccount(row) })
	if err != nil {
		return nil, "", translate(err)
	}
	out, next := cut(out, page.Limit, func(a *keyplane.Account) string { return a.ID })
	return out, next, nil
}

// UpdateAccount applies update to the locked account in one transaction.
func (db *DB) UpdateAccount(ctx context.Context, id string, update func(*keyplane.Account) error) (*keyplane.Account, error) {
	var out *keyplane.Account
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		a, err := accountByID(ctx, tx, id, forUpdate)
		if err != nil {
			return err
		}
		if err := update(a); err != nil {
			return err
		}
		a.ID = id // the row to write is the one locked, whatever the callback did
		_, err = tx.Exec(ctx, `UPDATE accounts SET name = $1, plan = $2, allowed_scopes = $3, status = $4, updated_at = $5 WHERE id = $6`,
			a.Name, a.Plan, stringsOrEmpty(a.AllowedScopes), a.Status, a.UpdatedAt, a.ID)
		out = a
		return translate(err)
	})
	return out, err
}
