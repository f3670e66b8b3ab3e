package ratelimit

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Throttle slows down and then shuts out a source IP that keeps presenting
// bad keys (unknown, revoked, expired): each failure charges the IP's
// allowance (GCRA: Failures per Window, all at once if need be); once it is
// spent, every verification from the IP is refused for Block. Valid requests
// charge nothing, and one IP's failures never affect another's.
type Throttle struct {
	failures int64
	window   time.Duration
	block    time.Duration
	// Sharded maps rather than a sync.Map: boxing a netip.Addr into an
	// interface key would allocate on every verification.
	shards [64]ipShard
	// tracked counts the addresses held, so that while there are none (the
	// usual state) Blocked answers without touching a shard.
	tracked atomic.Int64
	stop    chan struct{}
	once    sync.Once
}

type ipShard struct {
	mu  sync.RWMutex
	ips map[netip.Addr]*ipState
}

func (t *Throttle) shard(ip netip.Addr) *ipShard {
	b := ip.As16()
	// The low half varies most, for IPv4 and IPv6 alike; one multiply mixes it.
	x := binary.LittleEndian.Uint64(b[8:]) * 0x9E3779B97F4A7C15
	return &t.shards[x>>58] // 64 shards
}

type ipState struct {
	mu           sync.Mutex
	tat          int64 // GCRA theoretical arrival time of the next failure, ns
	blockedUntil int64
	dead         bool // removed by the sweeper; look again
}

// ThrottleConfig tunes a Throttle; zero values take the defaults.
type ThrottleConfig struct {
	Failures int64         // allowed per Window, default 20
	Window   time.Duration // default 1 minute
	Block    time.Duration // how long an IP is refused after that, default 5 minutes
}

// NewThrottle starts a throttle; Close stops its sweeper.
func NewThrottle(cfg ThrottleConfig) *Throttle {
	t := &Throttle{failures: cfg.Failures, window: cfg.Window, block: cfg.Block, stop: make(chan struct{})}
	for i := range t.shards {
		t.shards[i].ips = map[netip.Addr]*ipState{}
	}
	if t.failures <= 0 {
		t.failures = 20
	}
	if t.window <= 0 {
		t.window = time.Minute
	}
	if t.block <= 0 {
		t.block = 5 * time.Minute
	}
	go t.sweepEvery(time.Minute)
	return t
}

// Close stops the sweeper.
func (t *Throttle) Close() { t.once.Do(func() { close(t.stop) }) }

// Blocked returns how long ip is still refused at now; 0 when it is not.
func (t *Throttle) Blocked(ip netip.Addr, now time.Time) time.Duration {
	if t.tracked.Load() == 0 {
		return 0
	}
	ip = source(ip)
	sh := t.shard(ip)
	sh.mu.RLock()
	st, ok := sh.ips[ip]
	sh.mu.RUnlock()
	if !ok {
		return 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if left := st.blockedUntil - now.UnixNano(); left > 0 {
		return time.Duration(left)
	}
	return 0
}

// maxTracked bounds the throttle's memory under a flood from many
// addresses: past it, new addresses are not tracked (the throttle fails open).
const maxTracked = 100_000

// source is what the throttle counts: an IPv4 address, or an IPv6 /64, the
// block one subscriber usually holds whole.
func source(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// Failed records a failed verification from ip at now.
func (t *Throttle) Failed(ip netip.Addr, now time.Time) {
	ip = source(ip)
	ts := now.UnixNano()
	interval := int64(t.window) / t.failures
	sh := t.shard(ip)
	for {
		sh.mu.Lock()
		st, ok := sh.ips[ip]
		if !ok {
			if t.tracked.Load() >= maxTracked {
				sh.mu.Unlock()
				return
			}
			st = &ipState{}
			sh.ips[ip] = st
			t.tracked.Add(1)
		}
		sh.mu.Unlock()
		st.mu.Lock()
		if st.dead {
			st.mu.Unlock()
			continue
		}
		tat := max(st.tat, ts) + interval
		if tat-ts > int64(t.window) { // the allowance is spent
			st.blockedUntil = ts + int64(t.block)
			tat = ts + int64(t.window) // a blocked IP starts the next period with nothing left
		}
		st.tat = tat
		st.mu.Unlock()
		return
	}
}

func (t *Throttle) sweepEvery(d time.Duration) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case now := <-tick.C:
			t.sweep(now.UnixNano())
		}
	}
}

// sweep forgets IPs that are neither blocked nor carrying failures.
func (t *Throttle) sweep(now int64) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for ip, st := range sh.ips {
			st.mu.Lock()
			if st.tat < now && st.blockedUntil < now {
				st.dead = true
				delete(sh.ips, ip)
				t.tracked.Add(-1)
			}
			st.mu.Unlock()
		}
		sh.mu.Unlock()
	}
}

// Len is how many addresses the throttle tracks.
func (t *Throttle) Len() int {
	n := 0
	for i := range t.shards {
		t.shards[i].mu.RLock()
		n += len(t.shards[i].ips)
		t.shards[i].mu.RUnlock()
	}
	return n
}
