package main

import (
	"context"
	"strings"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/postgres"
	"github.com/keyplane/keyplane/sqlite"
)

// isPostgres reports whether the --database value selects PostgreSQL.
func isPostgres(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}

// openStore opens and migrates the store the --database value names.
func openStore(ctx context.Context, database string) (keyplane.Store, error) {
	if isPostgres(database) {
		return postgres.Open(ctx, database)
	}
	return sqlite.Open(ctx, sqlitePath(database))
}

// sqlitePath is the file a --database value that is not PostgreSQL names.
func sqlitePath(database string) string { return strings.TrimPrefix(database, "sqlite://") }
