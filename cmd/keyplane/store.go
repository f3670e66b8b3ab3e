package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/postgres"
	"github.com/keyplane/keyplane/sqlite"
)

// isPostgres reports whether the --database value selects PostgreSQL.
func isPostgres(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}

// openStore opens and migrates the store the --database value names,
// creating a SQLite file that does not exist yet (serve, migrate).
func openStore(ctx context.Context, database string) (keyplane.Store, error) {
	if isPostgres(database) {
		return postgres.Open(ctx, database)
	}
	if scheme, _, ok := strings.Cut(database, "://"); ok && scheme != "sqlite" {
		return nil, fmt.Errorf("--database %s://…: unknown kind of database; want a SQLite file path (or sqlite://path) or a postgres:// URL", scheme)
	}
	return sqlite.Open(ctx, sqlitePath(database))
}

// openExistingStore is openStore for commands that read or change what a
// server made (token, member, audit): a SQLite path that does not exist is a
// typo, not a new, empty database.
func openExistingStore(ctx context.Context, database string) (keyplane.Store, error) {
	if !isPostgres(database) && !strings.Contains(database, "://") {
		if _, err := os.Stat(sqlitePath(database)); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("--database %s: no such SQLite file (keyplane serve or keyplane migrate creates it)", database)
		}
	}
	return openStore(ctx, database)
}

// sqlitePath is the file a --database value that is not PostgreSQL names.
func sqlitePath(database string) string { return strings.TrimPrefix(database, "sqlite://") }
