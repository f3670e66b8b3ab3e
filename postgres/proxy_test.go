package postgres_test

import (
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/postgres"
	"github.com/keyplane/keyplane/postgres/postgrestest"
)

// TestUnavailableWhileServerDown puts a TCP proxy between the store and the
// server and takes it down, as a database outage looks from the service,
// without stopping the server other tests use.
func TestUnavailableWhileServerDown(t *testing.T) {
	dbURL, p := postgrestest.NewDatabaseBehindProxy(t)
	db, err := postgres.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a := newAccount(t, db, "acc_1")

	p.Down()
	// The first calls meet pooled connections that broke, later ones a server
	// that refuses new connections: both are the database being unavailable.
	for i := range 3 {
		_, err := db.Account(ctx, a.ID)
		t.Logf("while down: %v", err)
		if code := keyplane.ErrorCode(err); code != keyplane.EUNAVAILABLE {
			t.Fatalf("Account %d while down: code %q (%v), want %q", i, code, err, keyplane.EUNAVAILABLE)
		}
	}
	if code := keyplane.ErrorCode(db.Ping(ctx)); code != keyplane.EUNAVAILABLE {
		t.Fatalf("Ping while down: code %q, want %q", code, keyplane.EUNAVAILABLE)
	}
	_, err = db.UpdateAccount(ctx, a.ID, func(*keyplane.Account) error { return nil })
	if code := keyplane.ErrorCode(err); code != keyplane.EUNAVAILABLE {
		t.Fatalf("UpdateAccount while down: code %q (%v), want %q", code, err, keyplane.EUNAVAILABLE)
	}
	quota := keyplane.QuotaRef{Subject: "key_1", PeriodStart: time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)}
	_, addErr := db.AddQuotaUsage(ctx, []keyplane.QuotaDelta{{QuotaRef: quota, Used: 1}, {QuotaRef: quota, Used: 2}})
	_, readErr := db.QuotaUsage(ctx, []keyplane.QuotaRef{quota})
	for name, err := range map[string]error{"AddQuotaUsage": addErr, "QuotaUsage": readErr, "ResetQuotaUsage": db.ResetQuotaUsage(ctx, quota)} {
		if code := keyplane.ErrorCode(err); code != keyplane.EUNAVAILABLE {
			t.Fatalf("%s while down: code %q (%v), want %q", name, code, err, keyplane.EUNAVAILABLE)
		}
	}

	p.Up(t)
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("Ping once the server is back: %v", err)
	}
	if _, err := db.Account(ctx, a.ID); err != nil {
		t.Fatalf("Account once the server is back: %v", err)
	}
}
