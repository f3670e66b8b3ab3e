package service_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/quota"
	"github.com/keyplane/keyplane/ratelimit"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/teststore"
	"github.com/keyplane/keyplane/usage"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type env struct {
	svc    *service.Service
	store  keyplane.Store
	clock  *clock
	quotas *quota.Meter    // flushes only when a test says so
	meter  *usage.Meter    // likewise
	ctx    context.Context // as an admin operator
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvOn(t, teststore.New(t), &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
}

// newEnvOn starts a service on an existing store: another instance, or a restart.
func newEnvOn(t testing.TB, store keyplane.Store, c *clock) *env {
	t.Helper()
	limiter := ratelimit.New()
	t.Cleanup(limiter.Close)
	throttle := ratelimit.NewThrottle(ratelimit.ThrottleConfig{})
	t.Cleanup(throttle.Close)
	quotas := quota.New(store, quota.Config{FlushInterval: time.Hour, Now: c.Now})
	t.Cleanup(func() { quotas.Close(context.Background()) })
	meter := usage.New(store, usage.Config{FlushInterval: time.Hour, Now: c.Now})
	t.Cleanup(func() { meter.Close(context.Background()) })
	svc, err := service.New(store, service.Config{Now: c.Now, Limiter: limiter, Throttle: throttle, Quotas: quotas,
		Usage: meter, UsageReports: usage.NewReporter(store)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := keyplane.NewContextWithActor(context.Background(), keyplane.Actor{Kind: "token", ID: "tok_test", Role: keyplane.RoleAdmin})
	return &env{svc: svc, store: store, clock: c, quotas: quotas, meter: meter, ctx: ctx}
}

func (e *env) account(t testing.TB, scopes ...string) *keyplane.Account {
	t.Helper()
	a, err := e.svc.CreateAccount(e.ctx, service.AccountInput{Name: "Acme", AllowedScopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (e *env) key(t testing.TB, accountID string, in service.KeyInput) *service.CreatedKey {
	t.Helper()
	if in.Name == "" {
		in.Name = "test key"
	}
	k, err := e.svc.CreateKey(e.ctx, accountID, in)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (e *env) verify(t testing.TB, req keyplane.VerifyRequest) keyplane.VerifyCode {
	t.Helper()
	res, err := e.svc.Verify(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid != (res.Code == keyplane.VerifyValid) {
		t.Fatalf("Valid=%v with code %s", res.Valid, res.Code)
	}
	return res.Code
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := keyplane.ErrorCode(err); got != code {
		t.Fatalf("error code %q (%v), want %q", got, err, code)
	}
}

func TestVerifyCodes(t *testing.T) {
	e := newEnv(t)
	acc := e.account(t, "data:*", "billing:read")
	valid := e.key(t, acc.ID, service.KeyInput{Scopes: []string{"data:read", "billing:read"}, Metadata: json.RawMessage(`{"plan":"gold"}`)})
	wild := e.key(t, acc.ID, service.KeyInput{Scopes: []string{"data:*"}})
	cidr := e.key(t, acc.ID, service.KeyInput{AllowedCIDRs: []string{"203.0.113.0/24", "2001:db8::/32", "198.51.100.7"}})
	revoked := e.key(t, acc.ID, service.KeyInput{})
	if _, err := e.svc.RevokeKey(e.ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	expiring := e.key(t, acc.ID, service.KeyInput{ExpiresAt: ptr(e.clock.Now().Add(time.Minute))})
	disabled := e.key(t, acc.ID, service.KeyInput{Enabled: ptr(false)})
	other := e.account(t, "data:read")
	suspended := e.key(t, other.ID, service.KeyInput{})
	if _, err := e.svc.UpdateAccount(e.ctx, other.ID, service.AccountUpdate{Status: ptr(keyplane.AccountSuspended)}); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(2 * time.Minute) // past expiring's expiry

	badChecksum := valid.Plaintext[:len(valid.Plaintext)-1] + flip(valid.Plaintext[len(valid.Plaintext)-1])
	ip := netip.MustParseAddr
	for _, tc := range []struct {
		name string
		req  keyplane.VerifyRequest
		want keyplane.VerifyCode
	}{
		{"valid", keyplane.VerifyRequest{Key: valid.Plaintext}, keyplane.VerifyValid},
		{"valid with scope", keyplane.VerifyRequest{Key: valid.Plaintext, Scope: "data:read"}, keyplane.VerifyValid},
		{"wildcard grant", keyplane.VerifyRequest{Key: wild.Plaintext, Scope: "data:write"}, keyplane.VerifyValid},
		{"scope not granted", keyplane.VerifyRequest{Key: valid.Plaintext, Scope: "data:write"}, keyplane.VerifyInsufficientScope},
		{"scope of another resource", keyplane.VerifyRequest{Key: wild.Plaintext, Scope: "billing:read"}, keyplane.VerifyInsufficientScope},
		{"prefix is not a wildcard", keyplane.VerifyRequest{Key: wild.Plaintext, Scope: "database:read"}, keyplane.VerifyInsufficientScope},
		{"malformed", keyplane.VerifyRequest{Key: "hello"}, keyplane.VerifyNotFound},
		{"empty", keyplane.VerifyRequest{Key: ""}, keyplane.VerifyNotFound},
		{"bad checksum", keyplane.VerifyRequest{Key: badChecksum}, keyplane.VerifyNotFound},
		{"unknown", keyplane.VerifyRequest{Key: "kp_live_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17"}, keyplane.VerifyNotFound},
		{"other prefix", keyplane.VerifyRequest{Key: "xy" + valid.Plaintext[2:]}, keyplane.VerifyNotFound},
		{"revoked", keyplane.VerifyRequest{Key: revoked.Plaintext}, keyplane.VerifyRevoked},
		{"expired", keyplane.VerifyRequest{Key: expiring.Plaintext}, keyplane.VerifyExpired},
		{"disabled", keyplane.VerifyRequest{Key: disabled.Plaintext}, keyplane.VerifyDisabled},
		{"account suspended", keyplane.VerifyRequest{Key: suspended.Plaintext}, keyplane.VerifyDisabled},
		{"ipv4 inside", keyplane.VerifyRequest{Key: cidr.Plaintext, IP: ip("203.0.113.9")}, keyplane.VerifyValid},
		{"ipv4 single address", keyplane.VerifyRequest{Key: cidr.Plaintext, IP: ip("198.51.100.7")}, keyplane.VerifyValid},
		{"ipv4 mapped in ipv6", keyplane.VerifyRequest{Key: cidr.Plaintext, IP: ip("::ffff:203.0.113.9")}, keyplane.VerifyValid},
		{"ipv6 inside", keyplane.VerifyRequest{Key: cidr.Plaintext, IP: ip("2001:db8:1::5")}, keyplane.VerifyValid},
		{"ipv4 outside", keyplane.VerifyRequest{Key: cidr.Plaintext, IP: ip("198.51.100.8")}, keyplane.VerifyForbidden},
		{"ipv6 outside", keyplane.VerifyRequest{Key: cidr.Plaintext, IP: ip("2001:db9::1")}, keyplane.VerifyForbidden},
		{"no ip for a restricted key", keyplane.VerifyRequest{Key: cidr.Plaintext}, keyplane.VerifyForbidden},
		{"forbidden before scope", keyplane.VerifyRequest{Key: cidr.Plaintext, Scope: "nope:read", IP: ip("10.0.0.1")}, keyplane.VerifyForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.verify(t, tc.req); got != tc.want {
				t.Fatalf("code %s, want %s", got, tc.want)
			}
		})
	}

	res, _ := e.svc.Verify(e.ctx, keyplane.VerifyRequest{Key: valid.Plaintext})
	if res.Key == nil || res.Key.ID != valid.ID || res.Key.AccountID != acc.ID || string(res.Key.MetadataJSON()) != `{"plan":"gold"}` {
		t.Fatalf("valid result lacks the key's identity: %+v", res)
	}
	if res, _ := e.svc.Verify(e.ctx, keyplane.VerifyRequest{Key: "nope"}); res.Key != nil {
		t.Fatal("NOT_FOUND result carries a key")
	}
}

// Narrowing an account's allowed scopes restricts keys already issued.
func TestVerifyHonoursNarrowedAccountScopes(t *testing.T) {
	e := newEnv(t)
	acc := e.account(t, "data:*")
	k := e.key(t, acc.ID, service.KeyInput{Scopes: []string{"data:*"}})
	if got := e.verify(t, keyplane.VerifyRequest{Key: k.Plaintext, Scope: "data:write"}); got != keyplane.VerifyValid {
		t.Fatalf("before: %s", got)
	}
	if _, err := e.svc.UpdateAccount(e.ctx, acc.ID, service.AccountUpdate{AllowedScopes: &[]string{"data:read"}}); err != nil {
		t.Fatal(err)
	}
	if got := e.verify(t, keyplane.VerifyRequest{Key: k.Plaintext, Scope: "data:write"}); got != keyplane.VerifyInsufficientScope {
		t.Fatalf("after narrowing: %s", got)
	}
	if got := e.verify(t, keyplane.VerifyRequest{Key: k.Plaintext, Scope: "data:read"}); got != keyplane.VerifyValid {
		t.Fatalf("still allowed scope: %s", got)
	}
}

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	acc := e.account(t, "*")
	k := e.key(t, acc.ID, service.KeyInput{Name: "prod", Scopes: []string{"a:b"}})
	if !strings.HasPrefix(k.Plaintext, "kp_live_") || k.Status(e.clock.Now()) != keyplane.KeyActive || k.Hint != k.Plaintext[:12]+"…"+k.Plaintext[len(k.Plaintext)-4:] {
		t.Fatalf("new key: %+v %q", k.Key, k.Plaintext)
	}

	// disable → enable
	got, err := e.svc.UpdateKey(e.ctx, k.ID, service.KeyUpdate{Enabled: service.Optional[bool]{Set: true, Value: false}})
	if err != nil || got.Status(e.clock.Now()) != keyplane.KeyDisabled {
		t.Fatalf("disable: %v %v", err, got)
	}
	if c := e.verify(t, keyplane.VerifyRequest{Key: k.Plaintext}); c != keyplane.VerifyDisabled {
		t.Fatalf("disabled key verifies %s", c)
	}
	got, err = e.svc.UpdateKey(e.ctx, k.ID, service.KeyUpdate{Enabled: service.Optional[bool]{Set: true, Value: true}, Name: service.Optional[string]{Set: true, Value: " renamed "}})
	if err != nil || got.Status(e.clock.Now()) != keyplane.KeyActive || got.Name != "renamed" {
		t.Fatalf("enable: %v %+v", err, got)
	}

	// roll with a 1 h overlap: both work, the old one is rolling, then expires.
	rolled, err := e.svc.RollKey(e.ctx, k.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	next := rolled.Key
	if next.Name != "renamed" || next.RolledFromID != k.ID || rolled.Previous.RolledToID != next.ID || next.Plaintext == k.Plaintext {
		t.Fatalf("roll: %+v / %+v", next.Key, rolled.Previous)
	}
	if st := rolled.Previous.Status(e.clock.Now()); st != keyplane.KeyRolling {
		t.Fatalf("old key status %s, want rolling", st)
	}
	for _, p := range []string{k.Plaintext, next.Plaintext} {
		if c := e.verify(t, keyplane.VerifyRequest{Key: p, Scope: "a:b"}); c != keyplane.VerifyValid {
			t.Fatalf("during overlap: %s", c)
		}
	}
	_, err = e.svc.RollKey(e.ctx, k.ID, time.Hour)
	wantCode(t, err, keyplane.ECONFLICT) // already rolled
	_, err = e.svc.UpdateKey(e.ctx, k.ID, service.KeyUpdate{ExpiresAt: service.Optional[*time.Time]{Set: true, Value: ptr(e.clock.Now().Add(48 * time.Hour))}})
	wantCode(t, err, keyplane.ECONFLICT) // overlap cannot be stretched

	e.clock.Add(time.Hour)
	if c := e.verify(t, keyplane.VerifyRequest{Key: k.Plaintext}); c != keyplane.VerifyExpired {
		t.Fatalf("after overlap: old key %s, want EXPIRED", c)
	}
	if c := e.verify(t, keyplane.VerifyRequest{Key: next.Plaintext}); c != keyplane.VerifyValid {
		t.Fatalf("after overlap: new key %s", c)
	}
	old, _ := e.svc.Key(e.ctx, k.ID)
	if old.Status(e.clock.Now()) != keyplane.KeyExpired {
		t.Fatalf("old key status %s", old.Status(e.clock.Now()))
	}
	_, err = e.svc.UpdateKey(e.ctx, k.ID, service.KeyUpdate{Name: service.Optional[string]{Set: true, Value: "x"}})
	wantCode(t, err, keyplane.ECONFLICT)

	// roll with overlap 0 revokes the old key at once.
	r2, err := e.svc.RollKey(e.ctx, next.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c := e.verify(t, keyplane.VerifyRequest{Key: next.Plaintext}); c != keyplane.VerifyRevoked {
		t.Fatalf("zero-overlap roll: old key %s", c)
	}

	// revoke is final and idempotent.
	rv, err := e.svc.RevokeKey(e.ctx, r2.Key.ID)
	if err != nil || rv.Status(e.clock.Now()) != keyplane.KeyRevoked {
		t.Fatalf("revoke: %v %+v", err, rv)
	}
	e.clock.Add(time.Second)
	rv2, err := e.svc.RevokeKey(e.ctx, r2.Key.ID)
	if err != nil || !rv2.RevokedAt.Equal(*rv.RevokedAt) {
		t.Fatalf("second revoke changed the key: %v %+v", err, rv2)
	}
	_, err = e.svc.UpdateKey(e.ctx, r2.Key.ID, service.KeyUpdate{Enabled: service.Optional[bool]{Set: true, Value: true}})
	wantCode(t, err, keyplane.ECONFLICT)
	_, err = e.svc.RollKey(e.ctx, r2.Key.ID, time.Hour)
	wantCode(t, err, keyplane.ECONFLICT)
	if c := e.verify(t, keyplane.VerifyRequest{Key: r2.Key.Plaintext}); c != keyplane.VerifyRevoked {
		t.Fatalf("revoked key verifies %s", c)
	}
}

// A roll keeps the old key's earlier expiry rather than extending it.
func TestRollKeepsEarlierExpiry(t *testing.T) {
	e := newEnv(t)
	acc := e.account(t)
	end := e.clock.Now().Add(10 * time.Minute)
	k := e.key(t, acc.ID, service.KeyInput{ExpiresAt: &end})
	r, err := e.svc.RollKey(e.ctx, k.ID, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Previous.ExpiresAt.Equal(end) || !r.Key.ExpiresAt.Equal(end) {
		t.Fatalf("expiries: old %v new %v, want %v", r.Previous.ExpiresAt, r.Key.ExpiresAt, end)
	}
}

func TestKeyCap(t *testing.T) {
	e := newEnv(t)
	acc := e.account(t)
	var last *service.CreatedKey
	for range service.DefaultMaxActiveKeys {
		last = e.key(t, acc.ID, service.KeyInput{})
	}
	_, err := e.svc.CreateKey(e.ctx, acc.ID, service.KeyInput{Name: "one too many"})
	wantCode(t, err, keyplane.ELIMIT)
	// Rolling does not need a free slot; revoking frees one.
	if _, err := e.svc.RollKey(e.ctx, last.ID, time.Hour); err != nil {
		t.Fatalf("roll at the cap: %v", err)
	}
	if _, err := e.svc.RevokeKey(e.ctx, last.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.CreateKey(e.ctx, acc.ID, service.KeyInput{Name: "still too many"})
	wantCode(t, err, keyplane.ELIMIT) // the rolled key's successor holds the slot
	ks, _, _ := e.svc.ListKeys(e.ctx, acc.ID, keyplane.KeyActive, keyplane.Page{Limit: 1})
	if _, err := e.svc.RevokeKey(e.ctx, ks[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateKey(e.ctx, acc.ID, service.KeyInput{Name: "fits"}); err != nil {
		t.Fatalf("after revoking: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	acc := e.account(t, "data:*")
	long := strings.Repeat("n", 101)
	bigMeta, _ := json.Marshal(map[string]string{"x": strings.Repeat("a", 4100)})
	for _, tc := range []struct {
		name  string
		in    service.KeyInput
		field string
	}{
		{"empty name", service.KeyInput{Name: "  "}, "name"},
		{"long name", service.KeyInput{Name: long}, "name"},
		{"control char", service.KeyInput{Name: "a\x00b"}, "name"},
		{"scope outside allowed", service.KeyInput{Name: "k", Scopes: []string{"billing:read"}}, "scopes[0]"},
		{"malformed scope", service.KeyInput{Name: "k", Scopes: []string{"data:read", "DATA"}}, "scopes[1]"},
		{"bad cidr", service.KeyInput{Name: "k", AllowedCIDRs: []string{"10.0.0.0/33"}}, "allowed_cidrs[0]"},
		{"hostname cidr", service.KeyInput{Name: "k", AllowedCIDRs: []string{"example.com"}}, "allowed_cidrs[0]"},
		{"bad env", service.KeyInput{Name: "k", Environment: "prod"}, "environment"},
		{"past expiry", service.KeyInput{Name: "k", ExpiresAt: ptr(e.clock.Now().Add(-time.Second))}, "expires_at"},
		{"metadata too big", service.KeyInput{Name: "k", Metadata: bigMeta}, "metadata"},
		{"metadata not object", service.KeyInput{Name: "k", Metadata: json.RawMessage(`[1]`)}, "metadata"},
		{"negative limit", service.KeyInput{Name: "k", RateLimits: []keyplane.RateLimitPolicy{{Name: "d", Limit: ptr[int64](-1), WindowSeconds: 60, Algorithm: keyplane.TokenBucket}}}, "rate_limits[0].limit"},
		{"zero window", service.KeyInput{Name: "k", RateLimits: []keyplane.RateLimitPolicy{{Name: "d", WindowSeconds: 0, Algorithm: keyplane.TokenBucket}}}, "rate_limits[0].window_seconds"},
		{"unknown algorithm", service.KeyInput{Name: "k", RateLimits: []keyplane.RateLimitPolicy{{Name: "d", WindowSeconds: 1, Algorithm: "leaky"}}}, "rate_limits[0].algorithm"},
		{"eleven policies", service.KeyInput{Name: "k", RateLimits: make([]keyplane.RateLimitPolicy, 11)}, "rate_limits"},
		{"negative quota", service.KeyInput{Name: "k", Quota: &keyplane.Quota{Limit: -5, Period: keyplane.QuotaDay}}, "quota.limit"},
		{"bad quota period", service.KeyInput{Name: "k", Quota: &keyplane.Quota{Limit: 5, Period: "week"}}, "quota.period"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.CreateKey(e.ctx, acc.ID, tc.in)
			var ke *keyplane.Error
			if !asError(err, &ke) || ke.Code != keyplane.EINVALID || len(ke.Fields) == 0 || ke.Fields[0].Field != tc.field {
				t.Fatalf("err = %v, want EINVALID on %s", err, tc.field)
			}
		})
	}
	ks, _, _ := e.svc.ListKeys(e.ctx, acc.ID, "", keyplane.Page{})
	if len(ks) != 0 {
		t.Fatalf("bad input created %d keys", len(ks))
	}
	k := e.key(t, acc.ID, service.KeyInput{})
	for _, d := range []time.Duration{-time.Second, service.MaxRollOverlap + time.Second} {
		_, err := e.svc.RollKey(e.ctx, k.ID, d)
		wantCode(t, err, keyplane.EINVALID)
	}
	_, err := e.svc.CreateAccount(e.ctx, service.AccountInput{Name: ""})
	wantCode(t, err, keyplane.EINVALID)
	_, err = e.svc.CreateAccount(e.ctx, service.AccountInput{Name: "x", Status: "zombie"})
	wantCode(t, err, keyplane.EINVALID)
	_, _, err = e.svc.ListKeys(e.ctx, acc.ID, "sleeping", keyplane.Page{})
	wantCode(t, err, keyplane.EINVALID)
	_, _, err = e.svc.ListKeys(e.ctx, acc.ID, "", keyplane.Page{Limit: 101})
	wantCode(t, err, keyplane.EINVALID)
	_, err = e.svc.Key(e.ctx, "key_nope")
	wantCode(t, err, keyplane.ENOTFOUND)
}

// A member of one account sees another account's ids as missing.
func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	mine, theirs := e.account(t, "*"), e.account(t, "*")
	myKey := e.key(t, mine.ID, service.KeyInput{})
	theirKey := e.key(t, theirs.ID, service.KeyInput{})
	member := keyplane.NewContextWithActor(context.Background(), keyplane.Actor{Kind: "member", ID: "mem_1", AccountID: mine.ID})

	if _, err := e.svc.Key(member, myKey.ID); err != nil {
		t.Fatalf("own key: %v", err)
	}
	calls := map[string]func() error{
		"Account":   func() error { _, err := e.svc.Account(member, theirs.ID); return err },
		"Key":       func() error { _, err := e.svc.Key(member, theirKey.ID); return err },
		"ListKeys":  func() error { _, _, err := e.svc.ListKeys(member, theirs.ID, "", keyplane.Page{}); return err },
		"CreateKey": func() error { _, err := e.svc.CreateKey(member, theirs.ID, service.KeyInput{Name: "x"}); return err },
		"UpdateKey": func() error { _, err := e.svc.UpdateKey(member, theirKey.ID, service.KeyUpdate{}); return err },
		"RevokeKey": func() error { _, err := e.svc.RevokeKey(member, theirKey.ID); return err },
		"RollKey":   func() error { _, err := e.svc.RollKey(member, theirKey.ID, 0); return err },
	}
	for name, call := range calls {
		if err := call(); keyplane.ErrorCode(err) != keyplane.ENOTFOUND {
			t.Errorf("%s on another account: %v, want not found", name, err)
		}
	}
	if c := e.verify(t, keyplane.VerifyRequest{Key: theirKey.Plaintext}); c != keyplane.VerifyValid {
		t.Fatalf("the other account's key was changed: %s", c)
	}
	_, err := e.svc.CreateAccount(member, service.AccountInput{Name: "x"})
	wantCode(t, err, keyplane.EFORBIDDEN)
	_, err = e.svc.Key(context.Background(), myKey.ID)
	wantCode(t, err, keyplane.EUNAUTHORIZED)
}

func TestTokens(t *testing.T) {
	e := newEnv(t)
	first, err := e.svc.EnsureFirstToken(context.Background())
	if err != nil || first == nil || first.Role != keyplane.RoleAdmin {
		t.Fatalf("first token: %v %+v", err, first)
	}
	again, err := e.svc.EnsureFirstToken(context.Background())
	if err != nil || again != nil {
		t.Fatalf("second EnsureFirstToken made a token: %v %+v", err, again)
	}
	a, err := e.svc.Authenticate(context.Background(), first.Plaintext)
	if err != nil || a.Role != keyplane.RoleAdmin || a.ID != first.ID {
		t.Fatalf("authenticate: %v %+v", err, a)
	}
	for _, bad := range []string{"", "kpt_", first.Plaintext + "x", strings.Replace(first.Plaintext, "kpt_", "kpx_", 1), "kpt_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17"} {
		_, err := e.svc.Authenticate(context.Background(), bad)
		wantCode(t, err, keyplane.EUNAUTHORIZED)
	}
	verifyCtx := keyplane.NewContextWithActor(context.Background(), keyplane.Actor{Kind: "token", Role: keyplane.RoleVerify})
	_, err = e.svc.CreateToken(verifyCtx, service.TokenInput{Name: "x", Role: keyplane.RoleAdmin})
	wantCode(t, err, keyplane.EFORBIDDEN)
	// A verify token may do nothing else, whichever transport lets it through.
	acc := e.account(t, "*")
	k := e.key(t, acc.ID, service.KeyInput{})
	for name, call := range map[string]func() error{
		"CreateAccount": func() error { _, err := e.svc.CreateAccount(verifyCtx, service.AccountInput{Name: "x"}); return err },
		"Account":       func() error { _, err := e.svc.Account(verifyCtx, acc.ID); return err },
		"CreateKey":     func() error { _, err := e.svc.CreateKey(verifyCtx, acc.ID, service.KeyInput{Name: "x"}); return err },
		"Key":           func() error { _, err := e.svc.Key(verifyCtx, k.ID); return err },
		"RevokeKey":     func() error { _, err := e.svc.RevokeKey(verifyCtx, k.ID); return err },
	} {
		if err := call(); keyplane.ErrorCode(err) != keyplane.EFORBIDDEN {
			t.Errorf("%s with a verify token: %v", name, err)
		}
	}
	_, err = e.svc.CreateToken(e.ctx, service.TokenInput{Name: "x", Role: "root"})
	wantCode(t, err, keyplane.EINVALID)
}

func TestPrefix(t *testing.T) {
	for _, p := range []string{"K", "kpt", "a", "toolongprefix"} {
		if _, err := service.New(nil, service.Config{KeyPrefix: p}); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func apikeyNew() string { return apikey.New("kp", "live") }

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func flip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

// Rate limits are checked last: a request refused for any other reason
// charges nothing, and the refusal says when to come back.
func TestRateLimitIsLastAndCharged(t *testing.T) {
	e := newEnv(t)
	acc := e.account(t, "data:*")
	one := int64(1)
	k := e.key(t, acc.ID, service.KeyInput{Scopes: []string{"data:read"}, AllowedCIDRs: []string{"10.0.0.0/8"},
		RateLimits: []keyplane.RateLimitPolicy{{Name: "default", Limit: &one, WindowSeconds: 60, Algorithm: keyplane.TokenBucket}}})
	ok := keyplane.VerifyRequest{Key: k.Plaintext, Scope: "data:read", IP: mustAddr("10.0.0.1"), Cost: 1}
	for _, bad := range []keyplane.VerifyRequest{
		{Key: k.Plaintext, Scope: "data:write", IP: mustAddr("10.0.0.1"), Cost: 1},
		{Key: k.Plaintext, Scope: "data:read", IP: mustAddr("192.0.2.1"), Cost: 1},
	} {
		for range 3 {
			if c := e.verify(t, bad); c == keyplane.VerifyValid || c == keyplane.VerifyRateLimited {
				t.Fatalf("bad request: %s", c)
			}
		}
	}
	res, err := e.svc.Verify(e.ctx, ok)
	if err != nil || res.Code != keyplane.VerifyValid || res.RateLimit == nil || res.RateLimit.Remaining != 0 || res.RateLimit.Limit != 1 {
		t.Fatalf("first good request: %v %+v %+v", err, res, res.RateLimit)
	}
	res, _ = e.svc.Verify(e.ctx, ok)
	if res.Code != keyplane.VerifyRateLimited || res.Valid || res.RetryAfter != time.Minute {
		t.Fatalf("second: %s, retry after %v", res.Code, res.RetryAfter)
	}
	e.clock.Add(time.Minute)
	if c := e.verify(t, ok); c != keyplane.VerifyValid {
		t.Fatalf("a minute later: %s", c)
	}
}

// An address that keeps presenting bad keys is refused for a while, even
// with a good key; other addresses are not affected.
func TestFailedVerificationThrottle(t *testing.T) {
	e := newEnv(t)
	acc := e.account(t)
	good := e.key(t, acc.ID, service.KeyInput{})
	attacker, user := mustAddr("203.0.113.66"), mustAddr("198.51.100.5")
	for range 21 {
		if c := e.verify(t, keyplane.VerifyRequest{Key: apikeyNew(), IP: attacker, Cost: 1}); c != keyplane.VerifyNotFound {
			t.Fatalf("unknown key: %s", c)
		}
	}
	res, _ := e.svc.Verify(e.ctx, keyplane.VerifyRequest{Key: good.Plaintext, IP: attacker, Cost: 1})
	if res.Code != keyplane.VerifyRateLimited || res.RetryAfter != 5*time.Minute || res.Key != nil {
		t.Fatalf("the attacker's address with a good key: %s %v", res.Code, res.RetryAfter)
	}
	if c := e.verify(t, keyplane.VerifyRequest{Key: good.Plaintext, IP: user, Cost: 1}); c != keyplane.VerifyValid {
		t.Fatalf("another address: %s", c)
	}
	if c := e.verify(t, keyplane.VerifyRequest{Key: good.Plaintext, Cost: 1}); c != keyplane.VerifyValid {
		t.Fatalf("no address given: %s", c)
	}
}

func TestPlans(t *testing.T) {
	e := newEnv(t)
	two := int64(2)
	free, err := e.svc.CreatePlan(e.ctx, service.PlanInput{Name: "free", MaxKeys: 2, AllowedScopes: []string{"data:read"},
		RateLimits: []keyplane.RateLimitPolicy{{Name: "minute", Limit: &two, WindowSeconds: 60, Algorithm: keyplane.TokenBucket}}})
	if err != nil {
		t.Fatal(err)
	}
	if free.MaxKeys != 2 || len(free.RateLimits) != 1 {
		t.Fatalf("plan: %+v", free)
	}
	_, err = e.svc.CreatePlan(e.ctx, service.PlanInput{Name: "free"})
	wantCode(t, err, keyplane.ECONFLICT)
	for _, bad := range []service.PlanInput{{Name: "Free!"}, {Name: "x", MaxKeys: -1}, {Name: "y", AllowedScopes: []string{"NOPE"}},
		{Name: "z", RateLimits: []keyplane.RateLimitPolicy{{Name: "p", WindowSeconds: 0, Algorithm: keyplane.TokenBucket}}}} {
		_, err := e.svc.CreatePlan(e.ctx, bad)
		wantCode(t, err, keyplane.EINVALID)
	}
	_, err = e.svc.CreateAccount(e.ctx, service.AccountInput{Name: "x", Plan: "gold"})
	wantCode(t, err, keyplane.EINVALID) // no such plan

	acc, err := e.svc.CreateAccount(e.ctx, service.AccountInput{Name: "Acme", Plan: "free", AllowedScopes: []string{"data:*"}})
	if err != nil {
		t.Fatal(err)
	}
	// The plan bounds the account: data:write is allowed by the account, not the plan.
	_, err = e.svc.CreateKey(e.ctx, acc.ID, service.KeyInput{Name: "w", Scopes: []string{"data:write"}})
	wantCode(t, err, keyplane.EINVALID)
	k := e.key(t, acc.ID, service.KeyInput{Scopes: []string{"data:read"}})
	own := int64(100)
	own100 := e.key(t, acc.ID, service.KeyInput{RateLimits: []keyplane.RateLimitPolicy{{Name: "own", Limit: &own, WindowSeconds: 60, Algorithm: keyplane.TokenBucket}}})
	_, err = e.svc.CreateKey(e.ctx, acc.ID, service.KeyInput{Name: "third"})
	wantCode(t, err, keyplane.ELIMIT) // the plan's max_keys

	// The key without limits of its own has the plan's: 2 a minute.
	req := keyplane.VerifyRequest{Key: k.Plaintext, Scope: "data:read", Cost: 1}
	for i, want := range []keyplane.VerifyCode{keyplane.VerifyValid, keyplane.VerifyValid, keyplane.VerifyRateLimited} {
		if c := e.verify(t, req); c != want {
			t.Fatalf("request %d: %s, want %s", i+1, c, want)
		}
	}
	for range 5 {
		if c := e.verify(t, keyplane.VerifyRequest{Key: own100.Plaintext, Cost: 1}); c != keyplane.VerifyValid {
			t.Fatalf("a key with its own policy: %s", c)
		}
	}
	// Raising the plan's limit applies at the next request; removing it too.
	five := int64(5)
	if _, err := e.svc.UpdatePlan(e.ctx, "free", service.PlanUpdate{RateLimits: service.Optional[[]keyplane.RateLimitPolicy]{Set: true,
		Value: []keyplane.RateLimitPolicy{{Name: "minute", Limit: &five, WindowSeconds: 60, Algorithm: keyplane.TokenBucket}}}}); err != nil {
		t.Fatal(err)
	}
	if c := e.verify(t, req); c != keyplane.VerifyValid {
		t.Fatalf("after raising the plan's limit: %s", c)
	}
	// Narrowing the plan's scopes restricts keys already issued.
	if _, err := e.svc.UpdatePlan(e.ctx, "free", service.PlanUpdate{AllowedScopes: service.Optional[[]string]{Set: true, Value: []string{"other:read"}}}); err != nil {
		t.Fatal(err)
	}
	if c := e.verify(t, req); c != keyplane.VerifyInsufficientScope {
		t.Fatalf("after narrowing the plan's scopes: %s", c)
	}
	plans, _, err := e.svc.ListPlans(e.ctx, keyplane.Page{})
	if err != nil || len(plans) != 2 || plans[0].Name != "default" || plans[1].Name != "free" {
		t.Fatalf("ListPlans: %v %v", err, plans)
	}
	_, err = e.svc.UpdatePlan(e.ctx, "nope", service.PlanUpdate{})
	wantCode(t, err, keyplane.ENOTFOUND)
	member := keyplane.NewContextWithActor(context.Background(), keyplane.Actor{Kind: "member", ID: "m", AccountID: acc.ID})
	_, err = e.svc.Plan(member, "free")
	wantCode(t, err, keyplane.EFORBIDDEN)
}

// failingLimiter stands for a limiter whose store is down and that fails closed.
type failingLimiter struct{}

func (failingLimiter) Check(context.Context, *keyplane.VerifyRecord, int64, time.Time) (keyplane.LimitDecision, error) {
	return keyplane.LimitDecision{}, &keyplane.Error{Code: keyplane.EUNAVAILABLE, Message: "the rate limiter is unavailable"}
}

func TestLimiterOutageIsAnError(t *testing.T) {
	e := newEnv(t)
	svc, _ := service.New(e.store, service.Config{Limiter: failingLimiter{}})
	acc := e.account(t)
	k := e.key(t, acc.ID, service.KeyInput{})
	_, err := svc.Verify(e.ctx, keyplane.VerifyRequest{Key: k.Plaintext, Cost: 1})
	wantCode(t, err, keyplane.EUNAVAILABLE)
}

func TestPolicyBounds(t *testing.T) {
	e := newEnv(t)
	acc := e.account(t)
	huge, one := int64(9223372036854775807), int64(1)
	for _, p := range []keyplane.RateLimitPolicy{
		{Name: "huge", Limit: &huge, WindowSeconds: 1, Algorithm: keyplane.TokenBucket},
		{Name: "deep", Limit: &one, WindowSeconds: 86400, Burst: 100000, Algorithm: keyplane.TokenBucket},
	} {
		_, err := e.svc.CreateKey(e.ctx, acc.ID, service.KeyInput{Name: "k", RateLimits: []keyplane.RateLimitPolicy{p}})
		wantCode(t, err, keyplane.EINVALID)
	}
}
