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
	// hot holds, by the address of a cached key and the caller's stripe,
	// the cell of the last verification counted under a lock:
	// RecordVerification looks there first, and takes no lock, hashes no
	// string and compares no id when it fits.
	hot [hotSlots]atomic.Pointer[cell]
	// stripeMask is the number of stripes, a power of two, less one.
	stripeMask uint

	flushMu sync.Mutex // one flush at a time; guards what follows
	pending map[rowKey]*pendingRow
	totals  map[string]*keyplane.KeyUsageTotal

	stop  chan struct{}
	done  sync.WaitGroup
	close sync.Once
}

var _ keyplane.UsageRecorder = (*Meter)(nil)

const shardCount = 64

// hotSlots is the size of Meter.hot, a power of two: a busy key takes a
// slot per stripe that verifies it, and keys that share a slot take turns
// at the lock. 512 KiB of pointers; each flush empties the slots of the
// cells it dropped.
const hotSlotBits = 16
const hotSlots = 1 << hotSlotBits

// maxFreeSketches bounds the latency sketches a shard keeps for reuse.
const maxFreeSketches = 64

// wideAfter is how many verifications of one key's endpoint in one flush
// interval make it busy: from then on, each stripe of goroutines counts it
// in a cell of its own (see cell), until an interval has half as many.
const wideAfter = 1000

type shard struct {
	mu sync.Mutex
	// Guarded by mu:
	keys         map[string]*keyState
	freeSketches []*ddsketch.DDSketch
	_            [64]byte // keeps shards' locks off each other's cache lines
}

// keyState is what a shard counts of one key: its cells, its endpoints,
// bounded, and its last use.
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
	touched         bool            // had an outcome since the last flush
	busy            map[string]bool // endpoints counted in a cell per stripe
	lastActive      time.Time       // the meter's clock at the last flush that saw events
}

type cellKey struct {
	endpoint string
	minute   int64 // Unix seconds
	stripe   uint  // 0 unless the endpoint is busy
}

// cell counts one key's usage of one endpoint in one minute; a busy endpoint
// has a cell per stripe of goroutines (see callerStripe), so that cores
// verifying one key do not fight over one cache line.
//
// Verifications are counted with atomic adds, so that RecordVerification
// needs no lock. A flush takes the counts by swapping them for zero; when
// it drops the cell (its minute is over, or its endpoint became busy) it swaps
// in sealed instead, and an add that finds its counter sealed is counted
// again, under the lock, in a fresh cell: nothing is lost or counted twice.
// Cells are never reused, as a caller may still hold one it read before.
type cell struct {
	// counts is first, and a cell is 256 bytes, the size of its allocation
	// class: counts has a cache line of its own.
	counts stripe

	key         *keyState // the fields up to seenEndpoint never change
	endpoint    string
	minute      int64 // Unix seconds
	minuteNanos int64 // the same, in Unix nanoseconds
	// seenEndpoint is the bytes of the endpoint as the latest caller under
	// the lock passed it: a string with those bytes compares without reading
	// them, and route rules pass the same string every time.
	seenEndpoint atomic.Pointer[byte]
	dropped      atomic.Bool // sealed and out of its key's map

	// Guarded by the shard's lock: outcomes and codes without a counter.
	errors  int64
	uncoded int64              // requests with a code that has no counter
	sketch  *ddsketch.DDSketch // taken from the shard's free sketches
	samples int                // latencies in sketch
	_       [104]byte
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
		stripeMask: uint(stripes(runtime.GOMAXPROCS(0)) - 1),
		pending:    map[rowKey]*pendingRow{}, totals: map[string]*keyplane.KeyUsageTotal{},
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

// stripes gives eight stripes per core, so that two goroutines running at
// once rarely share one; a power of two, 16 to 256.
func stripes(procs int) int {
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
	m.recordLocked(&ev, nil, 0)
}

// RecordVerification implements keyplane.UsageRecorder.
//
// A valid verification is counted without the lock when the cell that the
// key's and the caller's slot holds was put there for the same cached key,
// and is of the same endpoint and minute: a few loads, one atomic add to a
// cache line of the caller's, and a compare and swap of the key's last use
// at most once per clock tick. Anything else takes the shard's lock.
func (m *Meter) RecordVerification(k *keyplane.Key, endpoint string, at time.Time, code keyplane.VerifyCode) {
	stripe := callerStripe() & m.stripeMask
	slot := hotSlot(k, stripe)
	if c := m.hot[slot].Load(); c != nil && code == keyplane.VerifyValid {
		ks, ns := c.key, at.UnixNano()
		// The minute is checked without a division.
		if ks.seen.Load() == k && uint64(ns-c.minuteNanos) < uint64(time.Minute) && sameString(c.endpoint, endpoint, c.seenEndpoint.Load()) {
			if ns > ks.lastUsed.Load() {
				ks.noteUse(ns)
			}
			if c.counts.valid.Add(1) > 0 {
				return
			}
			// A flush sealed the cell: count again, in a fresh one.
		}
	}
	m.recordLocked(&keyplane.UsageEvent{KeyID: k.ID, AccountID: k.AccountID, Endpoint: endpoint, Time: at, Code: code}, k, stripe)
}

// hotSlot is the slot in Meter.hot of a cached key and a stripe: the key's
// address, mixed, picks a run of slots, and the stripe one of them.
func hotSlot(k *keyplane.Key, stripe uint) uint {
	return (uint(uint64(uintptr(unsafe.Pointer(k))>>4)*0x9E3779B97F4A7C15>>(64-hotSlotBits)) ^ stripe) & (hotSlots - 1)
}

// recordLocked counts an event under its shard's lock, finding or making
// its key and cell; for a verification of the cached key k by a caller of
// the stripe, it makes the cell the one RecordVerification finds first.
func (m *Meter) recordLocked(ev *keyplane.UsageEvent, k *keyplane.Key, stripe uint) {
	sh := m.shard(ev.KeyID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ks := sh.keys[ev.KeyID]
	if ks == nil {
		ks = &keyState{keyID: strings.Clone(ev.KeyID), accountID: strings.Clone(ev.AccountID),
			cells: map[cellKey]*cell{}, endpoints: map[string]string{}}
		sh.keys[ks.keyID] = ks
	}
	if ev.Status != 0 {
		stripe = 0 // outcomes are counted under the lock, in the first cell
	}
	c := ks.cell(ev.Endpoint, keyplane.UsageMinute.BucketStart(ev.Time.Unix()), stripe)
	if ev.Status != 0 {
		sh.addOutcome(c, ev)
		return
	}
	if k != nil {
		ks.seen.Store(k)
		if c.endpoint == ev.Endpoint {
			c.seenEndpoint.Store(unsafe.StringData(ev.Endpoint))
		}
		m.hot[hotSlot(k, stripe)].Store(c) // the caller's slot, whichever cell
	}
	// The cell is in the key's map, so no flush has sealed it: the add
	// counts (or there is no counter for the code).
	if !c.countVerification(ev.Code, ev.Time.UnixNano()) {
		c.uncoded++
	}
}

// cell finds or makes a key's cell for an endpoint and minute, of the
// stripe if the endpoint is busy, folding endpoints past the bound, or
// unfit for storage, into keyplane.OtherEndpoint. The shard's lock is held.
func (ks *keyState) cell(endpoint string, minute int64, stripe uint) *cell {
	canonical, known := ks.endpoints[endpoint]
	if !known {
		if len(ks.endpoints) >= keyplane.MaxUsageEndpoints || !keyplane.ValidEndpoint(endpoint) {
			canonical = keyplane.OtherEndpoint
		} else {
			canonical = strings.Clone(endpoint) // not a slice of a request's buffer
			ks.endpoints[canonical] = canonical
		}
	}
	if !ks.busy[canonical] {
		stripe = 0 // one cell for all stripes
	}
	key := cellKey{canonical, minute, stripe}
	if c := ks.cells[key]; c != nil {
		return c
	}
	c := &cell{key: ks, endpoint: canonical, minute: minute, minuteNanos: minute * int64(time.Second)}
	ks.cells[key] = c
	return c
}

// countVerification adds a verification to the cell. It is false when the
// code has no counter, or when a flush sealed the cell and the add did not
// count.
func (c *cell) countVerification(code keyplane.VerifyCode, at int64) bool {
	// The last use first: a cell not sealed yet keeps its key in memory
	// until the next flush at least, which reads the last use.
	if ks := c.key; at > ks.lastUsed.Load() {
		ks.noteUse(at)
	}
	if code == keyplane.VerifyValid {
		return c.counts.valid.Add(1) > 0
	}
	if i := keyplane.RejectionIndex(code); i >= 0 {
		return c.counts.rejected[i].Add(1) > 0
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
