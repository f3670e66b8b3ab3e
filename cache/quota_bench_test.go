package cache_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"log/slog"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/cache"
	"github.com/keyplane/keyplane/coarseclock"
	"github.com/keyplane/keyplane/quota"
	"github.com/keyplane/keyplane/ratelimit"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/teststore"
	"github.com/keyplane/keyplane/verifyfailures"
)

// BenchmarkVerifyCachedQuota is BenchmarkVerifyCached for a key with a daily
// quota: the quota is counted in memory, written once a second.
func BenchmarkVerifyCachedQuota(b *testing.B) {
	svc, ctx, req := quotaFixture(b)
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
}

func TestVerifyCachedQuotaDoesNotAllocate(t *testing.T) {
	svc, ctx, req := quotaFixture(t)
	if n := testing.AllocsPerRun(1000, func() { svc.Verify(ctx, req) }); n != 0 {
		t.Fatalf("a cached verification of a key with a quota allocates %v times", n)
	}
}

// quotaFixture is a service wired as serve wires it and a request for a
// cached key with a daily quota.
func quotaFixture(b testing.TB) (*service.Service, context.Context, keyplane.VerifyRequest) {
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
	quotas := quota.New(store, quota.Config{})
	b.Cleanup(func() { quotas.Close(context.Background()) })
	failures := verifyfailures.New(store, verifyfailures.Config{Logger: slog.New(slog.DiscardHandler)})
	b.Cleanup(func() { failures.Close(context.Background()) })
	svc, err := service.New(store, service.Config{Records: c, Cache: c, Now: clock.Now, Limiter: limiter, Throttle: throttle, Quotas: quotas,
		VerifyFailures: failures})
	if err != nil {
		b.Fatal(err)
	}
	ctx := keyplane.NewContextWithActor(context.Background(), service.SystemActor)
	acc, _ := svc.CreateAccount(ctx, service.AccountInput{Name: "a", AllowedScopes: []string{"data:*"}})
	k, err := svc.CreateKey(ctx, acc.ID, service.KeyInput{Name: "k", Scopes: []string{"data:read"}, AllowedCIDRs: []string{"10.0.0.0/8"},
		Quota: &keyplane.Quota{Limit: 1 << 50, Period: keyplane.QuotaDay}})
	if err != nil {
		b.Fatal(err)
	}
	req := keyplane.VerifyRequest{Key: k.Plaintext, Scope: "data:read", IP: netip.MustParseAddr("10.1.2.3"), Cost: 1}
	if res, err := svc.Verify(ctx, req); err != nil || !res.Valid {
		b.Fatal(err, res.Code)
	}
	return svc, ctx, req
}
