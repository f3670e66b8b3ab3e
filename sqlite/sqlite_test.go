package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/sqlite"
	"github.com/keyplane/keyplane/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) keyplane.Store {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "keyplane.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
