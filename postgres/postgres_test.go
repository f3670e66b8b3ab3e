package postgres_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/postgres"
	"github.com/keyplane/keyplane/postgres/postgrestest"
	"github.com/keyplane/keyplane/storetest"
)

var ctx = context.Background()

// openTestDB opens a store on a fresh database that lives as long as the test.
func openTestDB(t testing.TB) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(ctx, postgrestest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	postgrestest.Connect(t, postgrestest.AdminURL()) // without a server, skip once rather than per test
	storetest.Run(t, func(t *testing.T) keyplane.Store {
		t.Parallel() // each test has its own database; overlapping their setup halves the run
		url := postgrestest.NewDatabase(t)
		return &rawDB{DB: openURL(t, url), url: url}
	})
}

func openURL(t *testing.T, url string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rawDB gives the conformance suite what storetest.Raw asks: SQL on the
// database behind the store's back, and a second store (its own pool) on it.
type rawDB struct {
	*postgres.DB
	url string
}

func (r *rawDB) ExecSQL(t *testing.T, statement string) {
	t.Helper()
	conn := postgrestest.Connect(t, r.url)
	if _, err := conn.Exec(ctx, statement); err != nil {
		t.Fatalf("%s: %v", statement, err)
	}
}

func (r *rawDB) OpenAgain(t *testing.T) keyplane.Store { return openURL(t, r.url) }

func TestOpenUnreachableNamesServerNotPassword(t *testing.T) {
	_, err := postgres.Open(ctx, "postgres://root:s3cret-pw@127.0.0.1:1/keyplane?sslmode=disable&connect_timeout=5")
	if err == nil {
		t.Fatal("Open succeeded against a closed port")
	}
	if msg := err.Error(); !strings.Contains(msg, "cannot connect to 127.0.0.1:1") || strings.Contains(msg, "s3cret-pw") {
		t.Fatalf("error should name the server and hide the password: %v", msg)
	}
}

func TestOpenMalformedURLHidesPassword(t *testing.T) {
	_, err := postgres.Open(ctx, "postgres://root:s3cret-pw@127.0.0.1:port/keyplane")
	if err == nil || strings.Contains(err.Error(), "s3cret-pw") {
		t.Fatalf("Open of a malformed URL: %v", err)
	}
}

// TestConcurrentOpen starts instances on an empty database at once: the
// migration lock makes them take turns instead of creating the same tables.
// Without the lock, about one run in five fails: goose's own retry around its
// version table hides the race from two instances, so eight start.
func TestConcurrentOpen(t *testing.T) {
	url := postgrestest.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			db, err := postgres.Open(ctx, url)
			if err == nil {
				err = db.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
	var applied int
	conn := postgrestest.Connect(t, url)
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id = 1`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != 1 {
		t.Fatalf("migration 1 recorded %d times", applied)
	}
	again, err := postgres.Open(ctx, url) // what `keyplane migrate` does
	if err != nil {
		t.Fatalf("opening a migrated database: %v", err)
	}
	again.Close()
}

// TestRecoversAfterBackendsTerminated kills every connection of the pool, as
// a database restart or failover does, and expects the store to reconnect.
func TestRecoversAfterBackendsTerminated(t *testing.T) {
	url := postgrestest.NewDatabase(t)
	db, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a := newAccount(t, db, "acc_1")

	admin := postgrestest.Connect(t, postgrestest.AdminURL())
	name, err := databaseName(url)
	if err != nil {
		t.Fatal(err)
	}
	var killed int
	err = admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()`, name).Scan(&killed)
	if err != nil || killed == 0 {
		t.Fatalf("terminated %d backends: %v", killed, err)
	}

	deadline := time.Now().Add(time.Second)
	for {
		_, err := db.Account(ctx, a.ID)
		if err == nil {
			break
		}
		if code := keyplane.ErrorCode(err); code != keyplane.EUNAVAILABLE {
			t.Fatalf("error on a terminated connection = %q (%v), want %q", code, err, keyplane.EUNAVAILABLE)
		}
		t.Logf("while reconnecting: %v", err)
		if time.Now().After(deadline) {
			t.Fatalf("still failing a second after the backends were terminated: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("Ping after recovery: %v", err)
	}
}

func databaseName(url string) (string, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "", err
	}
	return cfg.Database, nil
}

func newAccount(t testing.TB, db keyplane.Store, id string) *keyplane.Account {
	t.Helper()
	now := time.Now()
	a := &keyplane.Account{ID: id, Name: "Acme", Plan: "free", AllowedScopes: []string{"*"},
		Status: keyplane.AccountActive, CreatedAt: now, UpdatedAt: now}
	if err := db.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	return a
}

// BenchmarkVerifyRecord measures what a verification costs when the key is
// not in the service's cache: one indexed lookup by hash, cycling through
// 1000 keys so that no single row stays hot.
func BenchmarkVerifyRecord(b *testing.B) {
	db := openTestDB(b)
	a := newAccount(b, db, "acc_bench")
	hashes := make([][32]byte, 1000)
	now := time.Now()
	for i := range hashes {
		id := fmt.Sprintf("key_%06d", i)
		hashes[i] = sha256.Sum256([]byte(id))
		k := &keyplane.Key{ID: id, AccountID: a.ID, Name: id, Environment: keyplane.EnvLive, Hash: hashes[i],
			Hint: "kp_live_abcd…wxyz", Scopes: []string{"data:read"}, Enabled: true, CreatedAt: now, UpdatedAt: now}
		if err := db.CreateKey(ctx, k, len(hashes), now); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	for b.Loop() {
		if _, err := db.VerifyRecord(ctx, hashes[i%len(hashes)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
