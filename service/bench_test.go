package service_test

import (
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

// BenchmarkVerify measures a full verification (parse, hash, store lookup,
// every check) of a valid key with a scope and an IP range, on the store the
// run selects (SQLite by default), with the database pages warm. It is the
// uncached path: issue #4's cache sits in front of it.
func BenchmarkVerify(b *testing.B) {
	e := newEnv(b)
	acc := e.account(b, "data:*")
	var k *service.CreatedKey
	for range 20 {
		k = e.key(b, acc.ID, service.KeyInput{Scopes: []string{"data:read"}, AllowedCIDRs: []string{"10.0.0.0/8"}})
	}
	req := keyplane.VerifyRequest{Key: k.Plaintext, Scope: "data:read", IP: mustAddr("10.1.2.3")}
	b.ReportAllocs()
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if res, err := e.svc.Verify(e.ctx, req); err != nil || !res.Valid {
				b.Fatalf("%v %+v", err, res)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if res, err := e.svc.Verify(e.ctx, req); err != nil || !res.Valid {
					b.Errorf("%v %+v", err, res)
					return
				}
			}
		})
	})
	b.Run("not_found_bad_checksum", func(b *testing.B) {
		bad := keyplane.VerifyRequest{Key: k.Plaintext[:len(k.Plaintext)-1] + flip(k.Plaintext[len(k.Plaintext)-1])}
		for b.Loop() {
			if res, _ := e.svc.Verify(e.ctx, bad); res.Code != keyplane.VerifyNotFound {
				b.Fatal(res.Code)
			}
		}
	})
}
