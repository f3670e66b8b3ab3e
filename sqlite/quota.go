package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/keyplane/keyplane"
)

// addQuotaUsage clamps with the delta itself rather than excluded.used: the
// row proposed for a new count must already be clamped, since CHECK (used >= 0)
// is evaluated on it before the conflict is.
const addQuotaUsage = `INSERT INTO quota_usage (subject, period_start, used, updated_at)
	VALUES (:subject, :period, MAX(:delta, 0), :now)
	ON CONFLICT (subject, period_start) DO UPDATE SET used = MAX(used + :delta, 0), updated_at = excluded.updated_at
	RETURNING used`

// AddQuotaUsage adds the deltas in one transaction, in the order given, and
// returns the totals after each; a count never goes below 0.
func (db *DB) AddQuotaUsage(ctx context.Context, deltas []keyplane.QuotaDelta) ([]int64, error) {
	if len(deltas) == 0 {
		return nil, nil
	}
	totals := make([]int64, len(deltas))
	now := micros(time.Now())
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, addQuotaUsage)
		if err != nil {
			return translate(err)
		}
		defer stmt.Close()
		for i, d := range deltas {
			err := stmt.QueryRowContext(ctx, sql.Named("subject", d.Subject), sql.Named("period", micros(d.PeriodStart)),
				sql.Named("delta", d.Used), sql.Named("now", now)).Scan(&totals[i])
			if err != nil {
				return translate(err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return totals, nil
}

// QuotaUsage reads the counts in one transaction, so they are of one moment.
func (db *DB) QuotaUsage(ctx context.Context, refs []keyplane.QuotaRef) ([]int64, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	tx, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, unavailable(err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `SELECT used FROM quota_usage WHERE subject = ? AND period_start = ?`)
	if err != nil {
		return nil, unavailable(err)
	}
	defer stmt.Close()
	used := make([]int64, len(refs))
	for i, r := range refs {
		err := stmt.QueryRowContext(ctx, r.Subject, micros(r.PeriodStart)).Scan(&used[i])
		if err != nil && !errors.Is(err, sql.ErrNoRows) { // no row: nothing counted, 0
			return nil, unavailable(err)
		}
	}
	return used, nil
}

// ResetQuotaUsage sets a count to 0, creating it if nothing was counted yet.
func (db *DB) ResetQuotaUsage(ctx context.Context, ref keyplane.QuotaRef) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO quota_usage (subject, period_start, used, updated_at) VALUES (?, ?, 0, ?)
			ON CONFLICT (subject, period_start) DO UPDATE SET used = 0, updated_at = excluded.updated_at`,
			ref.Subject, micros(ref.PeriodStart), micros(time.Now()))
		return translate(err)
	})
}
