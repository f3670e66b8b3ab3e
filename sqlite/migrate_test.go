package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/pressly/goose/v3"
)

// Migration 00011 rebuilds the members table (SQLite cannot drop a UNIQUE):
// a database with members and their sessions keeps both, and its emails
// become unique per account.
func TestMemberEmailMigrationKeepsMembersAndSessions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	old.SetMaxOpenConns(1)
	sub, _ := fs.Sub(migrations, "migrations")
	p, err := goose.NewProvider(goose.DialectSQLite3, old, sub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 6); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO accounts VALUES ('acc_a', 'A', 'default', '[]', 'active', 1, 1), ('acc_b', 'B', 'default', '[]', 'active', 1, 1)`,
		`INSERT INTO members VALUES ('mem_1', 'acc_a', 'ada@example.com', '$argon2id$x', 'owner', 'active', 1, 2)`,
		`INSERT INTO member_sessions VALUES ('ses_1', x'0100000000000000000000000000000000000000000000000000000000000000', 'mem_1', 'acc_a', 1, 1, 9)`,
	} {
		if _, err := old.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	old.Close()

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, err := db.MemberByEmail(ctx, "acc_a", "ada@example.com")
	if err != nil || m.ID != "mem_1" || m.PasswordHash != "$argon2id$x" || m.Role != keyplane.MemberOwner || m.UpdatedAt.UnixMicro() != 2 {
		t.Fatalf("member after migrating: %+v, %v", m, err)
	}
	if s, err := db.SessionByHash(ctx, [32]byte{1}); err != nil || s.ID != "ses_1" || s.MemberID != "mem_1" || s.ExpiresAt.UnixMicro() != 9 {
		t.Fatalf("session after migrating: %+v, %v", s, err)
	}
	var violations int
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM pragma_foreign_key_check`).Scan(&violations); err != nil || violations != 0 {
		t.Fatalf("foreign key violations %d, %v", violations, err)
	}
	// The session still points at a member: deleting the member is refused.
	if _, err := db.write.ExecContext(ctx, `DELETE FROM members WHERE id = 'mem_1'`); err == nil {
		t.Fatal("a member with a session was deleted: the foreign key is gone")
	}
	other := &keyplane.Member{ID: "mem_2", AccountID: "acc_b", Email: "ada@example.com", PasswordHash: "$argon2id$y", Role: keyplane.MemberViewer, Status: keyplane.MemberActive}
	if err := db.CreateMember(ctx, other, nil); err != nil {
		t.Fatalf("the same email in another account: %v", err)
	}
	again := *other
	again.ID = "mem_3"
	if err := db.CreateMember(ctx, &again, nil); keyplane.ErrorCode(err) != keyplane.ECONFLICT {
		t.Fatalf("the same email twice in one account: %v", err)
	}
}

// migrations7 opens the file at path with goose, without the store.
func migrations7(t *testing.T, path string) (*goose.Provider, *sql.DB) {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, raw, sub)
	if err != nil {
		t.Fatal(err)
	}
	return p, raw
}

// Migration 00007 turns the usage rows written before it, whose successes
// had the reported 5xx taken from them, into requests let through and 5xx
// reported, apart; its Down turns them back.
func TestMigration7KeepsUsageCounts(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyplane.db")
	p, raw := migrations7(t, path)
	if _, err := p.UpTo(ctx, 6); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
	for _, table := range []string{"usage_minutes", "usage_hours", "usage_days"} {
		// key_a: 5 let through, 2 of them answered 5xx, 1 revoked; key_u:
		// three 5xx reported and never verified, as issue #14 stored them.
		_, err := raw.ExecContext(ctx, `INSERT INTO `+table+` (subject, bucket_start, endpoint, account_id, requests, successes, errors,
			revoked, expired, disabled, forbidden, insufficient_scope, rate_limited, quota_exceeded, latency)
			VALUES ('key_a', ?, 'GET /', 'acc_a', 6, 3, 2, 1, 0, 0, 0, 0, 0, 0, NULL), ('key_u', ?, 'GET /', 'acc_a', 0, -3, 3, 0, 0, 0, 0, 0, 0, 0, NULL)`,
			micros(start), micros(start))
		if err != nil {
			t.Fatal(err)
		}
	}
	db, err := Open(ctx, path) // migrates the rest
	if err != nil {
		t.Fatal(err)
	}
	a := keyplane.UsageCounts{Requests: 6, Valid: 5, UpstreamErrors: 2}
	a.Rejected[keyplane.RejectionIndex(keyplane.VerifyRevoked)] = 1
	for _, g := range keyplane.UsageGranularities {
		for subject, want := range map[string]keyplane.UsageCounts{
			"key_a": a,
			"key_u": {UpstreamErrors: 3},
		} {
			rows, err := db.UsageRows(ctx, keyplane.UsageQuery{Subject: subject, Granularity: g, From: start, To: start.Add(time.Minute)})
			if err != nil || len(rows) != 1 || rows[0].UsageCounts != want {
				t.Errorf("%s by %s: %+v, %v; want %+v", subject, g, rows, err, want)
			}
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 6); err != nil {
		t.Fatal(err)
	}
	var successes, errors int64
	if err := raw.QueryRowContext(ctx, `SELECT successes, errors FROM usage_days WHERE subject = 'key_u'`).Scan(&successes, &errors); err != nil ||
		successes != -3 || errors != 3 {
		t.Errorf("after Down: %d successes, %d errors, %v; want -3, 3", successes, errors, err)
	}
}
