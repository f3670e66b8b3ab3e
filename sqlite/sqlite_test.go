package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/sqlite"
	"github.com/keyplane/keyplane/sqlite/sqlitetest"
	"github.com/keyplane/keyplane/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) keyplane.Store {
		return open(t, filepath.Join(t.TempDir(), "keyplane.db"))
	})
}

func open(t *testing.T, path string) *rawDB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &rawDB{DB: db, path: path}
}

// rawDB gives the conformance suite what storetest.Raw asks: SQL on the file
// behind the store's back, and a second store on the same file.
type rawDB struct {
	*sqlite.DB
	path string
}

func (r *rawDB) ExecSQL(t *testing.T, statement string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+r.path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(statement); err != nil {
		t.Fatalf("%s: %v", statement, err)
	}
}

func (r *rawDB) OpenAgain(t *testing.T) keyplane.Store { return open(t, r.path) }

// BenchmarkCheckAuditChains is `keyplane audit verify` over 10,000 events in
// ten chains: reading them back and recomputing every hash.
func BenchmarkCheckAuditChains(b *testing.B) {
	db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "keyplane.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const n = 10_000
	events := make([]*keyplane.AuditEvent, n)
	for i := range events {
		events[i] = &keyplane.AuditEvent{ID: fmt.Sprintf("evt_%026d", i), Time: time.Now(), Type: keyplane.AuditKeyUpdated,
			Actor: keyplane.AuditActor{Kind: "token", ID: "tok_1"}, AccountID: fmt.Sprintf("acc_%d", i%10), KeyID: "key_1",
			SourceIP: "192.0.2.1", UserAgent: "curl/8.5", RequestID: "r1", Details: json.RawMessage(`{"fields":["name"]}`)}
	}
	if err := db.AppendAudit(context.Background(), events); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r, err := keyplane.CheckAuditChains(context.Background(), db)
		if err != nil || r.Events != n || len(r.Problems) > 0 {
			b.Fatal(err, r)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// A full disk is the database being unavailable (503), with a message that
// says so and names no file; what is stored can still be read.
func TestFullDiskIsUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyplane.db")
	db := open(t, path)
	ctx := context.Background()
	first := &keyplane.Account{ID: "acc_first", Name: "First", Plan: "default", Status: keyplane.AccountActive, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := db.CreateAccount(ctx, first); err != nil {
		t.Fatal(err)
	}
	db.Close()
	sqlitetest.FillDiskOnOpen(t, path)
	db = open(t, path)
	var err error
	for i := 0; err == nil; i++ {
		if i == 1000 {
			t.Fatal("1000 accounts written to a full disk")
		}
		now := time.Now()
		err = db.CreateAccount(ctx, &keyplane.Account{ID: fmt.Sprintf("acc_%04d", i), Name: fmt.Sprintf("Account %d with a long enough name to fill pages", i),
			Plan: "default", Status: keyplane.AccountActive, CreatedAt: now, UpdatedAt: now})
	}
	if keyplane.ErrorCode(err) != keyplane.EUNAVAILABLE || keyplane.ErrorMessage(err) != "the database is out of disk space" {
		t.Fatalf("writing to a full disk: code %s, message %q (%v); want unavailable, out of disk space", keyplane.ErrorCode(err), keyplane.ErrorMessage(err), err)
	}
	if a, err := db.Account(ctx, first.ID); err != nil || a.Name != "First" {
		t.Fatalf("reading with the disk full: %v %v", a, err)
	}
}
