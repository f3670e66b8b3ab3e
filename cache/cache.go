// Package cache keeps verification records in memory (otter) in front of the
// store, so verifying a known key costs no I/O. It caches misses too, so
// unknown keys do not hammer the database; it loads each key once however many
// requests miss it at the same moment; and it serves what it has while it
// refreshes in the background, so a slow or absent database does not stall
// verification.
package cache

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/maypok86/otter/v2"
)

// Defaults; see Config.
const (
	DefaultMaxEntries = 250_000
	DefaultTTL        = 30 * time.Second
	DefaultServeStale = 10 * time.Minute
)

// Config tunes a Cache.
type Config struct {
	// MaxEntries bounds memory: a record is about 1 KB.
	MaxEntries int
	// TTL is how old a record may be before it is reloaded. It bounds how long
	// a change whose message was lost (a bus outage) can go unseen.
	TTL time.Duration
	// ServeStale is how long a record keeps verifying while reloads fail (the
	// database is down). Keys not in the cache fail closed meanwhile.
	ServeStale time.Duration
	// Clock replaces the time source, for tests.
	Clock  otter.Clock
	Logger *slog.Logger
}

// Cache is a keyplane.RecordSource in front of a store.
type Cache struct {
	store  keyplane.RecordSource
	otter  *otter.Cache[[32]byte, entry]
	loader otter.Loader[[32]byte, entry]
	log    *slog.Logger

	// Generations close a race that invalidating entries cannot: a load that
	// read the store before a change and finishes after it. Each entry keeps
	// the generation read before its store read; an entry older than its
	// account's last change, or than the last full clear, is reloaded.
	// (A single key's change needs none of this: otter discards a load that
	// races an invalidation of the same key.)
	generation atomic.Uint64
	clearedAt  atomic.Uint64                             // generation of the last MissedChanges
	accountsAt atomic.Pointer[map[changed]accountChange] // accounts and plans; copy-on-write, read on every verification
	accountsMu sync.Mutex                                // serialises the copies
	serveStale time.Duration
}

// changed names an account or a plan in the map of changes.
type changed struct {
	plan bool
	name string // account id or plan name
}

// accountChange is when an account or plan last changed; once ServeStale has passed,
// every entry read before it has expired and it can be forgotten.
type accountChange struct {
	generation uint64
	at         time.Time
}

var (
	_ keyplane.RecordSource   = (*Cache)(nil)
	_ keyplane.ChangeListener = (*Cache)(nil)
)

// entry is a cached lookup: a record, or nil for a hash no key has, and the
// generation before it was read.
type entry struct {
	rec        *keyplane.VerifyRecord
	generation uint64
}

// New returns a cache in front of store.
func New(store keyplane.RecordSource, cfg Config) (*Cache, error) {
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.ServeStale == 0 {
		cfg.ServeStale = DefaultServeStale
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.MaxEntries < 0:
		return nil, errors.New("cache: the maximum number of entries must be positive")
	case cfg.TTL < 0 || cfg.ServeStale < 0:
		return nil, errors.New("cache: durations must be positive")
	case cfg.ServeStale < cfg.TTL:
		return nil, errors.New("cache: serve-stale must be at least the TTL")
	}
	c := &Cache{store: store, log: cfg.Logger, serveStale: cfg.ServeStale}
	c.accountsAt.Store(&map[changed]accountChange{})
	c.loader = otter.LoaderFunc[[32]byte, entry](c.load)
	var err error
	c.otter, err = otter.New(&otter.Options[[32]byte, entry]{
		MaximumSize: cfg.MaxEntries,
		// A record is replaced in the background once it is TTL old; a reload
		// that fails keeps the old record until it is ServeStale old.
		RefreshCalculator: otter.RefreshWriting[[32]byte, entry](cfg.TTL),
		ExpiryCalculator:  otter.ExpiryWriting[[32]byte, entry](cfg.ServeStale),
		Clock:             cfg.Clock,
		Logger:            otterLogger{cfg.Logger},
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// load reads a record from the store; a missing key is cached as such.
func (c *Cache) load(ctx context.Context, hash [32]byte) (entry, error) {
	gen := c.generation.Load() // before the read: a change after it makes the entry stale
	rec, err := c.store.VerifyRecord(ctx, hash)
	if keyplane.ErrorCode(err) == keyplane.ENOTFOUND {
		return entry{generation: gen}, nil
	} else if err != nil {
		return entry{}, err
	}
	return entry{rec: rec, generation: gen}, nil
}

// stale reports whether a change or a clear came after e was read.
func (c *Cache) stale(e entry) bool {
	if e.generation < c.clearedAt.Load() {
		return true
	}
	if e.rec == nil {
		return false
	}
	changes := *c.accountsAt.Load()
	if len(changes) == 0 {
		return false // nothing changed recently: the common case
	}
	if ch, ok := changes[changed{name: e.rec.Key.AccountID}]; ok && e.generation < ch.generation {
		return true
	}
	ch, ok := changes[changed{plan: true, name: e.rec.Plan}]
	return ok && e.generation < ch.generation
}

// VerifyRecord returns the cached record, loading it on a miss. Records are
// shared: callers must not modify them.
func (c *Cache) VerifyRecord(ctx context.Context, hash [32]byte) (*keyplane.VerifyRecord, error) {
	e, err := c.otter.Get(ctx, hash, c.loader)
	for tries := 0; err == nil && c.stale(e); tries++ {
		if tries == 3 { // changes keep coming: answer from the store itself
			e, err = c.load(ctx, hash)
			break
		}
		c.otter.Invalidate(hash)
		e, err = c.otter.Get(ctx, hash, c.loader)
	}
	if err != nil {
		return nil, err
	}
	if e.rec == nil {
		return nil, errNotFound
	}
	return e.rec, nil
}

var errNotFound = keyplane.Errorf(keyplane.ENOTFOUND, "no key with that hash")

// ApplyChange forgets what a change makes out of date. An account's or a
// plan's change walks the cache: they change rarely, keys are verified
// constantly.
func (c *Cache) ApplyChange(ch keyplane.Change) {
	if ch.AccountID == "" && ch.Plan == "" {
		c.otter.Invalidate(ch.KeyHash)
		return
	}
	what := changed{name: ch.AccountID}
	if ch.Plan != "" {
		what = changed{plan: true, name: ch.Plan}
	}
	c.accountsMu.Lock()
	now := time.Now()
	next := make(map[changed]accountChange, len(*c.accountsAt.Load())+1)
	for id, past := range *c.accountsAt.Load() {
		if now.Sub(past.at) < 2*c.serveStale {
			next[id] = past
		}
	}
	next[what] = accountChange{generation: c.generation.Add(1), at: now}
	c.accountsAt.Store(&next)
	c.accountsMu.Unlock()
	// Free what is cached now; loads in flight are caught by the generation.
	for hash, e := range c.otter.All() {
		if e.rec != nil && (ch.AccountID != "" && e.rec.Key.AccountID == ch.AccountID || ch.Plan != "" && e.rec.Plan == ch.Plan) {
			c.otter.Invalidate(hash)
		}
	}
}

// MissedChanges forgets everything: some change may have gone unseen.
func (c *Cache) MissedChanges() {
	c.log.Warn("cache cleared: change notifications may have been missed")
	c.accountsMu.Lock()
	c.clearedAt.Store(c.generation.Add(1))
	c.accountsAt.Store(&map[changed]accountChange{}) // the clear supersedes every account's change
	c.accountsMu.Unlock()
	c.otter.InvalidateAll()
}

// Len is the number of cached entries, for metrics and tests.
func (c *Cache) Len() int { return c.otter.EstimatedSize() }

// Close stops the cache's background goroutines.
func (c *Cache) Close() { c.otter.StopAllGoroutines() }

// otterLogger sends otter's warnings (failed background refreshes) to slog.
type otterLogger struct{ log *slog.Logger }

func (l otterLogger) Warn(ctx context.Context, msg string, err error) {
	l.log.WarnContext(ctx, "cache: "+msg, "error", err)
}

func (l otterLogger) Error(ctx context.Context, msg string, err error) {
	l.log.ErrorContext(ctx, "cache: "+msg, "error", err)
}
