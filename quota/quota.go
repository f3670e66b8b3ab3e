package quota

import (
	"context"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/periodic"
)

// DefaultFlushInterval is how often charges are written to the store.
const DefaultFlushInterval = time.Second

// DefaultIdleAfter is how long a counter without charges stays in memory.
const DefaultIdleAfter = 10 * time.Minute

// Config tunes a Meter; zero values take the defaults.
type Config struct {
	FlushInterval time.Duration
	IdleAfter     time.Duration
	Logger        *slog.Logger
	// Now is the clock for idleness and period ends; tests inject their own.
	Now func() time.Time
}

// Meter implements keyplane.QuotaMeter on a keyplane.QuotaStore.
type Meter struct {
	store     keyplane.QuotaStore
	log       *slog.Logger
	now       func() time.Time
	idleAfter time.Duration

	seed   maphash.Seed
	shards [shardCount]shard

	flushMu sync.Mutex // one flush at a time
	stop    chan struct{}
	done    chan struct{}
	close   sync.Once
}

const shardCount = 64

type shard struct {
	mu       sync.RWMutex
	counters map[counterKey]*counter
}

type counterKey struct {
	subject string
	start   int64 // period start, Unix microseconds
}

// counter is one subject's usage in one period. Its total is
// base + inflight + pending.
type counter struct {
	mu       sync.Mutex
	evicted  bool  // removed from its shard: charges go to a new counter
	loaded   bool  // base was read from the store (or its load failed and stale is set)
	stale    bool  // base may be behind the store: read it at the next flush
	refused  bool  // its last charge was refused: read it at every flush, a reset may free it
	base     int64 // the store's total when last seen, with this instance's flushed charges
	inflight int64 // charges being written by the flush under way
	pending  int64 // charges not yet written
	end      time.Time
	lastUsed time.Time
}

// New returns a Meter that flushes every cfg.FlushInterval until Close.
func New(store keyplane.QuotaStore, cfg Config) *Meter {
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.IdleAfter <= 0 {
		cfg.IdleAfter = DefaultIdleAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Meter{store: store, log: cfg.Logger, now: cfg.Now, idleAfter: cfg.IdleAfter, seed: maphash.MakeSeed(),
		stop: make(chan struct{}), done: make(chan struct{})}
	for i := range m.shards {
		m.shards[i].counters = make(map[counterKey]*counter)
	}
	go m.run(cfg.FlushInterval)
	return m
}

func (m *Meter) run(every time.Duration) {
	defer close(m.done)
	periodic.Flush(every, 10*time.Second, m.stop, m.Flush, m.log, "quota usage not written; will retry")
}

// Close stops the periodic flush and writes what is left. Charges after
// Close are counted but no longer written.
func (m *Meter) Close(ctx context.Context) error {
	m.close.Do(func() { close(m.stop) })
	<-m.done
	return m.Flush(ctx)
}

// Charge implements keyplane.QuotaMeter.
func (m *Meter) Charge(ctx context.Context, q *keyplane.Quota, subject string, cost int64, now time.Time) (keyplane.QuotaState, bool, error) {
	start, end := q.PeriodAt(now)
	c := m.lockedCounter(ctx, subject, start, end)
	defer c.mu.Unlock()
	c.lastUsed = now
	used := c.used()
	// Compared as a difference: used + cost could overflow near 2⁶³.
	if cost > 0 && cost > q.Limit-used {
		c.refused = true
		return state(q, used, start, end), false, nil
	}
	c.pending += cost
	c.refused = false
	return state(q, used+cost, start, end), true, nil
}

// Refund implements keyplane.QuotaMeter.
func (m *Meter) Refund(q *keyplane.Quota, subject string, cost int64, now time.Time) {
	start, _ := q.PeriodAt(now)
	sh := m.shard(subject)
	sh.mu.RLock()
	c := sh.counters[counterKey{subject, start.UnixMicro()}]
	sh.mu.RUnlock()
	if c == nil {
		return // flushed and evicted already: too late to matter
	}
	c.mu.Lock()
	c.pending -= cost // may go negative: the store clamps the total at 0
	c.mu.Unlock()
}

// Usage implements keyplane.QuotaMeter.
func (m *Meter) Usage(ctx context.Context, q *keyplane.Quota, subject string, now time.Time) (keyplane.QuotaState, error) {
	start, end := q.PeriodAt(now)
	c := m.lockedCounter(ctx, subject, start, end)
	defer c.mu.Unlock()
	if c.stale {
		return keyplane.QuotaState{}, keyplane.Errorf(keyplane.EUNAVAILABLE, "quota usage cannot be read: the database is unavailable")
	}
	return state(q, c.used(), start, end), nil
}

// Reset implements keyplane.QuotaMeter. Other instances see the reset at
// their next flush.
func (m *Meter) Reset(ctx context.Context, q *keyplane.Quota, subject string, now time.Time) error {
	start, _ := q.PeriodAt(now)
	if err := m.store.ResetQuotaUsage(ctx, keyplane.QuotaRef{Subject: subject, PeriodStart: start}); err != nil {
		return err
	}
	sh := m.shard(subject)
	sh.mu.RLock()
	c := sh.counters[counterKey{subject, start.UnixMicro()}]
	sh.mu.RUnlock()
	if c != nil {
		c.mu.Lock()
		c.base, c.pending, c.stale, c.loaded = 0, 0, false, true
		c.mu.Unlock()
	}
	return nil
}

func state(q *keyplane.Quota, used int64, start, end time.Time) keyplane.QuotaState {
	return keyplane.QuotaState{Limit: q.Limit, Used: used, Remaining: max(q.Limit-used, 0), Period: q.Period, PeriodStart: start, ResetsAt: end}
}

func (c *counter) used() int64 { return max(c.base+c.inflight+c.pending, 0) }

func (m *Meter) shard(subject string) *shard {
	return &m.shards[maphash.String(m.seed, subject)%shardCount]
}

// lockedCounter returns the subject's counter for the period, locked and
// loaded. Loading reads the store once per subject, period and instance;
// concurrent callers wait for that one read. When the store cannot answer,
// the count starts from zero and is corrected at the next flush: a database
// outage must not stop verification.
func (m *Meter) lockedCounter(ctx context.Context, subject string, start, end time.Time) *counter {
	key := counterKey{subject, start.UnixMicro()}
	sh := m.shard(subject)
	for {
		sh.mu.RLock()
		c := sh.counters[key]
		sh.mu.RUnlock()
		if c == nil {
			sh.mu.Lock()
			if c = sh.counters[key]; c == nil {
				c = &counter{end: end}
				sh.counters[key] = c
			}
			sh.mu.Unlock()
		}
		c.mu.Lock()
		if c.evicted {
			c.mu.Unlock()
			continue
		}
		if !c.loaded {
			used, err := m.store.QuotaUsage(ctx, []keyplane.QuotaRef{{Subject: subject, PeriodStart: start}})
			if err != nil {
				m.log.Warn("quota usage not loaded; counting from zero until the database answers", "subject", subject, "err", err)
				c.stale = true
			} else {
				c.base = used[0]
			}
			c.loaded = true
		}
		return c
	}
}

// Flush writes the charges counted since the last flush and reads back the
// totals, which include other instances' charges; it re-reads counters that
// are refusing charges or could not be loaded. It drops counters whose period
// ended or that were idle too long, once nothing of theirs is unwritten.
func (m *Meter) Flush(ctx context.Context) error {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	now := m.now()
	var (
		writes   []keyplane.QuotaDelta
		written  []*counter
		reads    []keyplane.QuotaRef
		reread   []*counter
		flushErr error
	)
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for key, c := range sh.counters {
			// A counter being loaded holds its lock across a database
			// read: skip it rather than stall the shard's verifications.
			if !c.mu.TryLock() {
				continue
			}
			ref := keyplane.QuotaRef{Subject: key.subject, PeriodStart: time.UnixMicro(key.start).UTC()}
			switch {
			case c.pending != 0:
				c.inflight, c.pending = c.pending, 0
				writes = append(writes, keyplane.QuotaDelta{QuotaRef: ref, Used: c.inflight})
				written = append(written, c)
			case !now.Before(c.end) || now.Sub(c.lastUsed) > m.idleAfter:
				c.evicted = true
				delete(sh.counters, key)
			case c.stale || c.refused:
				reads = append(reads, ref)
				reread = append(reread, c)
			}
			c.mu.Unlock()
		}
		sh.mu.Unlock()
	}
	if len(writes) > 0 {
		totals, err := m.store.AddQuotaUsage(ctx, writes)
		for i, c := range written {
			c.mu.Lock()
			if err != nil {
				c.pending += c.inflight // counted again at the next flush
			} else {
				c.base, c.stale = totals[i], false
			}
			c.inflight = 0
			c.mu.Unlock()
		}
		flushErr = err
	}
	if len(reads) > 0 {
		totals, err := m.store.QuotaUsage(ctx, reads)
		if err == nil {
			for i, c := range reread {
				c.mu.Lock()
				c.base, c.stale = totals[i], false
				c.mu.Unlock()
			}
		} else if flushErr == nil {
			flushErr = err
		}
	}
	return flushErr
}
