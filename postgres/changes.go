package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyplane/keyplane"
)

// ChangesSince lists the keys, tokens, accounts and plans updated at or after since,
// in one round trip.
func (db *DB) ChangesSince(ctx context.Context, since time.Time) ([]keyplane.Change, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT 'key', hash, '' FROM keys WHERE updated_at >= $1
		UNION ALL SELECT 'token', hash, '' FROM operator_tokens WHERE updated_at >= $1
		UNION ALL SELECT 'account', NULL, id FROM accounts WHERE updated_at >= $1
		UNION ALL SELECT 'plan', NULL, name FROM plans WHERE updated_at >= $1`, since)
	if err != nil {
		return nil, translate(err)
	}
	changes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (keyplane.Change, error) {
		var kind, name string
		var hash []byte
		if err := row.Scan(&kind, &hash, &name); err != nil {
			return keyplane.Change{}, err
		}
		switch kind {
		case "account":
			return keyplane.AccountChanged(name), nil
		case "plan":
			return keyplane.PlanChanged(name), nil
		}
		c := keyplane.Change{Token: kind == "token"}
		copy(c.KeyHash[:], hash)
		return c, nil
	})
	if err != nil {
		return nil, translate(err)
	}
	return changes, nil
}
