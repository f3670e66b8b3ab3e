package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"

	"github.com/gofrs/flock"
	"github.com/keyplane/keyplane"
	"github.com/pressly/goose/v3"
	sqlitedriver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is a keyplane.Store on one SQLite file. Writes go through a single
// connection (SQLite allows one writer; queuing in Go beats spinning on the
// busy lock) in BEGIN IMMEDIATE transactions; reads use a pool that WAL lets
// run beside the writer.
type DB struct {
	write *sql.DB
	read  *sql.DB
	path  string

	// verifyStmt is prepared once: verification is the hot read, and
	// re-preparing its join on every call costs more than running it.
	verifyStmt *sql.Stmt
}

var _ keyplane.Store = (*DB)(nil)

// Open opens (creating if needed) the SQLite file at path and migrates it.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, fmt.Errorf("sqlite: empty database path")
	}
	pragmas := "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + pragmas
	write, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetConnMaxIdleTime(0)
	db := &DB{write: write, path: path}
	if err := db.migrate(ctx); err != nil {
		write.Close()
		return nil, err
	}
	read, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)")
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	read.SetMaxOpenConns(8)
	read.SetMaxIdleConns(8)
	db.read = read
	if db.verifyStmt, err = read.PrepareContext(ctx, verifyRecordQuery); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	return db, nil
}

func (db *DB) migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	// Out of order: features developed side by side number their migrations
	// ahead of time, and a database may have seen a later one first.
	p, err := goose.NewProvider(goose.DialectSQLite3, db.write, sub, goose.WithAllowOutofOrder(true))
	if err != nil {
		return fmt.Errorf("sqlite: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", db.path, err)
	}
	return nil
}

// Ping reports whether the file can be read.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.read.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return unavailable(err)
	}
	return nil
}

// LockForServing makes sure only one server uses the file at path: another
// would never hear of this one's changes (there is no change bus between
// them) and keep verifying revoked keys from its cache. Take it before Open,
// so a second server does not migrate a file the first is using. The lock is
// on a file beside the database (path + ".lock", after following symlinks,
// so two names of one file share it), held until release; the system drops
// it when the process dies, however it dies. Short commands (token create,
// audit verify) do not take it: they may run beside the server.
func LockForServing(path string) (release func() error, err error) {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	l := flock.New(path + ".lock")
	ok, err := l.TryLock()
	if err != nil {
		return nil, fmt.Errorf("sqlite: lock %s: %w", path, err)
	}
	if !ok {
		return nil, fmt.Errorf("sqlite: another keyplane serve is already using %s; run one server per SQLite file, or use PostgreSQL (--database postgres://…) to run several", path)
	}
	return l.Unlock, nil
}

// Close closes both pools.
func (db *DB) Close() error {
	var errs []error
	if db.verifyStmt != nil {
		errs = append(errs, db.verifyStmt.Close())
	}
	if db.read != nil {
		errs = append(errs, db.read.Close())
	}
	errs = append(errs, db.write.Close())
	return errors.Join(errs...)
}

// inTx runs fn in a write transaction and commits when it returns nil. The
// audit events of the change in progress (an AuditTrail in ctx) are appended
// in the same transaction, after fn, so callbacks inside fn can add them;
// so are the webhook events raised on it (the outbox).
func (db *DB) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	defer tx.Rollback()
	// translate again: a statement inside may have returned a driver error
	// as it was (it passes application errors through).
	if err := fn(tx); err != nil {
		return translate(err)
	}
	trail := keyplane.AuditTrailFromContext(ctx)
	if err := appendAudit(ctx, tx, trail.Pending()); err != nil {
		return translate(err)
	}
	if err := raiseWebhooks(ctx, tx, trail.PendingWebhooks()); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return translate(err)
	}
	trail.Committed()
	return nil
}

// translate turns driver errors into application errors where they mean
// one; it and unavailable are where this package maps errors.
func translate(err error) error {
	var ke *keyplane.Error
	var se *sqlitedriver.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ke):
		return err // mapped already
	case errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY):
		return keyplane.Errorf(keyplane.ECONFLICT, "already exists")
	case errors.As(err, &se) && (se.Code()&0xff == sqlite3.SQLITE_BUSY || se.Code()&0xff == sqlite3.SQLITE_LOCKED ||
		se.Code()&0xff == sqlite3.SQLITE_CANTOPEN || se.Code()&0xff == sqlite3.SQLITE_IOERR || se.Code()&0xff == sqlite3.SQLITE_FULL):
		return unavailable(err)
	}
	return fmt.Errorf("sqlite: %w", err)
}

// unavailable is the error of a database that cannot serve now but will
// without a restart. A full disk says so: reads still work, and writes will
// again once there is room, but the operator has to make it.
func unavailable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var se *sqlitedriver.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL {
		return &keyplane.Error{Code: keyplane.EUNAVAILABLE, Message: "the database is out of disk space", Err: err}
	}
	return &keyplane.Error{Code: keyplane.EUNAVAILABLE, Message: "the database is unavailable", Err: err}
}
