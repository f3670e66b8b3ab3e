package ratelimit

import (
	"net/netip"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	th := NewThrottle(ThrottleConfig{Failures: 20, Window: time.Minute, Block: 5 * time.Minute})
	defer th.Close()
	bad, good := netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("198.51.100.1")
	for i := range 20 {
		th.Failed(bad, t0)
		if d := th.Blocked(bad, t0); d != 0 {
			t.Fatalf("blocked after %d failures", i+1)
		}
	}
	th.Failed(bad, t0) // the 21st within the minute
	if d := th.Blocked(bad, t0); d != 5*time.Minute {
		t.Fatalf("after 21 failures: blocked for %v, want 5m", d)
	}
	if d := th.Blocked(netip.MustParseAddr("::ffff:203.0.113.7"), t0.Add(time.Minute)); d != 4*time.Minute {
		t.Fatalf("the same IP written as IPv4-mapped IPv6: %v", d)
	}
	if d := th.Blocked(good, t0); d != 0 {
		t.Fatalf("another IP is blocked: %v", d)
	}
	if d := th.Blocked(bad, t0.Add(5*time.Minute)); d != 0 {
		t.Fatalf("still blocked after the block: %v", d)
	}
	// A slow trickle of failures (one every 3 s, the allowed rate) never blocks.
	slow := netip.MustParseAddr("2001:db8::1")
	for i := range 200 {
		at := t0.Add(time.Duration(i) * 3 * time.Second)
		th.Failed(slow, at)
		if th.Blocked(slow, at) != 0 {
			t.Fatalf("a failure every 3 s blocked the IP after %d", i+1)
		}
	}
	th.sweep(t0.Add(time.Hour).UnixNano())
	if n := th.Len(); n != 0 {
		t.Fatalf("%d IPs left after the sweep", n)
	}
}

// An IPv6 /64 counts as one source; a flood of addresses cannot grow the
// throttle without bound.
func TestThrottleSourcesAndCap(t *testing.T) {
	th := NewThrottle(ThrottleConfig{Failures: 20, Window: time.Minute, Block: 5 * time.Minute})
	defer th.Close()
	for i := range 21 {
		th.Failed(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)}), t0)
	}
	if d := th.Blocked(netip.MustParseAddr("2001:db8::ffff"), t0); d == 0 {
		t.Fatal("21 failures from one /64 did not block it")
	}
	if d := th.Blocked(netip.MustParseAddr("2001:db8:0:1::1"), t0); d != 0 {
		t.Fatal("the next /64 is blocked too")
	}
	for i := range maxTracked + 1000 {
		th.Failed(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), t0)
	}
	if n := th.Len(); n > maxTracked {
		t.Fatalf("%d addresses tracked, over the cap of %d", n, maxTracked)
	}
}
