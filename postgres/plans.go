package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyplane/keyplane"
)

const planColumns = `name, rate_limits, quota, max_keys, allowed_scopes, created_at, updated_at, key_policy`

func scanPlan(row pgx.Row) (*keyplane.Plan, error) {
	var p keyplane.Plan
	var limits, quota, policy []byte
	var created, updated time.Time
	if err := row.Scan(&p.Name, &limits, &quota, &p.MaxKeys, &p.AllowedScopes, &created, &updated, &policy); err != nil {
		return nil, err
	}
	if policy != nil {
		p.KeyPolicy = new(keyplane.KeyPolicy)
		if err := json.Unmarshal(policy, p.KeyPolicy); err != nil {
			return nil, fmt.Errorf("plan %s: key_policy: %w", p.Name, err)
		}
	}
	if err := decodePlanColumns(&p, limits, quota); err != nil {
		return nil, fmt.Errorf("plan %s: %w", p.Name, err)
	}
	p.AllowedScopes = stringsOrEmpty(p.AllowedScopes)
	p.CreatedAt, p.UpdatedAt = utc(created), utc(updated)
	return &p, nil
}

// decodePlanColumns fills the JSON columns: NULL (nil) stays nil, as in SQLite.
func decodePlanColumns(p *keyplane.Plan, limits, quota []byte) error {
	var err error
	if limits != nil {
		err = json.Unmarshal(limits, &p.RateLimits)
	}
	if quota != nil {
		p.Quota = new(keyplane.Quota)
		err = errors.Join(err, json.Unmarshal(quota, p.Quota))
	}
	return err
}

// CreatePlan inserts p.
func (db *DB) CreatePlan(ctx context.Context, p *keyplane.Plan) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO plans (`+planColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			p.Name, rateLimitsJSON(p.RateLimits), quotaJSON(p.Quota), p.MaxKeys, stringsOrEmpty(p.AllowedScopes), p.CreatedAt, p.UpdatedAt, keyPolicyJSON(p.KeyPolicy))
		return translate(err)
	})
}

// Plan returns the plan with name.
func (db *DB) Plan(ctx context.Context, name string) (*keyplane.Plan, error) {
	return planByName(ctx, db.pool, name, noLock)
}

func planByName(ctx context.Context, q queryer, name string, lock rowLock) (*keyplane.Plan, error) {
	p, err := scanPlan(q.QueryRow(ctx, `SELECT `+planColumns+` FROM plans WHERE name = $1`+string(lock), name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "plan %q not found", name)
	}
	return p, translate(err)
}

// ListPlans returns plans by name, ascending.
func (db *DB) ListPlans(ctx context.Context, page keyplane.Page) ([]*keyplane.Plan, string, error) {
	after, err := keyplane.DecodeCursor(page.Cursor)
	if err != nil {
		return nil, "", err
	}
	rows, err := db.pool.Query(ctx, `SELECT `+planColumns+` FROM plans
		WHERE ($1 = '' OR name > $1) ORDER BY name LIMIT $2`, after, page.Limit+1)
	if err != nil {
		return nil, "", translate(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*keyplane.Plan, error) { return scanPlan(row) })
	if err != nil {
		return nil, "", translate(err)
	}
	out, next := cut(out, page.Limit, func(p *keyplane.Plan) string { return p.Name })
	return out, next, nil
}

// UpdatePlan applies update to the locked plan in one transaction.
func (db *DB) UpdatePlan(ctx context.Context, name string, update func(*keyplane.Plan) error) (*keyplane.Plan, error) {
	var out *keyplane.Plan
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		p, err := planByName(ctx, tx, name, forUpdate)
		if err != nil {
			return err
		}
		if err := update(p); err != nil {
			return err
		}
		p.Name = name                                     // the row to write is the one locked, whatever the callback did
		p.AllowedScopes = stringsOrEmpty(p.AllowedScopes) // as a read would return it
		_, err = tx.Exec(ctx, `UPDATE plans SET rate_limits = $1, quota = $2, max_keys = $3, allowed_scopes = $4, updated_at = $5, key_policy = $6 WHERE name = $7`,
			rateLimitsJSON(p.RateLimits), quotaJSON(p.Quota), p.MaxKeys, p.AllowedScopes, p.UpdatedAt, keyPolicyJSON(p.KeyPolicy), p.Name)
		out = p
		return translate(err)
	})
	return out, err
}
