package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/ratelimit/limitertest"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestConformance(t *testing.T) {
	l := New()
	defer l.Close()
	limitertest.Run(t, l)
}

func record(policies ...keyplane.RateLimitPolicy) *keyplane.VerifyRecord {
	return &keyplane.VerifyRecord{Key: keyplane.Key{ID: "key_test", RateLimits: policies}}
}

func policy(name string, limit, windowSeconds, burst int64, algo keyplane.Algorithm) keyplane.RateLimitPolicy {
	return keyplane.RateLimitPolicy{Name: name, Limit: &limit, WindowSeconds: windowSeconds, Burst: burst, Algorithm: algo}
}

func TestSweepFreesIdleKeys(t *testing.T) {
	l := New()
	defer l.Close()
	for i := range 100 {
		rec := record(policy("p", 10, 1, 0, keyplane.TokenBucket))
		rec.Key.ID = "key_" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		l.Check(context.Background(), rec, 1, t0)
	}
	if l.Len() != 100 {
		t.Fatalf("%d states", l.Len())
	}
	l.sweep(t0.Add(time.Minute).UnixMicro())
	if l.Len() != 0 {
		t.Fatalf("%d states left after the sweep", l.Len())
	}
	// A key used again after its state was swept starts afresh, correctly.
	rec := record(policy("p", 10, 1, 0, keyplane.TokenBucket))
	got := 0
	for range 50 {
		if d, _ := l.Check(context.Background(), rec, 1, t0.Add(2*time.Minute)); d.Code == keyplane.VerifyValid {
			got++
		}
	}
	if got != 10 {
		t.Fatalf("after the sweep: admitted %d, want 10", got)
	}
}

func BenchmarkCheck(b *testing.B) {
	l := New()
	defer l.Close()
	rec := record(policy("default", 1<<40, 1, 0, keyplane.TokenBucket), policy("hour", 1<<40, 3600, 0, keyplane.SlidingWindow))
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		if d, _ := l.Check(context.Background(), rec, 1, now); d.Code != keyplane.VerifyValid {
			b.Fatal(d.Code)
		}
	}
}
