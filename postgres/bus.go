package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyplane/keyplane"
)

// DefaultChannel is the NOTIFY channel of a deployment's changes.
const DefaultChannel = "keyplane_changes"

// Bus is a keyplane.ChangeBus on PostgreSQL's LISTEN/NOTIFY, for clusters
// that share a database but run no Redis.
type Bus struct {
	db      *DB
	channel string
	log     *slog.Logger
}

var _ keyplane.ChangeBus = (*Bus)(nil)

// ChangeBus returns a bus on this database. channel "" means DefaultChannel.
func (db *DB) ChangeBus(channel string, log *slog.Logger) *Bus {
	if channel == "" {
		channel = DefaultChannel
	}
	if log == nil {
		log = slog.Default()
	}
	return &Bus{db: db, channel: channel, log: log}
}

// Publish notifies every listening instance; a failure is logged, and the
// instances that miss it see the change within their cache TTL (or when they
// catch up after their own subscription broke).
func (b *Bus) Publish(ctx context.Context, c keyplane.Change) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if _, err := b.db.pool.Exec(ctx, "SELECT pg_notify($1, $2)", b.channel, c.String()); err != nil {
		b.log.Warn("could not publish a change; other instances will see it within their cache TTL", "change", c.String(), "error", err)
	}
}

// pingEvery bounds how long a silently dead LISTEN connection goes unnoticed:
// a quiet connection is asked SELECT 1, which must answer within a second.
const pingEvery = 15 * time.Second

// Listen holds a connection of its own (a pooled one cannot LISTEN) and
// delivers changes to l until ctx ends. After a lost connection it
// resubscribes, and l catches up on what changed meanwhile.
func (b *Bus) Listen(ctx context.Context, l keyplane.ChangeListener, ready chan<- struct{}) error {
	watch := &keyplane.SubscriptionWatch{Listener: l, Ready: ready, Log: b.log}
	for ctx.Err() == nil {
		err := b.listenOnce(ctx, l, watch.Subscribed)
		if ctx.Err() != nil {
			return nil
		}
		watch.Broke(err)
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond): // a refused dial is cheap; a short wait is a quick recovery
		}
	}
	return nil
}

func (b *Bus) listenOnce(ctx context.Context, l keyplane.ChangeListener, listening func()) error {
	conn, err := pgx.ConnectConfig(ctx, b.db.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{b.channel}.Sanitize()); err != nil {
		return err
	}
	listening()
	for {
		wait, cancel := context.WithTimeout(ctx, pingEvery)
		n, err := conn.WaitForNotification(wait)
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			// Quiet: make sure the connection is alive (a timeout keeps it open).
			ping, cancel := context.WithTimeout(ctx, time.Second)
			_, err = conn.Exec(ping, "SELECT 1")
			cancel()
			if err != nil {
				return fmt.Errorf("no answer to SELECT 1: the connection is dead: %w", err)
			}
			continue
		}
		if err != nil {
			return err
		}
		c, err := keyplane.ParseChange(n.Payload)
		if err != nil {
			b.log.Warn("ignoring a malformed change message", "error", err)
			continue
		}
		l.ApplyChange(c)
	}
}
