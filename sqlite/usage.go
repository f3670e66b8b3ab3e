package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
)

// usageTable names the table of a granularity; never built from input.
func usageTable(g keyplane.UsageGranularity) (string, error) {
	switch g {
	case keyplane.UsageMinute:
		return "usage_minutes", nil
	case keyplane.UsageHour:
		return "usage_hours", nil
	case keyplane.UsageDay:
		return "usage_days", nil
	}
	return "", fmt.Errorf("sqlite: unknown usage granularity %q", g)
}

const usageCountColumns = `requests, valid, upstream_errors, revoked, expired, disabled, forbidden, insufficient_scope, rate_limited, quota_exceeded`

// addUsageSQL is the additive upsert of one table; a NULL latency keeps the
// stored one, a merged one replaces it.
func addUsageSQL(table string) string {
	var set strings.Builder
	for _, c := range strings.Split(usageCountColumns, ", ") {
		fmt.Fprintf(&set, "%s = %s + excluded.%s, ", c, c, c)
	}
	return `INSERT INTO ` + table + ` (subject, bucket_start, endpoint, account_id, ` + usageCountColumns + `, latency)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (subject, bucket_start, endpoint) DO UPDATE SET ` + set.String() + `latency = coalesce(excluded.latency, latency)`
}

func usageCountArgs(c *keyplane.UsageCounts) []any {
	args := []any{c.Requests, c.Valid, c.UpstreamErrors}
	for _, r := range c.Rejected {
		args = append(args, r)
	}
	return args
}

// AddUsage adds the rows and totals in one transaction. Latencies are merged
// read-modify-write: the transaction holds SQLite's only write lock.
func (db *DB) AddUsage(ctx context.Context, rows []keyplane.UsageRow, totals []keyplane.KeyUsageTotal, merge keyplane.LatencyMerge) error {
	if len(rows) == 0 && len(totals) == 0 {
		return nil
	}
	return db.inTx(ctx, func(tx *sql.Tx) error {
		upserts := map[string]*sql.Stmt{} // prepared once per table: a flush writes many rows
		defer func() {
			for _, st := range upserts {
				st.Close()
			}
		}()
		for _, r := range rows {
			table, err := usageTable(r.Granularity)
			if err != nil {
				return err
			}
			upsert := upserts[table]
			if upsert == nil {
				if upsert, err = tx.PrepareContext(ctx, addUsageSQL(table)); err != nil {
					return translate(err)
				}
				upserts[table] = upsert
			}
			latency := r.Latency
			if latency != nil {
				var stored []byte
				err := tx.QueryRowContext(ctx, `SELECT latency FROM `+table+` WHERE subject = ? AND bucket_start = ? AND endpoint = ?`,
					r.Subject, micros(r.BucketStart), r.Endpoint).Scan(&stored)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return translate(err)
				}
				if stored != nil {
					if latency, err = merge(stored, latency); err != nil {
						return err
					}
				}
			}
			args := append([]any{r.Subject, micros(r.BucketStart), r.Endpoint, r.AccountID}, usageCountArgs(&r.UsageCounts)...)
			if _, err := upsert.ExecContext(ctx, append(args, latency)...); err != nil {
				return translate(err)
			}
		}
		for _, t := range totals {
			var last sql.NullInt64
			if !t.LastUsedAt.IsZero() {
				last = sql.NullInt64{Int64: micros(t.LastUsedAt), Valid: true}
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO key_usage_totals (key_id, account_id, requests, last_used_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (key_id) DO UPDATE SET requests = requests + excluded.requests,
				last_used_at = CASE WHEN last_used_at IS NULL OR excluded.last_used_at > last_used_at THEN coalesce(excluded.last_used_at, last_used_at) ELSE last_used_at END`,
				t.KeyID, t.AccountID, t.Requests, last)
			if err != nil {
				return translate(err)
			}
		}
		return nil
	})
}

// UsageRows reads a subject's rows in a range.
func (db *DB) UsageRows(ctx context.Context, q keyplane.UsageQuery) ([]keyplane.UsageRow, error) {
	table, err := usageTable(q.Granularity)
	if err != nil {
		return nil, err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT bucket_start, endpoint, account_id, `+usageCountColumns+`, latency FROM `+table+`
		WHERE subject = ? AND bucket_start >= ? AND bucket_start < ? ORDER BY bucket_start, endpoint`,
		q.Subject, micros(q.From), micros(q.To))
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	var out []keyplane.UsageRow
	for rows.Next() {
		r := keyplane.UsageRow{Granularity: q.Granularity, Subject: q.Subject}
		var start int64
		dest := []any{&start, &r.Endpoint, &r.AccountID, &r.Requests, &r.Valid, &r.UpstreamErrors}
		for i := range r.Rejected {
			dest = append(dest, &r.Rejected[i])
		}
		if err := rows.Scan(append(dest, &r.Latency)...); err != nil {
			return nil, unavailable(err)
		}
		r.BucketStart = fromMicros(start)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable(err)
	}
	return out, nil
}

// KeyUsageTotals reads the totals of keys in one transaction.
func (db *DB) KeyUsageTotals(ctx context.Context, keyIDs []string) ([]keyplane.KeyUsageTotal, error) {
	out := make([]keyplane.KeyUsageTotal, len(keyIDs))
	if len(keyIDs) == 0 {
		return out, nil
	}
	tx, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, unavailable(err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `SELECT account_id, requests, last_used_at FROM key_usage_totals WHERE key_id = ?`)
	if err != nil {
		return nil, unavailable(err)
	}
	defer stmt.Close()
	for i, id := range keyIDs {
		out[i].KeyID = id
		var last sql.NullInt64
		err := stmt.QueryRowContext(ctx, id).Scan(&out[i].AccountID, &out[i].Requests, &last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, unavailable(err)
		}
		if last.Valid {
			out[i].LastUsedAt = fromMicros(last.Int64)
		}
	}
	return out, nil
}

// KeyAccounts looks the keys up in one transaction.
func (db *DB) KeyAccounts(ctx context.Context, keyIDs []string) (map[string]string, error) {
	out := make(map[string]string, len(keyIDs))
	if len(keyIDs) == 0 {
		return out, nil
	}
	tx, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, unavailable(err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `SELECT account_id FROM keys WHERE id = ?`)
	if err != nil {
		return nil, unavailable(err)
	}
	defer stmt.Close()
	for _, id := range keyIDs {
		var account string
		err := stmt.QueryRowContext(ctx, id).Scan(&account)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		} else if err != nil {
			return nil, unavailable(err)
		}
		out[id] = account
	}
	return out, nil
}

// PruneUsage deletes old rows in batches, so a first prune after a long
// pause does not hold the write lock for long.
func (db *DB) PruneUsage(ctx context.Context, g keyplane.UsageGranularity, before time.Time) (int64, error) {
	table, err := usageTable(g)
	if err != nil {
		return 0, err
	}
	var total int64
	for {
		var n int64
		err := db.inTx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE (subject, bucket_start, endpoint) IN
				(SELECT subject, bucket_start, endpoint FROM `+table+` WHERE bucket_start < ? LIMIT 10000)`, micros(before))
			if err != nil {
				return translate(err)
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < 10000 {
			return total, nil
		}
	}
}
