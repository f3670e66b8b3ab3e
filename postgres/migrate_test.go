package postgres

import (
	"context"
	"database/sql"
	"io/fs"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/postgres/postgrestest"
	"github.com/pressly/goose/v3"
)

// Migration 00007 turns the usage rows written before it, whose successes
// had the reported 5xx taken from them, into requests let through and 5xx
// reported, apart; its Down turns them back.
func TestMigration7KeepsUsageCounts(t *testing.T) {
	ctx := context.Background()
	url := postgrestest.NewDatabase(t)
	raw, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, raw, sub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 6); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
	for _, table := range []string{"usage_minutes", "usage_hours", "usage_days"} {
		// key_a: 5 let through, 2 of them answered 5xx, 1 revoked; key_u:
		// three 5xx reported and never verified, as issue #14 stored them.
		_, err := raw.ExecContext(ctx, `INSERT INTO `+table+` (subject, bucket_start, endpoint, account_id, requests, successes, errors,
			revoked, expired, disabled, forbidden, insufficient_scope, rate_limited, quota_exceeded, latency)
			VALUES ('key_a', $1, 'GET /', 'acc_a', 6, 3, 2, 1, 0, 0, 0, 0, 0, 0, NULL), ('key_u', $1, 'GET /', 'acc_a', 0, -3, 3, 0, 0, 0, 0, 0, 0, 0, NULL)`,
			start)
		if err != nil {
			t.Fatal(err)
		}
	}
	db, err := Open(ctx, url) // migrates the rest
	if err != nil {
		t.Fatal(err)
	}
	a := keyplane.UsageCounts{Requests: 6, Valid: 5, UpstreamErrors: 2}
	a.Rejected[keyplane.RejectionIndex(keyplane.VerifyRevoked)] = 1
	for _, g := range keyplane.UsageGranularities {
		for subject, want := range map[string]keyplane.UsageCounts{"key_a": a, "key_u": {UpstreamErrors: 3}} {
			rows, err := db.UsageRows(ctx, keyplane.UsageQuery{Subject: subject, Granularity: g, From: start, To: start.Add(time.Minute)})
			if err != nil || len(rows) != 1 || rows[0].UsageCounts != want {
				t.Errorf("%s by %s: %+v, %v; want %+v", subject, g, rows, err, want)
			}
		}
	}
	db.Close()
	if _, err := p.DownTo(ctx, 6); err != nil {
		t.Fatal(err)
	}
	var successes, errors int64
	if err := raw.QueryRowContext(ctx, `SELECT successes, errors FROM usage_days WHERE subject = 'key_u'`).Scan(&successes, &errors); err != nil ||
		successes != -3 || errors != 3 {
		t.Errorf("after Down: %d successes, %d errors, %v; want -3, 3", successes, errors, err)
	}
}
