package postgrestest

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/keyplane/keyplane/tcpproxy"
)

// DefaultAdminURL is the local development server, which trusts root.
const DefaultAdminURL = "postgres://root@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the server tests use: $KEYPLANE_TEST_POSTGRES or DefaultAdminURL.
// Its user must be allowed to create and drop databases.
func AdminURL() string {
	return cmp.Or(os.Getenv("KEYPLANE_TEST_POSTGRES"), DefaultAdminURL)
}

// NewDatabase creates an empty database, drops it when the test ends, and
// returns its URL. Without a server it skips the test, except in CI
// (CI=true), where a missing server must fail the build rather than hide it.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminURL()
	u, err := url.Parse(admin)
	if err != nil || u.Scheme == "" {
		t.Fatal("postgrestest: KEYPLANE_TEST_POSTGRES must be a postgres:// URL")
	}
	conn := connect(t, admin)
	defer conn.Close(context.Background())

	name := "keyplane_test_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("postgrestest: create database %s: %v", name, err)
	}
	t.Cleanup(func() { dropDatabase(t, admin, name) })

	u.Path = "/" + name
	return u.String()
}

// Connect opens one connection to the server at connString, for tests that need to
// act as an administrator; it skips or fails as NewDatabase does when the
// server is unreachable, and closes the connection when the test ends.
func Connect(t testing.TB, connString string) *pgx.Conn {
	t.Helper()
	conn := connect(t, connString)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func connect(t testing.TB, connString string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return conn
	case errors.As(err, &pe): // the server answered: a setup mistake, not a missing server
		t.Fatalf("postgrestest: %v", err)
	case os.Getenv("CI") == "true":
		t.Fatalf("postgrestest: PostgreSQL is required in CI: %v", err)
	default:
		t.Skipf("postgrestest: no PostgreSQL (set KEYPLANE_TEST_POSTGRES to an admin URL): %v", err)
	}
	return nil
}

func dropDatabase(t testing.TB, admin, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Errorf("postgrestest: drop database %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	// FORCE ends connections a test left open, such as a pool it never closed.
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("postgrestest: drop database %s: %v", name, err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails; see crypto/rand.Read
	return hex.EncodeToString(b)
}

// NewDatabaseBehindProxy is NewDatabase reached through a tcpproxy.Proxy; the
// URL it returns points at the proxy.
func NewDatabaseBehindProxy(t testing.TB) (string, *tcpproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	p := tcpproxy.Start(t, u.Host)
	u.Host = p.Addr()
	return u.String(), p
}
