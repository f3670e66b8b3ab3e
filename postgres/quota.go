package postgres

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyplane/keyplane"
)

// addQuotaUsage clamps with the delta itself rather than excluded.used: the
// row proposed for a new count must already be clamped, since CHECK (used >= 0)
// is evaluated on it before the conflict is.
const addQuotaUsage = `INSERT INTO quota_usage AS q (subject, period_start, used, updated_at)
	VALUES ($1, $2, GREATEST($3::bigint, 0), $4)
	ON CONFLICT (subject, period_start) DO UPDATE SET used = GREATEST(q.used + $3::bigint, 0), updated_at = excluded.updated_at
	RETURNING used`

// AddQuotaUsage adds the deltas and returns the totals after each; a count
// never goes below 0. The upserts go as one pgx.Batch: one round trip, run by
// the server in one implicit transaction. A single INSERT over unnest arrays
// was about twice as fast locally (9 against 19 µs a delta, in batches of
// 10,000), but its conflict branch sees a delta only as the proposed row,
// clamped to pass the CHECK, which loses refunds; nor can it apply one ref's
// repeated deltas in order.
func (db *DB) AddQuotaUsage(ctx context.Context, deltas []keyplane.QuotaDelta) ([]int64, error) {
	if len(deltas) == 0 {
		return nil, nil
	}
	// Rows are locked in one order whatever the caller's, so instances flushing
	// overlapping batches cannot deadlock; the sort is stable to keep a ref's
	// deltas in the order given.
	order := make([]int, len(deltas))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return compareRefs(deltas[a].QuotaRef, deltas[b].QuotaRef) })

	now := time.Now()
	batch := &pgx.Batch{}
	for _, i := range order {
		d := deltas[i]
		batch.Queue(addQuotaUsage, d.Subject, d.PeriodStart, d.Used, now)
	}
	totals := make([]int64, len(deltas))
	results := db.pool.SendBatch(ctx, batch)
	for _, i := range order {
		if err := results.QueryRow().Scan(&totals[i]); err != nil {
			results.Close()
			return nil, translate(err)
		}
	}
	if err := results.Close(); err != nil {
		return nil, translate(err)
	}
	return totals, nil
}

// compareRefs orders refs as the database tells them apart: periods at
// microsecond precision.
func compareRefs(a, b keyplane.QuotaRef) int {
	return cmp.Or(strings.Compare(a.Subject, b.Subject), cmp.Compare(a.PeriodStart.UnixMicro(), b.PeriodStart.UnixMicro()))
}

// QuotaUsage reads every count in one statement, in the order of refs.
func (db *DB) QuotaUsage(ctx context.Context, refs []keyplane.QuotaRef) ([]int64, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	subjects := make([]string, len(refs))
	periods := make([]time.Time, len(refs))
	for i, r := range refs {
		subjects[i], periods[i] = r.Subject, r.PeriodStart
	}
	rows, err := db.pool.Query(ctx, `SELECT coalesce(q.used, 0)
		FROM unnest($1::text[], $2::timestamptz[]) WITH ORDINALITY AS r (subject, period_start, n)
		LEFT JOIN quota_usage q ON q.subject = r.subject AND q.period_start = r.period_start
		ORDER BY r.n`, subjects, periods)
	if err != nil {
		return nil, translate(err)
	}
	used, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, translate(err)
	}
	return used, nil
}

// ResetQuotaUsage sets a count to 0, creating it if nothing was counted yet.
func (db *DB) ResetQuotaUsage(ctx context.Context, ref keyplane.QuotaRef) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO quota_usage (subject, period_start, used, updated_at) VALUES ($1, $2, 0, $3)
			ON CONFLICT (subject, period_start) DO UPDATE SET used = 0, updated_at = excluded.updated_at`,
			ref.Subject, ref.PeriodStart, time.Now())
		return translate(err)
	})
}
