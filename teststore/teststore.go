package teststore

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/postgres"
	"github.com/keyplane/keyplane/postgres/postgrestest"
	"github.com/keyplane/keyplane/sqlite"
)

// Kind is "postgres" or "sqlite".
func Kind() string {
	if os.Getenv("KEYPLANE_TEST_STORE") == "postgres" {
		return "postgres"
	}
	return "sqlite"
}

// New returns an empty, migrated store that is closed (and, for PostgreSQL,
// dropped) when the test ends.
func New(t testing.TB) keyplane.Store {
	t.Helper()
	var store keyplane.Store
	var err error
	if Kind() == "postgres" {
		store, err = postgres.Open(context.Background(), postgrestest.NewDatabase(t))
	} else {
		store, err = sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "keyplane.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}
