package webhooks

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/keyplane/keyplane"
)

// Defaults of a Scheduler.
const (
	DefaultScanInterval = time.Minute
	DefaultRetention    = 30 * 24 * time.Hour
)

// expiryScans are the events raised as keys approach and pass their expiry:
// each scan raises, for every key whose expiry minus before it has passed
// since its last run, one event.
var expiryScans = []struct {
	name, typ string
	before    time.Duration
}{
	{"key.expiring.7d", keyplane.EventKeyExpiring, 7 * 24 * time.Hour},
	{"key.expiring.1d", keyplane.EventKeyExpiring, 24 * time.Hour},
	{"key.expired", keyplane.EventKeyExpired, 0},
}

// scanBatch bounds the keys one scan step reads.
const scanBatch = 1000

// SchedulerConfig tunes a Scheduler; zero values take the defaults.
type SchedulerConfig struct {
	Store    keyplane.Store
	Interval time.Duration
	// Retention is how long messages and their attempts are kept once
	// their deliveries have ended.
	Retention time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
	// Raised is told when a scan raised events, to wake the dispatcher.
	Raised func()
}

// Scheduler raises the events no request causes: key.expiring (7 days
// and 1 day ahead) and key.expired. Each scan keeps how far it has run in
// the database and moves it in the transaction that raises its events, so
// each event is raised once across restarts and instances; a scan that
// fell behind (the server was down) catches up.
type Scheduler struct {
	cfg SchedulerConfig
}

// NewScheduler returns a scheduler; Run starts it.
func NewScheduler(cfg SchedulerConfig) *Scheduler {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultScanInterval
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Raised == nil {
		cfg.Raised = func() {}
	}
	return &Scheduler{cfg: cfg}
}

// Run scans every interval until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if err := s.Scan(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("webhooks: scheduled events not raised; will retry", "error", err)
		}
		if _, err := s.cfg.Store.PruneWebhookMessages(ctx, s.cfg.Now().Add(-s.cfg.Retention)); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("webhooks: old messages not pruned; will retry", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Scan runs every scan up to now.
func (s *Scheduler) Scan(ctx context.Context) error {
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	for _, sc := range expiryScans {
		if err := s.scanExpiry(ctx, sc.name, sc.typ, sc.before, now); err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
	}
	return nil
}

// scanExpiry raises typ for the keys whose expiry minus before lies in
// (where the scan stands, now], a batch at a time.
func (s *Scheduler) scanExpiry(ctx context.Context, name, typ string, before time.Duration, now time.Time) error {
	for {
		from, err := s.cfg.Store.WebhookSchedule(ctx, name)
		if err != nil {
			return err
		}
		if from.IsZero() {
			// First run: from now on. Keys that crossed before keyplane
			// raised these events are not announced late.
			_, err := s.cfg.Store.AdvanceWebhookSchedule(ctx, name, time.Time{}, now, nil)
			return err
		}
		if !from.Before(now) {
			return nil
		}
		keys, err := s.cfg.Store.KeysExpiringBetween(ctx, from.Add(before), now.Add(before), scanBatch)
		if err != nil {
			return err
		}
		to := now
		if len(keys) == scanBatch {
			// Stop short of the last expiry read: keys sharing it may
			// lie beyond the batch, and the next step starts there.
			last := *keys[len(keys)-1].ExpiresAt
			n := len(keys)
			for n > 0 && keys[n-1].ExpiresAt.Equal(last) {
				n--
			}
			if n > 0 {
				keys, to = keys[:n], last.Add(-before-time.Microsecond)
			} else {
				to = last.Add(-before) // one expiry shared by a whole batch: take what was read
			}
		}
		var events []*keyplane.WebhookEvent
		for _, k := range keys {
			if typ == keyplane.EventKeyExpiring && !k.ExpiresAt.After(now) {
				continue // already expired: key.expired says so
			}
			ev := KeyEvent(typ, k, now, map[string]any{"expires_at": k.ExpiresAt})
			if typ == keyplane.EventKeyExpiring {
				ev = KeyEvent(typ, k, now, map[string]any{"expires_at": k.ExpiresAt, "expires_in_seconds": int64(before / time.Second)})
			}
			ev.Once = fmt.Sprintf("%s:%s:%d", name, k.ID, k.ExpiresAt.UnixMicro())
			events = append(events, ev)
		}
		moved, err := s.cfg.Store.AdvanceWebhookSchedule(ctx, name, from, to, events)
		if err != nil {
			return err
		}
		if moved && len(events) > 0 {
			s.cfg.Raised()
		}
		if !moved || !to.Before(now) {
			return nil // done, or another instance is on it
		}
	}
}
