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
	// ServeStale is how long a record or token keeps verifying while reloads
	// fail (the database is down). Keys not in the cache fail closed meanwhile.
	ServeStale time.Duration
	// Clock replaces the time source, for tests.
	Clock  otter.Clock
	Logger *slog.Logger
}

// Source is what a Cache reads through: the store.
type Source interface {
	keyplane.RecordSource
	keyplane.TokenSource
	keyplane.ChangeLog
}

// Cache is a keyplane.RecordSource and keyplane.TokenSource in front of a store.
type Cache struct {
	store  Source
	otter  *otter.Cache[[32]byte, entry]
	loader otter.Loader[[32]byte, entry]
	log    *slog.Logger

	tokens      *otter.Cache[[32]byte, *keyplane.Token]
	tokenLoader otter.Loader[[32]byte, *keyplane.Token]

	// Catching up after a broken subscription: the earliest moment not yet
	// caught up on (zero when none), whether a goroutine retries it, and a
	// lock that runs one catch-up at a time.
	catchMu      sync.Mutex
	catchPending time.Time
	catchRetry   bool
	catchSeq     uint64 // bumped by every MissedChanges
	catchRun     sync.Mutex
	closed       chan struct{}
	closeOnce    sync.Once
	closing      context.Context // cancelled by Close, so a catch-up in flight ends
	cancel       context.CancelFunc
	wg           sync.WaitGroup

	// Generations close a race that invalidating entries cannot: a load that
	// read the store before a change and finishes after it. Each entry keeps
	// the generation read before its store read; an entry older than its
	// account's last change is reloaded. (A single key's change needs none of
	// this: otter discards a load that races an invalidation of the same key.)
	generation atomic.Uint64
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
	_ keyplane.TokenSource    = (*Cache)(nil)
	_ keyplane.ChangeListener = (*Cache)(nil)
)

// maxTokens bounds the token cache: deployments have a handful of tokens.
const maxTokens = 10_000

// entry is a cached lookup: a record, or nil for a hash no key has, and the
// generation before it was read.
type entry struct {
	rec        *keyplane.VerifyRecord
	generation uint64
}

// New returns a cache in front of store.
func New(store Source, cfg Config) (*Cache, error) {
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
	c := &Cache{store: store, log: cfg.Logger, serveStale: cfg.ServeStale, closed: make(chan struct{})}
	c.closing, c.cancel = context.WithCancel(context.Background())
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
	// Tokens the same way: the caller's token must keep working through an
	// outage as long as the keys it verifies. Unknown tokens are not cached.
	c.tokenLoader = otter.LoaderFunc[[32]byte, *keyplane.Token](func(ctx context.Context, hash [32]byte) (*keyplane.Token, error) {
		t, err := store.TokenByHash(ctx, hash)
		if keyplane.ErrorCode(err) == keyplane.ENOTFOUND {
			return nil, otter.ErrNotFound // a refresh that finds none drops the entry
		}
		return t, err
	})
	c.tokens, err = otter.New(&otter.Options[[32]byte, *keyplane.Token]{
		MaximumSize:       maxTokens,
		RefreshCalculator: otter.RefreshWriting[[32]byte, *keyplane.Token](cfg.TTL),
		ExpiryCalculator:  otter.ExpiryWriting[[32]byte, *keyplane.Token](cfg.ServeStale),
		Clock:             cfg.Clock,
		Logger:            otterLogger{cfg.Logger},
	})
	if err != nil {
		c.otter.StopAllGoroutines()
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

// stale reports whether a change of its account or plan came after e was read.
func (c *Cache) stale(e entry) bool {
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

// TokenByHash returns the cached operator token, loading it on a miss; a
// token that is not found is not cached.
func (c *Cache) TokenByHash(ctx context.Context, hash [32]byte) (*keyplane.Token, error) {
	t, err := c.tokens.Get(ctx, hash, c.tokenLoader)
	if errors.Is(err, otter.ErrNotFound) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "no token with that hash")
	}
	return t, err
}

// ApplyChange forgets what a change makes out of date.
func (c *Cache) ApplyChange(ch keyplane.Change) { c.applyChanges([]keyplane.Change{ch}) }

// applyChanges forgets what changes make out of date. Accounts' and plans'
// changes walk the cache once for all of them: they change rarely, keys are
// verified constantly.
func (c *Cache) applyChanges(changes []keyplane.Change) {
	var groups map[changed]bool
	for _, ch := range changes {
		switch {
		case ch.Token:
			c.tokens.Invalidate(ch.KeyHash)
		case ch.Plan != "":
			groups = addGroup(groups, changed{plan: true, name: ch.Plan})
		case ch.AccountID != "":
			groups = addGroup(groups, changed{name: ch.AccountID})
		default:
			c.otter.Invalidate(ch.KeyHash)
		}
	}
	if len(groups) == 0 {
		return
	}
	c.accountsMu.Lock()
	now := time.Now()
	next := make(map[changed]accountChange, len(*c.accountsAt.Load())+len(groups))
	for id, past := range *c.accountsAt.Load() {
		if now.Sub(past.at) < 2*c.serveStale {
			next[id] = past
		}
	}
	gen := c.generation.Add(1)
	for what := range groups {
		next[what] = accountChange{generation: gen, at: now}
	}
	c.accountsAt.Store(&next)
	c.accountsMu.Unlock()
	// Free what is cached now; loads in flight are caught by the generation.
	for hash, e := range c.otter.All() {
		if e.rec != nil && (groups[changed{name: e.rec.Key.AccountID}] || groups[changed{plan: true, name: e.rec.Plan}]) {
			c.otter.Invalidate(hash)
		}
	}
}

func addGroup(groups map[changed]bool, what changed) map[changed]bool {
	if groups == nil {
		groups = map[changed]bool{}
	}
	groups[what] = true
	return groups
}

// MissedChanges catches up on what changed since the moment given, from the
// store's change log, keeping everything cached: a lost subscription must
// not turn into a verification outage. The first attempt runs before it
// returns; while the store does not answer, a goroutine retries with backoff
// and cached entries keep serving (within ServeStale).
func (c *Cache) MissedChanges(since time.Time) {
	// Nothing cached now was loaded before ServeStale ago, so nothing older
	// needs catching up on: this bounds the query after a long break.
	if floor := time.Now().Add(-c.serveStale - keyplane.CatchUpMargin); since.Before(floor) {
		since = floor
	}
	c.catchMu.Lock()
	if c.catchPending.IsZero() || since.Before(c.catchPending) {
		c.catchPending = since
	}
	c.catchSeq++
	c.catchMu.Unlock()
	if c.catchUp(2 * time.Second) {
		return
	}
	c.catchMu.Lock()
	defer c.catchMu.Unlock()
	if !c.catchRetry && !c.catchPending.IsZero() {
		c.catchRetry = true
		c.wg.Add(1)
		go c.retryCatchUp()
	}
}

// catchUp applies the changes since the pending moment; it reports false
// when the store did not answer.
func (c *Cache) catchUp(timeout time.Duration) bool {
	c.catchRun.Lock()
	defer c.catchRun.Unlock()
	c.catchMu.Lock()
	since, seq := c.catchPending, c.catchSeq
	c.catchMu.Unlock()
	if since.IsZero() {
		return true
	}
	ctx, cancel := context.WithTimeout(c.closing, timeout)
	defer cancel()
	changes, err := c.store.ChangesSince(ctx, since)
	if err != nil {
		c.log.Warn("cache: could not catch up on missed changes yet; cached keys keep verifying", "since", since.UTC().Format(time.RFC3339), "error", err)
		return false
	}
	if err := c.refreshChanged(ctx, changes); err != nil {
		c.log.Warn("cache: could not reload what changed while the subscription was down; cached keys keep verifying", "since", since.UTC().Format(time.RFC3339), "error", err)
		return false
	}
	c.catchMu.Lock()
	if c.catchSeq == seq { // else another MissedChanges came meanwhile: it runs next
		c.catchPending = time.Time{}
	}
	c.catchMu.Unlock()
	c.log.Info("cache caught up on changes missed while the subscription was down", "since", since.UTC().Format(time.RFC3339), "changes", len(changes))
	return true
}

// refreshChanged reloads the cached entries that changes name, reading the
// store itself and writing what it read over them (a write makes otter drop
// any TTL refresh in flight, which may have read the row before the change:
// joining it could keep a revoked record). Unlike a bus message's
// invalidation, it keeps each old record until its new one is read: the
// changes are old news (they happened while the subscription was down, and
// the margin brings in every key and account changed in the two minutes
// before), and a database that fails again right now must not turn them
// into misses that fail closed. A read that fails reports an error, and the
// catch-up is tried again. A changed key or token that is not cached is
// invalidated, which drops a load in flight that read the old row.
// (Accounts' changes bump no generation here: a load that read an account
// before its change and is still running when the catch-up comes, seconds
// later, is the one case left to the TTL.)
func (c *Cache) refreshChanged(ctx context.Context, changes []keyplane.Change) error {
	var keys [][32]byte
	groups := map[changed]bool{}
	for _, ch := range changes {
		switch {
		case ch.Token:
			if _, ok := c.tokens.GetIfPresent(ch.KeyHash); !ok {
				c.tokens.Invalidate(ch.KeyHash)
				continue
			}
			t, err := c.store.TokenByHash(ctx, ch.KeyHash)
			if keyplane.ErrorCode(err) == keyplane.ENOTFOUND {
				c.tokens.Invalidate(ch.KeyHash)
			} else if err != nil {
				return err
			} else {
				c.tokens.Set(ch.KeyHash, t)
			}
		case ch.Plan != "":
			groups[changed{plan: true, name: ch.Plan}] = true
		case ch.AccountID != "":
			groups[changed{name: ch.AccountID}] = true
		default:
			if _, ok := c.otter.GetIfPresent(ch.KeyHash); ok {
				keys = append(keys, ch.KeyHash)
			} else {
				c.otter.Invalidate(ch.KeyHash)
			}
		}
	}
	if len(groups) > 0 {
		for hash, e := range c.otter.All() {
			if e.rec != nil && (groups[changed{name: e.rec.Key.AccountID}] || groups[changed{plan: true, name: e.rec.Plan}]) {
				keys = append(keys, hash)
			}
		}
	}
	for _, k := range keys {
		e, err := c.load(ctx, k)
		if err != nil {
			return err
		}
		c.otter.Set(k, e)
	}
	return nil
}

// retryCatchUp retries catching up until it succeeds or the cache closes.
func (c *Cache) retryCatchUp() {
	defer c.wg.Done()
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) { // the first retry soon: a pooled connection the break killed fails once
		select {
		case <-c.closed:
			return
		case <-time.After(wait):
		}
		c.catchUp(5 * time.Second)
		c.catchMu.Lock()
		done := c.catchPending.IsZero()
		if done {
			c.catchRetry = false
		}
		c.catchMu.Unlock()
		if done {
			return
		}
	}
}

// Len is the number of cached entries, for metrics and tests.
func (c *Cache) Len() int { return c.otter.EstimatedSize() }

// Close stops the cache's background goroutines.
func (c *Cache) Close() {
	c.closeOnce.Do(func() { close(c.closed); c.cancel() })
	c.wg.Wait()
	c.otter.StopAllGoroutines()
	c.tokens.StopAllGoroutines()
}

// otterLogger sends otter's warnings (failed background refreshes) to slog.
type otterLogger struct{ log *slog.Logger }

func (l otterLogger) Warn(ctx context.Context, msg string, err error) {
	l.log.WarnContext(ctx, "cache: "+msg, "error", err)
}

func (l otterLogger) Error(ctx context.Context, msg string, err error) {
	l.log.ErrorContext(ctx, "cache: "+msg, "error", err)
}
