// Package usage meters how keys are used and answers analytics over it.
//
// A Meter counts usage events in memory, per key, endpoint and minute, and
// flushes them every interval (default 1 s) and on Close. Each flush adds
// its counts to the stored minute, hour and day rows of the key and of its
// account, and to the key's totals, in one transaction: instances sharing a
// database add up, a graceful shutdown loses nothing and a crash loses at
// most one interval. Latencies go into DDSketches (relative accuracy 1 %),
// which merge across buckets, instances and flushes; the store merges a
// flush's sketch into the stored one inside its transaction.
//
// Record, on the verify path, takes one shard's lock and allocates nothing
// for a key and endpoint already counted this minute; when the shard's
// previous event was the same key, endpoint and minute, it hashes nothing.
package usage

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/periodic"
)

// DefaultFlushInterval is how often counts are written to the store.
const DefaultFlushInterval = time.Second

// DefaultIdleAfter is how long a key without events stays in memory.
const DefaultIdleAfter = 10 * time.Minute

// DefaultPruneInterval is how often rows past their retention are deleted.
const DefaultPruneInterval = time.Hour

// Config tunes a Meter; zero values take the defaults.
type Config struct {
	FlushInterval time.Duration
	Retention     Retention
	PruneInterval time.Duration
	IdleAfter     time.Duration
	Logger        *slog.Logger
	// Now is the clock for idleness and retention; tests inject their own.
	Now func() time.Time
}

// Meter implements keyplane.UsageRecorder on a keyplane.UsageStore.
type Meter struct {
	store     keyplane.UsageStore
	log       *slog.Logger
	now       func() time.Time
	idleAfter time.Duration
	retention Retention

	shards [shardCount]shard

	flushMu sync.Mutex // one flush at a time; guards what follows
	pending map[rowKey]*pendingRow
	totals  map[string]*keyplane.KeyUsageTotal

	stop  chan struct{}
	done  sync.WaitGroup
	close sync.Once
}

var _ keyplane.UsageRecorder = (*Meter)(nil)

const shardCount = 64

// maxFreeCells bounds the cells a shard keeps for reuse.
const maxFreeCells = 256

type shard struct {
	mu   sync.Mutex
	keys map[string]*keyState
	// hot is the key of the shard's previous event: busy keys are verified
	// in runs, and checking it first spares hashing the key id.
	hot  *keyState
	free []*cell
	_    [64]byte // keeps shards' locks off each other's cache lines
}

// keyState is what a shard counts of one key: its cells, its endpoints,
// bounded, and its totals since the last flush.
type keyState struct {
	keyID, accountID string
	// last is the cell of the key's previous event: a key mostly calls one
	// endpoint at a time, and checking it first spares a map lookup.
	last *cell
	// seenID and seenEndpoint are the caller's strings of the previous
	// event, kept (not copied) because a cached verify record passes the
	// same key id every time, and the endpoint is often a constant: strings
	// that share their bytes compare without reading them.
	seenID, seenEndpoint string
	cells                map[cellKey]*cell
	endpoints            map[string]string // each endpoint to its retained copy
	requests             int64             // since the last flush
	lastUsed             int64             // Unix nanoseconds of the latest verification
	flushedLastUsed      int64
	active               bool      // had events since the last flush
	lastActive           time.Time // the meter's clock at the last flush that saw events
}

type cellKey struct {
	endpoint string
	minute   int64 // Unix seconds
}

// cell counts one key's usage of one endpoint in one minute.
type cell struct {
	key      *keyState
	endpoint string
	minute   int64
	counts   keyplane.UsageCounts
	sketch   *ddsketch.DDSketch // kept across flushes, cleared: no allocation per minute
	samples  int                // latencies in sketch
	dirty    bool
}

// New returns a Meter that flushes every cfg.FlushInterval and prunes
// every cfg.PruneInterval until Close.
func New(store keyplane.UsageStore, cfg Config) *Meter {
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.PruneInterval <= 0 {
		cfg.PruneInterval = DefaultPruneInterval
	}
	if cfg.IdleAfter <= 0 {
		cfg.IdleAfter = DefaultIdleAfter
	}
	if cfg.Retention == (Retention{}) {
		cfg.Retention = DefaultRetention
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Meter{store: store, log: cfg.Logger, now: cfg.Now, idleAfter: cfg.IdleAfter, retention: cfg.Retention,
		pending: map[rowKey]*pendingRow{}, totals: map[string]*keyplane.KeyUsageTotal{},
		stop: make(chan struct{})}
	for i := range m.shards {
		m.shards[i].keys = make(map[string]*keyState)
	}
	m.done.Add(2)
	go m.flushLoop(cfg.FlushInterval)
	go m.pruneLoop(cfg.PruneInterval)
	return m
}

func (m *Meter) flushLoop(every time.Duration) {
	defer m.done.Done()
	periodic.Flush(every, 10*time.Second, m.stop, m.Flush, m.log, "usage not written; will retry")
}

// pruneLoop prunes at start and then every interval; instances prune
// independently, which is harmless: deleting what is gone deletes nothing.
func (m *Meter) pruneLoop(every time.Duration) {
	defer m.done.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		if err := m.Prune(ctx); err != nil {
			m.log.Warn("old usage not pruned; will retry", "err", err)
		}
		cancel()
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

// Close stops the loops and writes what is left. Events recorded after
// Close are counted but no longer written.
func (m *Meter) Close(ctx context.Context) error {
	m.close.Do(func() { close(m.stop) })
	m.done.Wait()
	return m.Flush(ctx)
}

// Prune deletes the rows past their retention.
func (m *Meter) Prune(ctx context.Context) error {
	now := m.now()
	for _, g := range keyplane.UsageGranularities {
		n, err := m.store.PruneUsage(ctx, g, now.Add(-m.retention.of(g)))
		if err != nil {
			return err
		}
		if n > 0 {
			m.log.Debug("pruned usage", "granularity", g, "rows", n)
		}
	}
	return nil
}

// shard picks a key's shard from the last characters of its id, cheaply:
// ids end in random characters, and the shard's map hashes the id anyway.
func (m *Meter) shard(keyID string) *shard {
	h := uint(len(keyID))
	if n := len(keyID); n >= 2 {
		h += uint(keyID[n-1]) + 7*uint(keyID[n-2])
	}
	return &m.shards[h%shardCount]
}

// Record implements keyplane.UsageRecorder.
func (m *Meter) Record(ev keyplane.UsageEvent) {
	if ev.KeyID == "" {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = m.now()
	}
	secs := ev.Time.Unix()
	sh := m.shard(ev.KeyID)
	sh.mu.Lock()
	ks := sh.hot
	if ks == nil || ks.seenID != ev.KeyID {
		ks = sh.keys[ev.KeyID]
		if ks == nil {
			ks = &keyState{keyID: strings.Clone(ev.KeyID), accountID: strings.Clone(ev.AccountID),
				cells: map[cellKey]*cell{}, endpoints: map[string]string{}}
			sh.keys[ks.keyID] = ks
		}
		sh.hot, ks.seenID = ks, ev.KeyID
	}
	// The previous cell still fits when the event falls in its minute
	// (checked without a division) and names its endpoint.
	c := ks.last
	if c == nil || uint64(secs-c.minute) >= 60 || ks.seenEndpoint != ev.Endpoint {
		c = sh.cell(ks, ev.Endpoint, keyplane.UsageMinute.BucketStart(secs))
		ks.last, ks.seenEndpoint = c, ev.Endpoint
	}
	if ev.Status == 0 {
		c.countVerification(ev.Code, ev.Time.UnixNano())
	} else {
		c.addOutcome(&ev)
	}
	sh.mu.Unlock()
}

// cell finds or makes a key's cell for an endpoint and minute, folding
// endpoints past the bound, or unfit for storage, into
// keyplane.OtherEndpoint.
func (sh *shard) cell(ks *keyState, endpoint string, minute int64) *cell {
	canonical, known := ks.endpoints[endpoint]
	if !known {
		if len(ks.endpoints) >= keyplane.MaxUsageEndpoints || !keyplane.ValidEndpoint(endpoint) {
			canonical = keyplane.OtherEndpoint
		} else {
			canonical = strings.Clone(endpoint) // not a slice of a request's buffer
			ks.endpoints[canonical] = canonical
		}
	}
	key := cellKey{canonical, minute}
	if c := ks.cells[key]; c != nil {
		return c
	}
	var c *cell
	if n := len(sh.free); n > 0 {
		c, sh.free = sh.free[n-1], sh.free[:n-1]
	} else {
		c = &cell{}
	}
	c.key, c.endpoint, c.minute = ks, canonical, minute
	ks.cells[key] = c
	return c
}

// countVerification counts a verification; small enough to inline into
// Record, as it runs on every metered verification.
func (c *cell) countVerification(code keyplane.VerifyCode, at int64) {
	ks := c.key
	ks.active, c.dirty = true, true
	c.counts.Requests++
	ks.requests++
	if at > ks.lastUsed {
		ks.lastUsed = at
	}
	if code == keyplane.VerifyValid {
		c.counts.Successes++
	} else {
		c.countRejection(code)
	}
}

func (c *cell) countRejection(code keyplane.VerifyCode) {
	if i := keyplane.RejectionIndex(code); i >= 0 {
		c.counts.Rejected[i]++
	}
}

// addOutcome counts the upstream's answer to a request.
func (c *cell) addOutcome(ev *keyplane.UsageEvent) {
	c.key.active = true
	// The upstream's outcome of a verified request: nothing reached the
	// upstream unless the verification let it through.
	if ev.Code != keyplane.VerifyValid {
		return
	}
	if ev.Status >= 500 {
		c.counts.Errors++
		c.counts.Successes--
	}
	if ev.Latency > 0 {
		if c.sketch == nil {
			c.sketch = newSketch()
		}
		if c.sketch.Add(float64(ev.Latency)/float64(time.Millisecond)) == nil {
			c.samples++
		}
	}
	c.dirty = true
}
