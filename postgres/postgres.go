package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyplane/keyplane"
)

// DB is a keyplane.Store on a pgx connection pool. The pool replaces broken
// connections by itself, so the DB outlives database restarts; pgx's statement
// cache prepares each query once per connection.
type DB struct {
	pool *pgxpool.Pool
}

var _ keyplane.Store = (*DB)(nil)

// Open connects to the database at url, checks that it answers and migrates it.
// Its errors name the server but never the password.
func Open(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, parseError(err)
	}
	server := serverAddress(cfg.ConnConfig.Config)
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// A server whose packets are dropped would otherwise hold start-up
		// (and every reconnect) for the kernel's TCP timeout, minutes.
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: cannot connect to %s: %w", server, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: cannot connect to %s: %w", server, err)
	}
	if err := migrate(ctx, cfg.ConnConfig); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migrate %s: %w", server, err)
	}
	return &DB{pool: pool}, nil
}

// serverAddress is host:port of the first server in the config, for messages.
func serverAddress(cfg pgconn.Config) string {
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}

// parseError reports a malformed URL without its text: pgx masks passwords
// only on a best-effort basis, and the cause it wraps may quote the URL whole.
func parseError(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("postgres: the database URL is malformed")
	}
	return fmt.Errorf("postgres: database URL: %w", err)
}

// Ping reports whether the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return unavailable(err)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// inTx runs fn in a transaction and commits when it returns nil. The audit
// events of the change in progress (an AuditTrail in ctx) are appended in the
// same transaction, after fn, so callbacks inside fn can add them; so are the
// webhook events raised on it (the outbox).
func (db *DB) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return translate(err)
	}
	defer tx.Rollback(ctx) // a no-op once committed
	if err := fn(tx); err != nil {
		return err
	}
	trail := keyplane.AuditTrailFromContext(ctx)
	if err := appendAudit(ctx, tx, trail.Pending()); err != nil {
		return err
	}
	if err := raiseWebhooks(ctx, tx, trail.PendingWebhooks()); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return translate(err)
	}
	trail.Committed()
	return nil
}

// queryer is what reads need: the pool outside transactions, a pgx.Tx inside.
type queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}
