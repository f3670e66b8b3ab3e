package limitertest

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
)

// Run runs every accuracy test against the limiter.
func Run(t *testing.T, l keyplane.Limiter) {
	for name, fn := range map[string]func(*testing.T, keyplane.Limiter){
		"TokenBucketAccuracy":           testTokenBucketAccuracy,
		"TokenBucketBurstAndCost":       testTokenBucketBurstAndCost,
		"SlidingWindowAccuracy":         testSlidingWindowAccuracy,
		"PoliciesAreAtomic":             testPoliciesAreAtomic,
		"UnlimitedZeroAndChangedPolicy": testUnlimitedZeroAndChangedPolicies,
		"ExactAnswers":                  testExactAnswers,
	} {
		t.Run(name, func(t *testing.T) { fn(t, l) })
	}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // on a window boundary for any window of whole seconds dividing a day

var keySeq atomic.Int64

// record is a key of its own: each test starts from fresh state, even on a
// shared server.
func record(policies ...keyplane.RateLimitPolicy) *keyplane.VerifyRecord {
	return &keyplane.VerifyRecord{Key: keyplane.Key{ID: fmt.Sprintf("key_lt%d_%d", time.Now().UnixNano(), keySeq.Add(1)), RateLimits: policies}}
}

func policy(name string, limit, windowSeconds, burst int64, algo keyplane.Algorithm) keyplane.RateLimitPolicy {
	return keyplane.RateLimitPolicy{Name: name, Limit: &limit, WindowSeconds: windowSeconds, Burst: burst, Algorithm: algo}
}

// admitted sends n requests at one instant from 32 goroutines and counts
// how many pass: concurrency must never admit more than the algorithm allows.
func admitted(t *testing.T, l keyplane.Limiter, rec *keyplane.VerifyRecord, at time.Time, n int) int {
	t.Helper()
	var ok atomic.Int64
	var wg sync.WaitGroup
	per := n / 32
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				d, err := l.Check(context.Background(), rec, 1, at)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Code == keyplane.VerifyValid {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return int(ok.Load())
}

func testTokenBucketAccuracy(t *testing.T, l keyplane.Limiter) {
	// 100 per minute, burst 100: a full bucket admits 100 at once, then one
	// every 600 ms.
	rec := record(policy("default", 100, 60, 0, keyplane.TokenBucket))
	if got := admitted(t, l, rec, t0, 3200); got != 100 {
		t.Fatalf("a full bucket admitted %d of 3200 concurrent requests, want 100", got)
	}
	if got := admitted(t, l, rec, t0.Add(599*time.Millisecond), 320); got != 0 {
		t.Fatalf("599 ms later: admitted %d, want 0", got)
	}
	if got := admitted(t, l, rec, t0.Add(6*time.Second), 320); got != 10 {
		t.Fatalf("6 s later: admitted %d, want 10", got)
	}
	// Over the next 3 minutes at 3× the rate, it admits exactly one per 600 ms.
	total := 0
	for ms := int64(6000 + 200); ms <= 186000; ms += 200 {
		for range 3 {
			if d, _ := l.Check(context.Background(), rec, 1, t0.Add(time.Duration(ms)*time.Millisecond)); d.Code == keyplane.VerifyValid {
				total++
			}
		}
	}
	if total != 300 {
		t.Fatalf("3 minutes at 3× the rate admitted %d, want 300", total)
	}
}

func testTokenBucketBurstAndCost(t *testing.T, l keyplane.Limiter) {
	// 10 per second with a burst of 3.
	rec := record(policy("burst", 10, 1, 3, keyplane.TokenBucket))
	if got := admitted(t, l, rec, t0, 320); got != 3 {
		t.Fatalf("burst 3 admitted %d at once", got)
	}
	d, _ := l.Check(context.Background(), rec, 1, t0)
	if d.Code != keyplane.VerifyRateLimited || d.RetryAfter != 100*time.Millisecond || d.RateLimit.Remaining != 0 || d.RateLimit.Policy != "burst" {
		t.Fatalf("refusal: %+v %+v", d, d.RateLimit)
	}
	// A cost above the burst can never pass; a cost of 2 needs 2 tokens.
	if d, _ := l.Check(context.Background(), rec, 4, t0.Add(time.Hour)); d.Code != keyplane.VerifyRateLimited {
		t.Fatalf("cost 4 with burst 3: %s", d.Code)
	}
	if d, _ := l.Check(context.Background(), rec, 2, t0.Add(time.Hour)); d.Code != keyplane.VerifyValid || d.RateLimit.Remaining != 1 {
		t.Fatalf("cost 2 on a full bucket: %s %+v", d.Code, d.RateLimit)
	}
	// Cost 0 checks without charging.
	for range 5 {
		if d, _ := l.Check(context.Background(), rec, 0, t0.Add(time.Hour)); d.Code != keyplane.VerifyValid {
			t.Fatal("cost 0 refused")
		}
	}
}

func testSlidingWindowAccuracy(t *testing.T, l keyplane.Limiter) {
	rec := record(policy("minute", 100, 60, 0, keyplane.SlidingWindow))
	if got := admitted(t, l, rec, t0, 3200); got != 100 {
		t.Fatalf("a fresh window admitted %d of 3200, want 100", got)
	}
	// 15 s into the next window, the previous window still weighs 75 %.
	if got := admitted(t, l, rec, t0.Add(75*time.Second), 320); got != 25 {
		t.Fatalf("15 s into the next window: admitted %d, want 25", got)
	}
	// Two windows later the previous one is empty: a full window again.
	if got := admitted(t, l, rec, t0.Add(180*time.Second), 3200); got != 100 {
		t.Fatalf("after an idle window: admitted %d, want 100", got)
	}
	// Under steady overload no fixed window ever admits more than the limit.
	perWindow := map[int64]int{}
	for ms := int64(240000); ms < 600000; ms += 100 {
		at := t0.Add(time.Duration(ms) * time.Millisecond)
		if d, _ := l.Check(context.Background(), rec, 1, at); d.Code == keyplane.VerifyValid {
			perWindow[ms/60000]++
		}
	}
	for w, n := range perWindow {
		if n > 100 {
			t.Fatalf("window %d admitted %d, over the limit of 100", w, n)
		}
	}
}

// A refusal by one policy charges none of the others.
func testPoliciesAreAtomic(t *testing.T, l keyplane.Limiter) {
	rec := record(
		policy("sustained", 5, 10, 0, keyplane.TokenBucket), // 5 per 10 s
		policy("burst", 2, 1, 0, keyplane.TokenBucket),      // 2 per second
	)
	got := 0
	for s := range 4 {
		got += admitted(t, l, rec, t0.Add(time.Duration(s)*time.Second), 64)
	}
	// "sustained" holds 5 and regains one every 2 s: 2 + 2 + 2 (5 plus the
	// one regained by 2 s) + 0 = 6. Had the 250 refused requests charged it,
	// it would have run out at once.
	if got != 6 {
		t.Fatalf("admitted %d over 4 s, want 6", got)
	}
	d, _ := l.Check(context.Background(), rec, 1, t0.Add(3*time.Second))
	if d.Code != keyplane.VerifyRateLimited || d.RateLimit.Policy != "sustained" {
		t.Fatalf("the refusing policy should be sustained: %+v", d.RateLimit)
	}
}

func testUnlimitedZeroAndChangedPolicies(t *testing.T, l keyplane.Limiter) {
	unlimited := keyplane.RateLimitPolicy{Name: "none", WindowSeconds: 1, Algorithm: keyplane.TokenBucket}
	if got := admitted(t, l, record(unlimited), t0, 3200); got != 3200 {
		t.Fatalf("unlimited admitted %d", got)
	}
	zero := record(policy("off", 0, 60, 0, keyplane.TokenBucket))
	if got := admitted(t, l, zero, t0, 320); got != 0 {
		t.Fatalf("limit 0 admitted %d", got)
	}
	// Raising a key's limit starts the policy afresh.
	rec := record(policy("p", 1, 60, 0, keyplane.TokenBucket))
	admitted(t, l, rec, t0, 32)
	rec.Key.RateLimits = []keyplane.RateLimitPolicy{policy("p", 10, 60, 0, keyplane.TokenBucket)}
	if got := admitted(t, l, rec, t0, 320); got != 10 {
		t.Fatalf("after raising the limit: admitted %d, want 10", got)
	}
}

// testExactAnswers pins what both limiters answer, to the microsecond, where
// they could drift apart: a limit that does not divide its window, a burst
// above the limit, a cost between the two, and costs that can never pass.
func testExactAnswers(t *testing.T, l keyplane.Limiter) {
	ctx := context.Background()
	check := func(rec *keyplane.VerifyRecord, cost int64, at time.Time, want keyplane.VerifyCode, remaining int64, retry time.Duration) {
		t.Helper()
		d, err := l.Check(ctx, rec, cost, at)
		if err != nil {
			t.Fatal(err)
		}
		if d.Code != want || d.RateLimit == nil || d.RateLimit.Remaining != remaining || d.RetryAfter != retry {
			t.Fatalf("at +%v cost %d: %s remaining %v retry %v; want %s remaining %d retry %v",
				at.Sub(t0), cost, d.Code, d.RateLimit, d.RetryAfter, want, remaining, retry)
		}
	}
	// 7 per second: one unit every 142,858 µs (rounded up, never over-admitting).
	seven := record(policy("s", 7, 1, 0, keyplane.TokenBucket))
	for range 7 {
		l.Check(ctx, seven, 1, t0)
	}
	check(seven, 1, t0.Add(142857*time.Microsecond), keyplane.VerifyRateLimited, 0, time.Microsecond)
	check(seven, 1, t0.Add(142858*time.Microsecond), keyplane.VerifyValid, 0, 0)
	// Burst 20 over a limit of 10: a cost of 15 fits a full bucket.
	burst := record(policy("b", 10, 1, 20, keyplane.TokenBucket))
	check(burst, 15, t0, keyplane.VerifyValid, 5, 0)
	check(burst, 21, t0.Add(time.Hour), keyplane.VerifyRateLimited, 0, time.Duration(math.MaxInt64))
	// A sliding window never admits a cost above its limit.
	sliding := record(policy("w", 10, 60, 0, keyplane.SlidingWindow))
	check(sliding, 11, t0, keyplane.VerifyRateLimited, 0, time.Duration(math.MaxInt64))
	check(sliding, 10, t0, keyplane.VerifyValid, 0, 0)
}
