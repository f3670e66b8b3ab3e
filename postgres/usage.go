package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
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
	return "", fmt.Errorf("postgres: unknown usage granularity %q", g)
}

const usageCountColumns = `requests, successes, errors, revoked, expired, disabled, forbidden, insufficient_scope, rate_limited, quota_exceeded`

// addUsageSQL is the additive upsert of one table. It leaves the latency as
// stored and returns it: the upsert locks the row, so merging in Go and
// writing the result back cannot lose another instance's latencies.
func addUsageSQL(table string) string {
	var set strings.Builder
	for _, c := range strings.Split(usageCountColumns, ", ") {
		fmt.Fprintf(&set, "%s = u.%s + excluded.%s, ", c, c, c)
	}
	return `INSERT INTO ` + table + ` AS u (subject, bucket_start, endpoint, account_id, ` + usageCountColumns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT (subject, bucket_start, endpoint) DO UPDATE SET ` + strings.TrimSuffix(set.String(), ", ") + `
		RETURNING u.latency`
}

// AddUsage adds the rows and totals in one transaction of three round trips:
// the count upserts, the merged latencies, the totals. Rows are locked in one
// order whatever the caller's, so instances flushing overlapping batches
// cannot deadlock.
func (db *DB) AddUsage(ctx context.Context, rows []keyplane.UsageRow, totals []keyplane.KeyUsageTotal, merge keyplane.LatencyMerge) error {
	if len(rows) == 0 && len(totals) == 0 {
		return nil
	}
	tables := make([]string, len(rows))
	order := make([]int, len(rows))
	for i, r := range rows {
		t, err := usageTable(r.Granularity)
		if err != nil {
			return err
		}
		tables[i], order[i] = t, i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ra, rb := &rows[a], &rows[b]
		return cmp.Or(strings.Compare(tables[a], tables[b]), strings.Compare(ra.Subject, rb.Subject),
			ra.BucketStart.Compare(rb.BucketStart), strings.Compare(ra.Endpoint, rb.Endpoint))
	})
	totals = slices.Clone(totals)
	slices.SortStableFunc(totals, func(a, b keyplane.KeyUsageTotal) int { return strings.Compare(a.KeyID, b.KeyID) })

	return db.inTx(ctx, func(tx pgx.Tx) error {
		upserts := &pgx.Batch{}
		for _, i := range order {
			r := &rows[i]
			args := []any{r.Subject, r.BucketStart, r.Endpoint, r.AccountID, r.Requests, r.Successes, r.Errors}
			for _, n := range r.Rejected {
				args = append(args, n)
			}
			upserts.Queue(addUsageSQL(tables[i]), args...)
		}
		merged := &pgx.Batch{}
		results := tx.SendBatch(ctx, upserts)
		for _, i := range order {
			r := &rows[i]
			var stored []byte
			if err := results.QueryRow().Scan(&stored); err != nil {
				results.Close()
				return translate(err)
			}
			if r.Latency == nil {
				continue
			}
			latency := r.Latency
			if stored != nil {
				var err error
				if latency, err = merge(stored, r.Latency); err != nil {
					results.Close()
					return err
				}
			}
			merged.Queue(`UPDATE `+tables[i]+` SET latency = $4 WHERE subject = $1 AND bucket_start = $2 AND endpoint = $3`,
				r.Subject, r.BucketStart, r.Endpoint, latency)
		}
		if err := results.Close(); err != nil {
			return translate(err)
		}
		for _, t := range totals {
			var last *time.Time
			if !t.LastUsedAt.IsZero() {
				last = &t.LastUsedAt
			}
			merged.Queue(`INSERT INTO key_usage_totals AS k (key_id, account_id, requests, last_used_at) VALUES ($1, $2, $3, $4)
				ON CONFLICT (key_id) DO UPDATE SET requests = k.requests + excluded.requests,
				last_used_at = GREATEST(k.last_used_at, excluded.last_used_at)`, t.KeyID, t.AccountID, t.Requests, last)
		}
		if merged.Len() == 0 {
			return nil
		}
		return translate(tx.SendBatch(ctx, merged).Close())
	})
}

// UsageRows reads a subject's rows in a range.
func (db *DB) UsageRows(ctx context.Context, q keyplane.UsageQuery) ([]keyplane.UsageRow, error) {
	table, err := usageTable(q.Granularity)
	if err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, `SELECT bucket_start, endpoint, account_id, `+usageCountColumns+`, latency FROM `+table+`
		WHERE subject = $1 AND bucket_start >= $2 AND bucket_start < $3 ORDER BY bucket_start, endpoint`,
		q.Subject, q.From, q.To)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []keyplane.UsageRow
	for rows.Next() {
		r := keyplane.UsageRow{Granularity: q.Granularity, Subject: q.Subject}
		dest := []any{&r.BucketStart, &r.Endpoint, &r.AccountID, &r.Requests, &r.Successes, &r.Errors}
		for i := range r.Rejected {
			dest = append(dest, &r.Rejected[i])
		}
		if err := rows.Scan(append(dest, &r.Latency)...); err != nil {
			return nil, translate(err)
		}
		r.BucketStart = utc(r.BucketStart)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err)
	}
	return out, nil
}

// KeyUsageTotals reads the totals of keys in one statement, in order.
func (db *DB) KeyUsageTotals(ctx context.Context, keyIDs []string) ([]keyplane.KeyUsageTotal, error) {
	out := make([]keyplane.KeyUsageTotal, len(keyIDs))
	if len(keyIDs) == 0 {
		return out, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT coalesce(t.account_id, ''), coalesce(t.requests, 0), t.last_used_at
		FROM unnest($1::text[]) WITH ORDINALITY AS r (key_id, n)
		LEFT JOIN key_usage_totals t ON t.key_id = r.key_id
		ORDER BY r.n`, keyIDs)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	for i := 0; rows.Next(); i++ {
		var last *time.Time
		out[i].KeyID = keyIDs[i]
		if err := rows.Scan(&out[i].AccountID, &out[i].Requests, &last); err != nil {
			return nil, translate(err)
		}
		if last != nil {
			out[i].LastUsedAt = utc(*last)
		}
	}
	return out, translate(rows.Err())
}

// KeyAccounts looks the keys up in one statement.
func (db *DB) KeyAccounts(ctx context.Context, keyIDs []string) (map[string]string, error) {
	out := make(map[string]string, len(keyIDs))
	if len(keyIDs) == 0 {
		return out, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT id, account_id FROM keys WHERE id = ANY($1::text[])`, keyIDs)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, account string
		if err := rows.Scan(&id, &account); err != nil {
			return nil, translate(err)
		}
		out[id] = account
	}
	return out, translate(rows.Err())
}

// PruneUsage deletes old rows in batches, so a first prune after a long
// pause holds no long transaction.
func (db *DB) PruneUsage(ctx context.Context, g keyplane.UsageGranularity, before time.Time) (int64, error) {
	table, err := usageTable(g)
	if err != nil {
		return 0, err
	}
	var total int64
	for {
		tag, err := db.pool.Exec(ctx, `DELETE FROM `+table+` WHERE (subject, bucket_start, endpoint) IN
			(SELECT subject, bucket_start, endpoint FROM `+table+` WHERE bucket_start < $1 LIMIT 10000)`, before)
		if err != nil {
			return total, translate(err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 10000 {
			return total, nil
		}
	}
}
