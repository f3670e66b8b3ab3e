package cache_test

import (
	"net/netip"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

// BenchmarkVerifyCached is the hot path: a verification of a cached, valid
// key with a scope and an IP-range check (DESIGN.md section 7: ≤ 500 ns/op
// on one goroutine, ≥ 4 M/s across 2 cores).
func BenchmarkVerifyCached(b *testing.B) {
	f := newFixtureB(b)
	acc, _ := f.svc.CreateAccount(f.ctx, service.AccountInput{Name: "a", AllowedScopes: []string{"data:*"}})
	k, err := f.svc.CreateKey(f.ctx, acc.ID, service.KeyInput{Name: "k", Scopes: []string{"data:read"}, AllowedCIDRs: []string{"10.0.0.0/8", "2001:db8::/32"}})
	if err != nil {
		b.Fatal(err)
	}
	req := keyplane.VerifyRequest{Key: k.Plaintext, Scope: "data:read", IP: netip.MustParseAddr("10.1.2.3"), Cost: 1}
	if res, err := f.svc.Verify(f.ctx, req); err != nil || !res.Valid {
		b.Fatal(err, res.Code)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if res, _ := f.svc.Verify(f.ctx, req); !res.Valid {
				b.Fatal(res.Code)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if res, _ := f.svc.Verify(f.ctx, req); !res.Valid {
					b.Error(res.Code)
					return
				}
			}
		})
	})
}

func TestVerifyCachedDoesNotAllocate(t *testing.T) {
	f := newFixture(t, 0) // with a rate limiter and a failure throttle, as serve has
	acc, _ := f.svc.CreateAccount(f.ctx, service.AccountInput{Name: "a", AllowedScopes: []string{"data:*"}})
	k, _ := f.svc.CreateKey(f.ctx, acc.ID, service.KeyInput{Name: "k", Scopes: []string{"data:read"}, AllowedCIDRs: []string{"10.0.0.0/8"}})
	req := keyplane.VerifyRequest{Key: k.Plaintext, Scope: "data:read", IP: netip.MustParseAddr("10.1.2.3"), Cost: 1}
	f.svc.Verify(f.ctx, req)
	if n := testing.AllocsPerRun(1000, func() { f.svc.Verify(f.ctx, req) }); n != 0 {
		t.Fatalf("a cached verification allocates %v times", n)
	}
}

func TestVerifyUnknownCachedDoesNotAllocate(t *testing.T) {
	f := newFixture(t, 0)
	req := keyplane.VerifyRequest{Key: "kp_live_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17"}
	f.svc.Verify(f.ctx, req)
	if n := testing.AllocsPerRun(1000, func() { f.svc.Verify(f.ctx, req) }); n != 0 {
		t.Fatalf("verifying a cached unknown key allocates %v times", n)
	}
}
