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

const usageCountColumns = `requests, valid, upstream_errors, revoked, expired, disabled, forbidden, insufficient_scope, rate_limited, quota_exceeded`

// addUsageSQL is the additive upsert of a batch of rows into one table,
// passed as arrays: one statement however many rows, which a flush of
// thousands of rows needs (a statement per row cost ~100 µs each here). The
// latency is left as stored and returned: the upsert locks the row, so
// merging in Go and writing the result back cannot lose another
// instance's latencies. Rows are inserted in the arrays' order, sorted, so
// instances flushing overlapping batches lock rows in one order.
func addUsageSQL(table string) string {
	var set strings.Builder
	for _, c := range strings.Split(usageCountColumns, ", ") {
		fmt.Fprintf(&set, "%s = u.%s + excluded.%s, ", c, c, c)
	}
	return `INSERT INTO ` + table + ` AS u (subject, bucket_start, endpoint, account_id, ` + usageCountColumns + `)
		SELECT subject, bucket_start, endpoint, account_id, ` + usageCountColumns + `
		FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[],
			$8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[])
			WITH ORDINALITY AS r (subject, bucket_start, endpoint, account_id, ` + usageCountColumns + `, n)
		ORDER BY n
		ON CONFLICT (subject, bucket_start, endpoint) DO UPDATE SET ` + strings.TrimSuffix(set.String(), ", ") + `
		RETURNING u.subject, u.bucket_start, u.endpoint, u.latency`
}

// usageColumns are rows of one table as the arrays addUsageSQL takes.
type usageColumns struct {
	subjects, endpoints, accounts []string
	starts                        []time.Time
	counts                        [3 + len(keyplane.UsageRejectionCodes)][]int64
	rows                          []*keyplane.UsageRow
}

func (c *usageColumns) add(r *keyplane.UsageRow) {
	c.subjects, c.starts, c.endpoints, c.accounts = append(c.subjects, r.Subject), append(c.starts, r.BucketStart),
		append(c.endpoints, r.Endpoint), append(c.accounts, r.AccountID)
	c.counts[0], c.counts[1], c.counts[2] = append(c.counts[0], r.Requests), append(c.counts[1], r.Valid), append(c.counts[2], r.UpstreamErrors)
	for i, n := range r.Rejected {
		c.counts[3+i] = append(c.counts[3+i], n)
	}
	c.rows = append(c.rows, r)
}

func (c *usageColumns) args() []any {
	args := []any{c.subjects, c.starts, c.endpoints, c.accounts}
	for _, col := range c.counts {
		args = append(args, col)
	}
	return args
}

type usageRowKey struct {
	subject, endpoint string
	start             int64
}

// AddUsage adds the rows and totals in one transaction: per table, one
// upsert of all its rows and, for rows with latencies, one update of the
// merged sketches; then one upsert of the totals.
func (db *DB) AddUsage(ctx context.Context, rows []keyplane.UsageRow, totals []keyplane.KeyUsageTotal, merge keyplane.LatencyMerge) error {
	if len(rows) == 0 && len(totals) == 0 {
		return nil
	}
	byTable := map[string]*usageColumns{}
	sorted := make([]*keyplane.UsageRow, len(rows))
	for i := range rows {
		if _, err := usageTable(rows[i].Granularity); err != nil {
			return err
		}
		sorted[i] = &rows[i]
	}
	slices.SortFunc(sorted, func(a, b *keyplane.UsageRow) int {
		return cmp.Or(strings.Compare(a.Subject, b.Subject), a.BucketStart.Compare(b.BucketStart), strings.Compare(a.Endpoint, b.Endpoint))
	})
	for _, r := range sorted {
		table, _ := usageTable(r.Granularity)
		if byTable[table] == nil {
			byTable[table] = &usageColumns{}
		}
		byTable[table].add(r)
	}
	totals = slices.Clone(totals)
	slices.SortFunc(totals, func(a, b keyplane.KeyUsageTotal) int { return strings.Compare(a.KeyID, b.KeyID) })

	return db.inTx(ctx, func(tx pgx.Tx) error {
		for _, table := range []string{"usage_days", "usage_hours", "usage_minutes"} { // one order for every instance
			cols := byTable[table]
			if cols == nil {
				continue
			}
			if err := db.addUsageRows(ctx, tx, table, cols, merge); err != nil {
				return err
			}
		}
		if len(totals) == 0 {
			return nil
		}
		ids, accounts := make([]string, len(totals)), make([]string, len(totals))
		requests, lasts := make([]int64, len(totals)), make([]*time.Time, len(totals))
		for i, t := range totals {
			ids[i], accounts[i], requests[i] = t.KeyID, t.AccountID, t.Requests
			if !t.LastUsedAt.IsZero() {
				lasts[i] = &totals[i].LastUsedAt
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO key_usage_totals AS k (key_id, account_id, requests, last_used_at)
			SELECT key_id, account_id, requests, last_used_at
			FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[]) WITH ORDINALITY AS r (key_id, account_id, requests, last_used_at, n)
			ORDER BY n
			ON CONFLICT (key_id) DO UPDATE SET requests = k.requests + excluded.requests,
			last_used_at = GREATEST(k.last_used_at, excluded.last_used_at)`, ids, accounts, requests, lasts)
		return translate(err)
	})
}

// addUsageRows upserts one table's rows and merges their latencies.
func (db *DB) addUsageRows(ctx context.Context, tx pgx.Tx, table string, cols *usageColumns, merge keyplane.LatencyMerge) error {
	stored := map[usageRowKey][]byte{}
	rows, err := tx.Query(ctx, addUsageSQL(table), cols.args()...)
	if err != nil {
		return translate(err)
	}
	for rows.Next() {
		var k usageRowKey
		var start time.Time
		var latency []byte
		if err := rows.Scan(&k.subject, &start, &k.endpoint, &latency); err != nil {
			rows.Close()
			return translate(err)
		}
		if latency != nil {
			k.start = start.UnixMicro()
			stored[k] = latency
		}
	}
	if err := rows.Err(); err != nil {
		return translate(err)
	}
	var subjects, endpoints []string
	var starts []time.Time
	var latencies [][]byte
	for _, r := range cols.rows {
		if r.Latency == nil {
			continue
		}
		latency := r.Latency
		if s := stored[usageRowKey{r.Subject, r.Endpoint, r.BucketStart.UnixMicro()}]; s != nil {
			if latency, err = merge(s, r.Latency); err != nil {
				return err
			}
		}
		subjects, starts, endpoints, latencies = append(subjects, r.Subject), append(starts, r.BucketStart), append(endpoints, r.Endpoint), append(latencies, latency)
	}
	if len(latencies) == 0 {
		return nil
	}
	_, err = tx.Exec(ctx, `UPDATE `+table+` AS u SET latency = v.latency
		FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::bytea[]) AS v (subject, bucket_start, endpoint, latency)
		WHERE u.subject = v.subject AND u.bucket_start = v.bucket_start AND u.endpoint = v.endpoint`,
		subjects, starts, endpoints, latencies)
	return translate(err)
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
		dest := []any{&r.BucketStart, &r.Endpoint, &r.AccountID, &r.Requests, &r.Valid, &r.UpstreamErrors}
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
