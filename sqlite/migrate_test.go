package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"

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
