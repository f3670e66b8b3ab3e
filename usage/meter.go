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
// Record, on the verify path, allocates nothing for a key and endpoint
// already counted this minute; when the shard's previous event was the same
// key, endpoint and minute, it takes no lock and hashes nothing.
package usage

import (
	"context"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
	// hot holds, by the address of a cached key, the cell of the key's last
	// verification counted under a lock: RecordVerification looks there
	// first, with no lock, no hashing of strings and no comparison of ids.
	hot [hotSlots]atomic.Pointer[cell]
	// wideStripes is the stripes of a busy key's cell, a power of two.
	wideStripes int

	flushMu sync.Mutex // one flush at a time; guards what follows
	pending map[rowKey]*pendingRow
	totals  map[string]*keyplane.KeyUsageTotal

	stop  chan struct{}
	done  sync.WaitGroup
	close sync.Once
}

var _ keyplane.UsageRecorder = (*Meter)(nil)

const shardCount = 64

// hotSlots is the size of Meter.hot, a power of two: more busy keys than
// this share slots, and the loser of a shared slot takes the lock.
const hotSlots = 1024

// maxFreeSketches bounds the latency sketches a shard keeps for reuse.
const maxFreeSketches = 64

// wideAfter is how many verifications of one key in one flush interval make
// it busy: its next cells are striped (see cell).
const wideAfter = 1000

type shard struct {
	mu  sync.Mutex
	hot *[hotSlots]atomic.Pointer[cell] // the meter's
	// Guarded by mu:
	keys         map[string]*keyState
	freeSketches []*ddsketch.DDSketch
	_            [64]byte // keeps shards' locks off each other's cache lines
}

// keyState is what a shard counts of one key: its cells, its endpoints,
// bounded, and its totals since the last flush.
type keyState struct {
	keyID, accountID string // never change
	// seen is the cached key of the latest verification counted under the
	// lock: the verify path passes the same pointer every time, and
	// records are not modified once cached.
	seen     atomic.Pointer[keyplane.Key]
	lastUsed atomic.Int64 // Unix nanoseconds of the latest verification

	// Guarded by the shard's lock:
	cells           map[cellKey]*cell
	endpoints       map[string]string // each endpoint to its retained copy
	flushedLastUsed int64
	touched         bool      // had an outcome since the last flush
	wide            bool      // busy at the last flush: new cells are striped
	lastActive      time.Time // the meter's clock at the last flush that saw events
}

type cellKey struct {
	endpoint string
	minute   int64 // Unix seconds
}

// cell counts one key's usage of one endpoint in one minute.
//
// Verifications are counted with atomic adds into stripes, one cache line
// each, so that Record needs no lock; a busy key's cells have many stripes,
// and each goroutine adds to its own, so that cores verifying one key do not
// fight over one cache line. A flush takes the counts by swapping them for
// zero; when the cell's minute is over it swaps in sealed instead, drops
// the cell, and an add that finds its counter sealed is counted again,
// under the lock, in a fresh cell: nothing is lost or counted twice.
// Cells are never reused, as a Record may still hold one it read before.
type cell struct {
	key      *keyState // these three never change
	endpoint string
	minute   int64 // Unix seconds
	// minuteNanos is minute in Unix nanoseconds, never changes either.
	minuteNanos int64
	// seenEndpoint is the bytes of the endpoint as the latest caller under
	// the lock passed it: a string with those bytes compares without reading
	// them, and route rules pass the same string every time.
	seenEndpoint atomic.Pointer[byte]
	hotSlot      int // in Meter.hot, where the cell was put last; under the lock

	stripes []stripe
	narrow  [1]stripe // the only stripe of a key that is not busy

	// Guarded by the shard's lock: outcomes and codes without a counter.
	errors  int64
	uncoded int64              // requests with a code that has no counter
	sketch  *ddsketch.DDSketch // taken from the shard's free sketches
	samples int                // latencies in sketch
}

// stripe is one cache line of verification counts.
type stripe struct {
	valid    atomic.Int64
	rejected [len(keyplane.UsageRejectionCodes)]atomic.Int64
}

// sealed is swapped into the counters of a cell a flush dropped: any add
// after that leaves its counter negative, and its caller counts again.
const sealed = math.MinInt64 / 2

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
		wideStripes: wideStripes(runtime.GOMAXPROCS(0)),
		pending:     map[rowKey]*pendingRow{}, totals: map[string]*keyplane.KeyUsageTotal{},
		stop: make(chan struct{})}
	for i := range m.shards {
		m.shards[i].keys, m.shards[i].hot = make(map[string]*keyState), &m.hot
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

// wideStripes gives a busy key's cells eight stripes per core, so that two
// goroutines running at once rarely share one; a power of two up to 256.
func wideStripes(procs int) int {
	n := 16
	for n < 8*procs && n < 256 {
		n *= 2
	}
	return n
}

// Record implements keyplane.UsageRecorder. It takes the shard's lock; the
// verify path calls RecordVerification instead.
func (m *Meter) Record(ev keyplane.UsageEvent) {
	if ev.KeyID == "" {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = m.now()
	}
	m.recordLocked(&ev, nil)
}

// RecordVerification implements keyplane.UsageRecorder.
//
// A valid verification of a key whose last verification counted was of the
// same endpoint, in the same minute, and passed the same cached key, is
// counted with no lock: a few loads, one atomic add, and a compare and swap
// of the key's last use at most once per clock tick. Anything else takes
// the shard's lock.
func (m *Meter) RecordVerification(k *keyplane.Key, endpoint string, at time.Time, code keyplane.VerifyCode) {
	slot := &m.hot[hotSlot(k)]
	if c := slot.Load(); c != nil && code == keyplane.VerifyValid {
		// The cell fits when it was put there for this key, the verification
		// falls in its minute (checked without a division), and it names
		// its endpoint.
		ks := c.key
		ns := at.UnixNano()
		if ks.seen.Load() == k && uint64(ns-c.minuteNanos) < uint64(time.Minute) && sameString(c.endpoint, endpoint, c.seenEndpoint.Load()) {
			if ns > ks.lastUsed.Load() {
				ks.noteUse(ns)
			}
			if c.stripes[callerStripe()&uint(len(c.stripes)-1)].valid.Add(1) > 0 {
				return
			}
			// A flush sealed the cell: count again, in a fresh one.
		}
	}
	m.recordLocked(&keyplane.UsageEvent{KeyID: k.ID, AccountID: k.AccountID, Endpoint: endpoint, Time: at, Code: code}, k)
}

// hotSlot is a cached key's slot in Meter.hot, from its address.
func hotSlot(k *keyplane.Key) uint {
	return uint(uint64(uintptr(unsafe.Pointer(k))>>4) * 0x9E3779B97F4A7C15 >> (64 - 10))
}

// recordLocked counts an event under its shard's lock, finding or making
// its key and cell; for a verification of the cached key k, it makes the
// cell the one RecordVerification finds first.
func (m *Meter) recordLocked(ev *keyplane.UsageEvent, k *keyplane.Key) {
	sh := m.shard(ev.KeyID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ks := sh.keys[ev.KeyID]
	if ks == nil {
		ks = &keyState{keyID: strings.Clone(ev.KeyID), accountID: strings.Clone(ev.AccountID),
			cells: map[cellKey]*cell{}, endpoints: map[string]string{}}
		sh.keys[ks.keyID] = ks
	}
	c := m.cell(ks, ev.Endpoint, keyplane.UsageMinute.BucketStart(ev.Time.Unix()))
	if ev.Status != 0 {
		sh.addOutcome(c, ev)
		return
	}
	if k != nil {
		ks.seen.Store(k)
		if c.endpoint == ev.Endpoint {
			c.seenEndpoint.Store(unsafe.StringData(ev.Endpoint))
		}
		c.hotSlot = int(hotSlot(k))
		m.hot[c.hotSlot].Store(c)
	}
	// The cell is in the key's map, so no flush has sealed it: the add
	// counts (or there is no counter for the code).
	if !c.countVerification(ev.Code, ev.Time.UnixNano()) {
		c.uncoded++
	}
}

// cell finds or makes a key's cell for an endpoint and minute, folding
// endpoints past the bound, or unfit for storage, into
// keyplane.OtherEndpoint. The shard's lock is held.
func (m *Meter) cell(ks *keyState, endpoint string, minute int64) *cell {
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
	c := &cell{key: ks, endpoint: canonical, minute: minute, minuteNanos: minute * int64(time.Second)}
	if ks.wide {
		c.stripes = make([]stripe, m.wideStripes)
	} else {
		c.stripes = c.narrow[:]
	}
	ks.cells[key] = c
	return c
}

// countVerification adds a verification to the caller's stripe of the cell.
// It is false when the code has no counter, or when a flush sealed the cell
// and the add did not count.
func (c *cell) countVerification(code keyplane.VerifyCode, at int64) bool {
	// The last use first: a cell not sealed yet keeps its key in memory
	// until the next flush at least, which reads the last use.
	if ks := c.key; at > ks.lastUsed.Load() {
		ks.noteUse(at)
	}
	s := &c.stripes[callerStripe()&uint(len(c.stripes)-1)]
	if code == keyplane.VerifyValid {
		return s.valid.Add(1) > 0
	}
	if i := keyplane.RejectionIndex(code); i >= 0 {
		return s.rejected[i].Add(1) > 0
	}
	return false
}

// sameString is a == b, without reading the bytes when b's are seen.
func sameString(a, b string, seen *byte) bool {
	return len(a) == len(b) && (unsafe.StringData(b) == seen || a == b)
}

// noteUse raises the key's last use to at, unless another call raised it
// further.
func (ks *keyState) noteUse(at int64) {
	for {
		last := ks.lastUsed.Load()
		if at <= last || ks.lastUsed.CompareAndSwap(last, at) {
			return
		}
	}
}

// callerStripe is a number for the calling goroutine, from the address of
// its stack: a goroutine keeps its stack, so it keeps adding to one stripe,
// whose cache line stays with the core that runs it. Any stripe would be
// correct; this only spreads the writes of goroutines running at once.
func callerStripe() uint {
	var onStack byte
	at := uint64(uintptr(unsafe.Pointer(&onStack)))
	// Stacks are at least 2 KiB apart; the multiplication mixes the bits
	// above that into the top ones.
	return uint((at >> 11) * 0x9E3779B97F4A7C15 >> 56)
}

// addOutcome counts the upstream's answer to a request; the shard's lock is
// held.
func (sh *shard) addOutcome(c *cell, ev *keyplane.UsageEvent) {
	c.key.touched = true
	// The upstream's outcome of a verified request: nothing reached the
	// upstream unless the verification let it through.
	if ev.Code != keyplane.VerifyValid {
		return
	}
	if ev.Status >= 500 {
		c.errors++
	}
	if ev.Latency > 0 {
		if c.sketch == nil {
			c.sketch = sh.newSketch()
		}
		if c.sketch.Add(float64(ev.Latency)/float64(time.Millisecond)) == nil {
			c.samples++
		}
	}
}

// newSketch takes a cleared sketch from the shard's free ones, or makes one.
func (sh *shard) newSketch() *ddsketch.DDSketch {
	if n := len(sh.freeSketches); n > 0 {
		s := sh.freeSketches[n-1]
		sh.freeSketches = sh.freeSketches[:n-1]
		return s
	}
	return newSketch()
}
