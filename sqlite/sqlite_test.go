package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/sqlite"
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
