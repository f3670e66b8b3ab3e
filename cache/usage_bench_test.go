package cache_test

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/cache"
	"github.com/keyplane/keyplane/coarseclock"
	"github.com/keyplane/keyplane/ratelimit"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/teststore"
	"github.com/keyplane/keyplane/usage"
)

// BenchmarkVerifyCachedUsage is BenchmarkVerifyCached with usage metering
// off and on, as serve wires it (flushed every second): DESIGN.md section 7
// allows metering at most 5 % of the throughput.
func BenchmarkVerifyCachedUsage(b *testing.B) {
	for _, metered := range []bool{false, true} {
		name := "off"
		if metered {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			svc, ctx, req := usageFixture(b, metered)
			b.Run("serial", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if res, _ := svc.Verify(ctx, req); !res.Valid {
						b.Fatal(res.Code)
					}
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if res, _ := svc.Verify(ctx, req); !res.Valid {
							b.Error(res.Code)
							return
						}
					}
				})
			})
		})
	}
}

// BenchmarkVerifyCachedUsageRatio measures metering's share on a machine
// whose speed drifts: it alternates blocks of 1,000 verifications with the
// meter off and on, so that both see the same conditions, and reports the
// throughput with metering on as a share of off ("on/off"), from the total
// time of each. In parallel, each goroutine alternates on its own.
func BenchmarkVerifyCachedUsageRatio(b *testing.B) {
	const block = 1000
	off, offCtx, offReq := usageFixture(b, false)
	on, onCtx, onReq := usageFixture(b, true)
	run := func(svc *service.Service, ctx context.Context, req keyplane.VerifyRequest) (time.Duration, bool) {
		start := time.Now()
		for range block {
			if res, _ := svc.Verify(ctx, req); !res.Valid {
				b.Error(res.Code)
				return 0, false
			}
		}
		return time.Since(start), true
	}
	report := func(b *testing.B, offTime, onTime time.Duration) {
		b.ReportMetric(float64(offTime)/float64(onTime), "on/off")
		b.ReportMetric(float64(offTime.Nanoseconds())/float64(b.N*block), "ns/off")
		b.ReportMetric(float64(onTime.Nanoseconds())/float64(b.N*block), "ns/on")
	}
	b.Run("serial", func(b *testing.B) {
		var offTime, onTime time.Duration
		b.ReportAllocs()
		for b.Loop() {
			offBlock, ok := run(off, offCtx, offReq)
			onBlock, ok2 := run(on, onCtx, onReq)
			if !ok || !ok2 {
				return
			}
			offTime, onTime = offTime+offBlock, onTime+onBlock
		}
		report(b, offTime, onTime)
	})
	b.Run("parallel", func(b *testing.B) {
		var offTime, onTime atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				offBlock, ok := run(off, offCtx, offReq)
				onBlock, ok2 := run(on, onCtx, onReq)
				if !ok || !ok2 {
					return
				}
				offTime.Add(int64(offBlock))
				onTime.Add(int64(onBlock))
			}
		})
		// Each goroutine's time is its own: per verification, a core's.
		report(b, time.Duration(offTime.Load()), time.Duration(onTime.Load()))
	})
}

func TestVerifyCachedMeteredDoesNotAllocate(t *testing.T) {
	svc, ctx, req := usageFixture(t, true)
	if n := testing.AllocsPerRun(1000, func() { svc.Verify(ctx, req) }); n != 0 {
		t.Fatalf("a cached, metered verification allocates %v times", n)
	}
}

// usageFixture is a service wired as serve wires it, with or without a
// usage meter, and a request for a cached key with a scope, an IP range and
// an endpoint.
func usageFixture(b testing.TB, metered bool) (*service.Service, context.Context, keyplane.VerifyRequest) {
	store := teststore.New(b)
	clock := coarseclock.New(time.Millisecond)
	b.Cleanup(clock.Stop)
	c, err := cache.New(store, cache.Config{Logger: slog.New(slog.DiscardHandler), Clock: clock})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	limiter, throttle := ratelimit.New(), ratelimit.NewThrottle(ratelimit.ThrottleConfig{})
	b.Cleanup(limiter.Close)
	b.Cleanup(throttle.Close)
	cfg := service.Config{Records: c, Cache: c, Now: clock.Now, Limiter: limiter, Throttle: throttle}
	if metered {
		meter := usage.New(store, usage.Config{Logger: slog.New(slog.DiscardHandler)})
		b.Cleanup(func() { meter.Close(context.Background()) })
		cfg.Usage = meter
	}
	svc, err := service.New(store, cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := keyplane.NewContextWithActor(context.Background(), service.SystemActor)
	acc, _ := svc.CreateAccount(ctx, service.AccountInput{Name: "a", AllowedScopes: []string{"data:*"}})
	k, err := svc.CreateKey(ctx, acc.ID, service.KeyInput{Name: "k", Scopes: []string{"data:read"}, AllowedCIDRs: []string{"10.0.0.0/8"}})
	if err != nil {
		b.Fatal(err)
	}
	req := keyplane.VerifyRequest{Key: k.Plaintext, Scope: "data:read", IP: netip.MustParseAddr("10.1.2.3"), Endpoint: "GET /v1/things/{id}", Cost: 1}
	if res, err := svc.Verify(ctx, req); err != nil || !res.Valid {
		b.Fatal(err, res.Code)
	}
	return svc, ctx, req
}
