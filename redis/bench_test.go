package redis_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/redis"
	"github.com/keyplane/keyplane/redis/redistest"
	goredis "github.com/redis/go-redis/v9"
)

// BenchmarkRedisLimiter is one verification's rate-limit check in cluster
// mode: one script round trip to the local Redis, two policies.
func BenchmarkRedisLimiter(b *testing.B) {
	l, _, _ := benchLimiter(b)
	big := int64(1) << 40
	rec := &keyplane.VerifyRecord{Key: keyplane.Key{ID: "key_bench", RateLimits: []keyplane.RateLimitPolicy{
		{Name: "second", Limit: &big, WindowSeconds: 1, Algorithm: keyplane.TokenBucket},
		{Name: "hour", Limit: &big, WindowSeconds: 3600, Algorithm: keyplane.SlidingWindow}}}}
	for _, mode := range []string{"serial", "parallel"} {
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			check := func() {
				if d, err := l.Check(context.Background(), rec, 1, time.Now()); err != nil || d.Code != keyplane.VerifyValid {
					b.Error(err, d.Code)
				}
			}
			if mode == "serial" {
				for b.Loop() {
					check()
				}
				return
			}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					check()
				}
			})
		})
	}
}

// BenchmarkRedisMemory reports MEMORY USAGE of one limited key's state at
// 1000 requests a minute: the GCRA value, the sliding-window hash, and, for
// comparison, a sorted-set sliding log (one member per request in the
// window), the common alternative. It runs once; use -benchtime 1x.
func BenchmarkRedisMemory(b *testing.B) {
	l, url, prefix := benchLimiter(b)
	opt, _ := goredis.ParseURL(url)
	raw := goredis.NewClient(opt)
	defer raw.Close()
	ctx := context.Background()
	limit := int64(1000)
	for range b.N {
		now := time.Now()
		for _, algo := range []keyplane.Algorithm{keyplane.TokenBucket, keyplane.SlidingWindow} {
			rec := &keyplane.VerifyRecord{Key: keyplane.Key{ID: "key_mem_" + string(algo), RateLimits: []keyplane.RateLimitPolicy{
				{Name: "minute", Limit: &limit, WindowSeconds: 60, Algorithm: algo}}}}
			for i := range 1000 {
				l.Check(ctx, rec, 1, now.Add(time.Duration(i)*60*time.Millisecond))
			}
			keys, _ := raw.Keys(ctx, prefix+"key_mem_"+string(algo)+":*").Result()
			if len(keys) != 1 {
				b.Fatalf("%s: %d keys", algo, len(keys))
			}
			bytes, _ := raw.MemoryUsage(ctx, keys[0]).Result()
			b.ReportMetric(float64(bytes), string(algo)+"-bytes")
		}
		log := prefix + "sorted-set-log"
		for i := range 1000 {
			raw.ZAdd(ctx, log, goredis.Z{Score: float64(now.UnixMicro() + int64(i)*60000), Member: fmt.Sprintf("%d-%d", now.UnixMicro(), i)})
		}
		bytes, _ := raw.MemoryUsage(ctx, log).Result()
		b.ReportMetric(float64(bytes), "sorted-set-log-bytes")
	}
}

// benchLimiter is a limiter on the test Redis with keys of its own, removed
// when the benchmark ends.
func benchLimiter(b *testing.B) (l *redis.Limiter, url, prefix string) {
	url = redistest.URL(b)
	bus, err := redis.Open(context.Background(), url, redistest.Channel(b), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bus.Close() })
	prefix = "keyplane-bench:" + redistest.Channel(b) + ":"
	b.Cleanup(func() { redistest.DeleteKeys(b, url, prefix+"*") })
	l = bus.Limiter(redis.LimiterConfig{KeyPrefix: prefix})
	b.Cleanup(func() { l.Close() })
	return l, url, prefix
}
