package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/keyplane/keyplane"
	goredis "github.com/redis/go-redis/v9"
)

// DefaultChannel is where instances of one deployment exchange changes.
const DefaultChannel = "keyplane:changes"

// Bus is a keyplane.ChangeBus on Redis pub/sub.
type Bus struct {
	client  *goredis.Client
	channel string
	log     *slog.Logger
}

var _ keyplane.ChangeBus = (*Bus)(nil)

// Open connects to the Redis at url (redis:// or rediss://) and checks that
// it answers. channel "" means DefaultChannel; tests use their own.
func Open(ctx context.Context, url, channel string, log *slog.Logger) (*Bus, error) {
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return nil, errors.New("redis: the URL is malformed: want redis://[user:password@]host:port[/db]")
	}
	if channel == "" {
		channel = DefaultChannel
	}
	if log == nil {
		log = slog.Default()
	}
	// One dial per attempt: Listen retries a lost subscription itself, and
	// go-redis's own retries only stall a publish during an outage.
	opt.DialerRetries = 1
	client := goredis.NewClient(opt)
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("redis: cannot connect to %s: %w", opt.Addr, err)
	}
	return &Bus{client: client, channel: channel, log: log}, nil
}

// SetLogger sends go-redis's own messages ("failed to dial after 1
// attempts", …), which it otherwise prints to stderr past the log format, to
// log at debug level: keyplane logs what matters of an outage itself. It is
// process-wide, like go-redis's logger.
func SetLogger(log *slog.Logger) { goredis.SetLogger(slogPrintf{log}) }

type slogPrintf struct{ log *slog.Logger }

func (l slogPrintf) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

// Close closes the connections.
func (b *Bus) Close() error { return b.client.Close() }

// Publish sends c to every instance; a failure is logged, and the instances
// that miss it see the change within their cache TTL (or when they catch up
// after their own subscription broke).
func (b *Bus) Publish(ctx context.Context, c keyplane.Change) {
	// Detached from the request: the change is committed and must be announced
	// even if the caller hangs up, but not for longer than a second.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := b.client.Publish(ctx, b.channel, c.String()).Err(); err != nil {
		b.log.Warn("could not publish a change; other instances will see it within their cache TTL", "change", c.String(), "error", err)
	}
}

// pingEvery bounds how long a silently dead connection goes unnoticed: a
// quiet channel gets a PING, and no PONG within the next interval is a break.
const pingEvery = 15 * time.Second

// Listen delivers changes to l until ctx ends. Whenever the subscription
// breaks, changes may be lost, so once it is back l catches up on what changed
// since shortly before the break.
func (b *Bus) Listen(ctx context.Context, l keyplane.ChangeListener, ready chan<- struct{}) error {
	watch := &keyplane.SubscriptionWatch{Listener: l, Ready: ready, Log: b.log}
	for ctx.Err() == nil {
		err := b.listenOnce(ctx, l, watch)
		if ctx.Err() != nil {
			break
		}
		watch.Broke(err)
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// listenOnce runs one subscription until it fails. go-redis reconnects a
// subscription by itself after a read error (the new SUBSCRIBE confirmation
// tells watch); a connection that stops answering pings is dropped here and
// a new subscription is made.
func (b *Bus) listenOnce(ctx context.Context, l keyplane.ChangeListener, watch *keyplane.SubscriptionWatch) error {
	ps := b.client.Subscribe(ctx, b.channel)
	// go-redis does not end a blocked read when ctx ends; closing does.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	defer ps.Close()
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, pingEvery)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			var netErr interface{ Timeout() bool }
			if !errors.As(err, &netErr) || !netErr.Timeout() {
				watch.Broke(err) // go-redis resubscribes on the next receive
				time.Sleep(200 * time.Millisecond)
				continue
			}
			if pinged {
				return errors.New("no answer to PING: the connection is dead")
			}
			if err := ps.Ping(ctx); err != nil {
				return err
			}
			pinged = true
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				watch.Subscribed()
			}
		case *goredis.Message:
			c, err := keyplane.ParseChange(m.Payload)
			if err != nil {
				b.log.Warn("ignoring a malformed change message", "error", err)
				continue
			}
			l.ApplyChange(c)
		}
	}
}
