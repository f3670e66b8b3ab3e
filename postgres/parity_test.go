package postgres_test

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/sqlite"
)

// TestReadsBackAsSQLiteDoes writes the same edge-case values to both stores
// and expects identical structs back, down to nil versus empty and metadata
// bytes: a service must not behave differently for changing its database.
func TestReadsBackAsSQLiteDoes(t *testing.T) {
	pg := openTestDB(t)
	lite, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keyplane.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()

	tokyo := time.FixedZone("UTC+9", 9*3600)
	at := time.Date(2026, 7, 1, 9, 0, 0, 123456789, tokyo)
	accounts := []*keyplane.Account{
		{ID: "acc_nil_scopes", Name: "Nil", Plan: "free", Status: keyplane.AccountActive, CreatedAt: at, UpdatedAt: at},
		{ID: "acc_scopes", Name: "Ünïcödé 🚀", Plan: "pro", AllowedScopes: []string{"data:*", `odd "scope", {with} \ chars`},
			Status: keyplane.AccountSuspended, CreatedAt: at, UpdatedAt: at.Add(time.Hour)},
	}
	plans := []*keyplane.Plan{
		{Name: "bare", MaxKeys: 1, CreatedAt: at, UpdatedAt: at},
		{Name: "empties", RateLimits: []keyplane.RateLimitPolicy{}, Quota: &keyplane.Quota{}, AllowedScopes: []string{}, CreatedAt: at, UpdatedAt: at},
		{Name: "pro", RateLimits: []keyplane.RateLimitPolicy{{Name: "per_second", Limit: ptr[int64](10), WindowSeconds: 1, Burst: 2, Algorithm: keyplane.TokenBucket}},
			Quota: &keyplane.Quota{Limit: 5, Period: keyplane.QuotaMonth, Shared: true}, MaxKeys: 100,
			AllowedScopes: []string{"data:*", `odd "scope", {with} \ chars`}, CreatedAt: at, UpdatedAt: at.Add(time.Hour)},
	}
	// acc_nil_scopes names "free", which no store has: its records carry no plan facts.
	accounts = append(accounts, &keyplane.Account{ID: "acc_empties", Name: "E", Plan: "empties", Status: keyplane.AccountActive, CreatedAt: at, UpdatedAt: at},
		&keyplane.Account{ID: "acc_bare", Name: "B", Plan: "bare", Status: keyplane.AccountActive, CreatedAt: at, UpdatedAt: at})
	keys := []*keyplane.Key{
		{ID: "key_on_empties", AccountID: "acc_empties", Hash: [32]byte{4}, Enabled: true, CreatedAt: at, UpdatedAt: at},
		{ID: "key_on_bare", AccountID: "acc_bare", Hash: [32]byte{5}, Enabled: true, CreatedAt: at, UpdatedAt: at},
		{ID: "key_nils", AccountID: "acc_nil_scopes", Hash: [32]byte{1}, Enabled: true, CreatedAt: at, UpdatedAt: at},
		{ID: "key_empties", AccountID: "acc_nil_scopes", Hash: [32]byte{2}, Scopes: []string{}, AllowedCIDRs: []netip.Prefix{},
			RateLimits: []keyplane.RateLimitPolicy{}, Quota: &keyplane.Quota{}, Metadata: json.RawMessage(`{}`), CreatedAt: at, UpdatedAt: at},
		{ID: "key_full", AccountID: "acc_scopes", Name: "clé 🔑", Environment: keyplane.EnvTest, Hash: [32]byte{3}, Hint: "kp_test_ab…yz",
			Scopes:       []string{"data:read", "billing:*"},
			AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8"), netip.MustParsePrefix("2001:db8::/32")},
			RateLimits:   []keyplane.RateLimitPolicy{{Name: "open", WindowSeconds: 1, Algorithm: keyplane.SlidingWindow}},
			Quota:        &keyplane.Quota{Limit: 5, Period: keyplane.QuotaDay, Shared: true},
			// Key order, spacing, escapes and duplicate keys all survive as written.
			Metadata: json.RawMessage(`{ "z": 1, "a": "\u0000\u00e9", "n": 1.50, "z": 2 }`),
			Enabled:  true, CreatedAt: at, UpdatedAt: at, ExpiresAt: ptr(at.Add(time.Hour)), RevokedAt: ptr(at), LastUsedAt: ptr(at),
			RolledFromID: "key_before", RolledToID: "key_after"},
	}

	for _, s := range []keyplane.Store{lite, pg} {
		for _, p := range plans {
			if err := s.CreatePlan(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		for _, a := range accounts {
			if err := s.CreateAccount(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range keys {
			if err := s.CreateKey(ctx, k, 10, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, a := range accounts {
		want, err := lite.Account(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pg.Account(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("account %s:\npostgres %#v\n  sqlite %#v", a.ID, got, want)
		}
	}
	for _, p := range plans {
		want, err := lite.Plan(ctx, p.Name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pg.Plan(ctx, p.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("plan %s:\npostgres %#v\n  sqlite %#v", p.Name, got, want)
		}
	}
	for _, k := range keys {
		want, err := lite.VerifyRecord(ctx, k.Hash)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pg.VerifyRecord(ctx, k.Hash)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("key %s:\npostgres %#v\n  sqlite %#v", k.ID, got, want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
