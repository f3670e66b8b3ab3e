package redis_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/ratelimit/limitertest"
	"github.com/keyplane/keyplane/redis"
	"github.com/keyplane/keyplane/redis/redistest"
)

// testTimeout replaces the limiter's 250 ms round-trip bound in tests that
// check counting, not outages: under `go test -race` on a busy CI machine a
// Redis answer can take longer, and a timeout would read as Redis being down.
const testTimeout = 5 * time.Second

func TestLimiterConformance(t *testing.T) {
	limitertest.Run(t, testLimiter(t))
}

// An instance whose clock runs behind must not move a sliding window back
// and wipe its count: the window's limit holds across instances.
func TestSlidingWindowClockSkew(t *testing.T) {
	l := testLimiter(t)
	limit := int64(100)
	rec := &keyplane.VerifyRecord{Key: keyplane.Key{ID: "key_skew", RateLimits: []keyplane.RateLimitPolicy{
		{Name: "m", Limit: &limit, WindowSeconds: 60, Algorithm: keyplane.SlidingWindow}}}}
	boundary := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	ahead, behind := boundary.Add(time.Millisecond), boundary.Add(-2*time.Millisecond)
	for range 100 {
		if d, err := l.Check(context.Background(), rec, 1, ahead); err != nil || d.Code != keyplane.VerifyValid {
			t.Fatalf("filling the window: %v %v", d.Code, err)
		}
	}
	if d, _ := l.Check(context.Background(), rec, 1, behind); d.Code != keyplane.VerifyRateLimited {
		t.Fatalf("a check 2 ms behind, across the boundary: %s; the window's count was lost", d.Code)
	}
}

// testLimiter is a limiter on the test Redis with keys of its own, removed
// when the test ends.
func testLimiter(t *testing.T) *redis.Limiter {
	url := redistest.URL(t)
	bus, err := redis.Open(context.Background(), url, redistest.Channel(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	prefix := "keyplane-test:" + redistest.Channel(t) + ":"
	t.Cleanup(func() { redistest.DeleteKeys(t, url, prefix+"*") })
	l := bus.Limiter(redis.LimiterConfig{KeyPrefix: prefix, Timeout: testTimeout})
	t.Cleanup(func() { l.Close() })
	return l
}

func TestUnlimitedKeyCostsNothing(t *testing.T) {
	l := testLimiter(t)
	rec := &keyplane.VerifyRecord{Key: keyplane.Key{ID: "key_free"}}
	if n := testing.AllocsPerRun(100, func() { l.Check(context.Background(), rec, 1, time.Now()) }); n != 0 {
		t.Fatalf("checking a key without policies allocates %v times", n)
	}
}
