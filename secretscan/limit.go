package secretscan

import (
	"net/netip"
	"sync"
	"time"
)

// Limiter allows each source address n requests per window (fixed
// windows), and forgets addresses when a window ends.
type Limiter struct {
	n      int
	window time.Duration

	mu    sync.Mutex
	start time.Time
	seen  map[netip.Addr]int
}

// NewLimiter allows n requests per window from each address.
func NewLimiter(n int, window time.Duration) *Limiter {
	return &Limiter{n: n, window: window, seen: map[netip.Addr]int{}}
}

// Allow counts a request from addr at now and reports whether it is within
// the limit. IPv6 addresses count by their /64.
func (l *Limiter) Allow(addr netip.Addr, now time.Time) bool {
	if addr.Is6() && !addr.Is4In6() {
		p, _ := addr.Prefix(64)
		addr = p.Addr()
	}
	addr = addr.Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= l.window {
		l.start, l.seen = now, map[netip.Addr]int{}
	}
	l.seen[addr]++
	return l.seen[addr] <= l.n
}
