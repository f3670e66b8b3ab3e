package sqlite

import (
	"context"
	"time"

	"github.com/keyplane/keyplane"
)

// ChangesSince lists the keys, tokens, accounts and plans updated at or after since.
func (db *DB) ChangesSince(ctx context.Context, since time.Time) ([]keyplane.Change, error) {
	var changes []keyplane.Change
	at := micros(since)
	rows, err := db.read.QueryContext(ctx, `SELECT hash, 0 FROM keys WHERE updated_at >= ?
		UNION ALL SELECT hash, 1 FROM operator_tokens WHERE updated_at >= ?`, at, at)
	if err != nil {
		return nil, unavailable(err)
	}
	for rows.Next() {
		var h []byte
		var token bool
		if err := rows.Scan(&h, &token); err != nil {
			rows.Close()
			return nil, unavailable(err)
		}
		c := keyplane.Change{Token: token}
		copy(c.KeyHash[:], h)
		changes = append(changes, c)
	}
	if err := rows.Close(); err != nil {
		return nil, unavailable(err)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable(err)
	}
	for _, q := range []struct {
		query  string
		change func(string) keyplane.Change
	}{
		{`SELECT id FROM accounts WHERE updated_at >= ?`, keyplane.AccountChanged},
		{`SELECT name FROM plans WHERE updated_at >= ?`, keyplane.PlanChanged},
	} {
		rows, err := db.read.QueryContext(ctx, q.query, at)
		if err != nil {
			return nil, unavailable(err)
		}
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				rows.Close()
				return nil, unavailable(err)
			}
			changes = append(changes, q.change(name))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, unavailable(err)
		}
	}
	return changes, nil
}
