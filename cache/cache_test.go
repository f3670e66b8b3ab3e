package cache_test

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/cache"
	"github.com/keyplane/keyplane/coarseclock"
	"github.com/keyplane/keyplane/ratelimit"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/teststore"
	"github.com/keyplane/keyplane/verifyfailures"
)

// fakeClock is a settable clock for otter.
type fakeClock struct{ nanos atomic.Int64 }

func (c *fakeClock) NowNano() int64                      { return c.nanos.Load() }
func (c *fakeClock) Tick(time.Duration) <-chan time.Time { return nil }
func (c *fakeClock) Add(d time.Duration)                 { c.nanos.Add(int64(d)) }

// source counts the cache's store reads and can be made to fail (an outage)
// or stall.
type source struct {
	keyplane.Store
	reads, tokenReads atomic.Int64
	failing           atomic.Bool
	delay             time.Duration
}

var errDown = &keyplane.Error{Code: keyplane.EUNAVAILABLE, Message: "the database is unavailable"}

func (s *source) VerifyRecord(ctx context.Context, hash [32]byte) (*keyplane.VerifyRecord, error) {
	s.reads.Add(1)
	time.Sleep(s.delay)
	if s.failing.Load() {
		return nil, errDown
	}
	return s.Store.VerifyRecord(ctx, hash)
}

func (s *source) TokenByHash(ctx context.Context, hash [32]byte) (*keyplane.Token, error) {
	s.tokenReads.Add(1)
	if s.failing.Load() {
		return nil, errDown
	}
	return s.Store.TokenByHash(ctx, hash)
}

func (s *source) ChangesSince(ctx context.Context, since time.Time) ([]keyplane.Change, error) {
	if s.failing.Load() {
		return nil, errDown
	}
	return s.Store.ChangesSince(ctx, since)
}

type fixture struct {
	svc   *service.Service
	ctx   context.Context
	src   *source
	cache *cache.Cache
	clock *fakeClock
}

func newFixtureB(b *testing.B) *fixture {
	store := teststore.New(b)
	clock := coarseclock.New(time.Millisecond)
	b.Cleanup(clock.Stop)
	c, err := cache.New(store, cache.Config{Logger: slog.New(slog.DiscardHandler), Clock: clock}) // as serve wires it
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	limiter, throttle := ratelimit.New(), ratelimit.NewThrottle(ratelimit.ThrottleConfig{})
	b.Cleanup(limiter.Close)
	b.Cleanup(throttle.Close)
	svc, _ := service.New(store, service.Config{Records: c, Cache: c, Now: clock.Now, Limiter: limiter, Throttle: throttle})
	return &fixture{svc: svc, ctx: keyplane.NewContextWithActor(context.Background(), service.SystemActor), cache: c}
}

func newFixture(t *testing.T, delay time.Duration) *fixture {
	store := teststore.New(t)
	src := &source{Store: store, delay: delay}
	clock := &fakeClock{}
	clock.nanos.Store(time.Now().UnixNano())
	c, err := cache.New(src, cache.Config{TTL: 30 * time.Second, ServeStale: 10 * time.Minute, Clock: clock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	limiter, throttle := ratelimit.New(), ratelimit.NewThrottle(ratelimit.ThrottleConfig{})
	t.Cleanup(limiter.Close)
	t.Cleanup(throttle.Close)
	failures := verifyfailures.New(store, verifyfailures.Config{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { failures.Close(context.Background()) })
	svc, err := service.New(store, service.Config{Records: c, Tokens: c, Cache: c, Limiter: limiter, Throttle: throttle, VerifyFailures: failures})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{svc: svc, ctx: keyplane.NewContextWithActor(context.Background(), service.SystemActor), src: src, cache: c, clock: clock}
}

func (f *fixture) newKey(t *testing.T, accountID string) *service.CreatedKey {
	t.Helper()
	if accountID == "" {
		a, err := f.svc.CreateAccount(f.ctx, service.AccountInput{Name: "a", AllowedScopes: []string{"*"}})
		if err != nil {
			t.Fatal(err)
		}
		accountID = a.ID
	}
	k, err := f.svc.CreateKey(f.ctx, accountID, service.KeyInput{Name: "k"})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (f *fixture) verify(t *testing.T, key string) keyplane.VerifyCode {
	t.Helper()
	res, err := f.svc.Verify(f.ctx, keyplane.VerifyRequest{Key: key})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return res.Code
}

func TestHitsDoNotReadTheStore(t *testing.T) {
	f := newFixture(t, 0)
	k := f.newKey(t, "")
	for range 100 {
		if c := f.verify(t, k.Plaintext); c != keyplane.VerifyValid {
			t.Fatal(c)
		}
	}
	if n := f.src.reads.Load(); n != 1 {
		t.Fatalf("%d store reads for 100 verifications of one key, want 1", n)
	}
}

func TestUnknownKeysAreCached(t *testing.T) {
	f := newFixture(t, 0)
	unknown := apikey.New("kp", "live")
	for range 50 {
		if c := f.verify(t, unknown); c != keyplane.VerifyNotFound {
			t.Fatal(c)
		}
	}
	if n := f.src.reads.Load(); n != 1 {
		t.Fatalf("%d store reads for 50 verifications of one unknown key, want 1", n)
	}
}

func TestConcurrentMissesLoadOnce(t *testing.T) {
	f := newFixture(t, 50*time.Millisecond)
	k := f.newKey(t, "")
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c := f.verify(t, k.Plaintext); c != keyplane.VerifyValid {
				t.Error(c)
			}
		}()
	}
	wg.Wait()
	if n := f.src.reads.Load(); n != 1 {
		t.Fatalf("%d store reads for 64 concurrent misses of one key, want 1", n)
	}
}

// A change made through this instance is seen by its very next verification.
func TestOwnChangesAreSeenAtOnce(t *testing.T) {
	f := newFixture(t, 0)
	k := f.newKey(t, "")
	other := f.newKey(t, k.AccountID)
	f.verify(t, k.Plaintext)
	f.verify(t, other.Plaintext)

	if _, err := f.svc.RevokeKey(f.ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if c := f.verify(t, k.Plaintext); c != keyplane.VerifyRevoked {
		t.Fatalf("after revoke: %s", c)
	}
	suspended := keyplane.AccountSuspended
	if _, err := f.svc.UpdateAccount(f.ctx, k.AccountID, service.AccountUpdate{Status: &suspended}); err != nil {
		t.Fatal(err)
	}
	if c := f.verify(t, other.Plaintext); c != keyplane.VerifyDisabled {
		t.Fatalf("after suspending the account: %s", c)
	}
	r, err := f.svc.RollKey(f.ctx, other.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c := f.verify(t, other.Plaintext); c != keyplane.VerifyRevoked {
		t.Fatalf("after a zero-overlap roll: %s", c)
	}
	if c := f.verify(t, r.Key.Plaintext); c != keyplane.VerifyDisabled {
		t.Fatalf("the successor in a suspended account: %s", c)
	}
}

// A change the cache was not told of (a lost message) is seen once the
// record is TTL old: the first request after that triggers a reload.
func TestTTLBoundsUnseenChanges(t *testing.T) {
	f := newFixture(t, 0)
	k := f.newKey(t, "")
	f.verify(t, k.Plaintext)
	// Revoke behind the cache's back: a service without the cache.
	direct, _ := service.New(f.src.Store, service.Config{})
	if _, err := direct.RevokeKey(f.ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if c := f.verify(t, k.Plaintext); c != keyplane.VerifyValid {
		t.Fatalf("the cache should still hold the old record: %s", c)
	}
	f.clock.Add(31 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for f.verify(t, k.Plaintext) != keyplane.VerifyRevoked {
		if time.Now().After(deadline) {
			t.Fatal("revocation not seen after the TTL")
		}
		time.Sleep(time.Millisecond)
	}
}

// While the database is down, cached keys keep verifying up to the
// serve-stale limit; keys not in the cache fail closed.
func TestDatabaseOutage(t *testing.T) {
	f := newFixture(t, 0)
	k := f.newKey(t, "")
	uncached := f.newKey(t, k.AccountID)
	f.verify(t, k.Plaintext)
	f.src.failing.Store(true)

	for _, step := range []time.Duration{0, 31 * time.Second, 5 * time.Minute, 4 * time.Minute} {
		f.clock.Add(step)
		if c := f.verify(t, k.Plaintext); c != keyplane.VerifyValid {
			t.Fatalf("cached key during the outage (+%v): %s", step, c)
		}
	}
	if _, err := f.svc.Verify(f.ctx, keyplane.VerifyRequest{Key: uncached.Plaintext}); keyplane.ErrorCode(err) != keyplane.EUNAVAILABLE {
		t.Fatalf("uncached key during the outage: %v, want unavailable", err)
	}
	f.clock.Add(2 * time.Minute) // past 10 minutes since the last good load
	if _, err := f.svc.Verify(f.ctx, keyplane.VerifyRequest{Key: k.Plaintext}); keyplane.ErrorCode(err) != keyplane.EUNAVAILABLE {
		t.Fatalf("cached key past the serve-stale limit: %v, want unavailable", err)
	}
	f.src.failing.Store(false)
	if c := f.verify(t, k.Plaintext); c != keyplane.VerifyValid {
		t.Fatalf("after the outage: %s", c)
	}
}

// After a broken subscription the cache catches up from the change log: what
// changed meanwhile is reloaded, and nothing else is forgotten.
func TestMissedChangesCatchUpWithoutClearing(t *testing.T) {
	f := newFixture(t, 0)
	revoked, kept := f.newKey(t, ""), f.newKey(t, "")
	suspended := f.newKey(t, "")
	for _, k := range []*service.CreatedKey{revoked, kept, suspended} {
		f.verify(t, k.Plaintext)
	}
	since := time.Now()                                     // after the keys were made: their creation is not a change to catch up on
	direct, _ := service.New(f.src.Store, service.Config{}) // changes whose messages are lost
	if _, err := direct.RevokeKey(f.ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	status := keyplane.AccountSuspended
	if _, err := direct.UpdateAccount(f.ctx, suspended.AccountID, service.AccountUpdate{Status: &status}); err != nil {
		t.Fatal(err)
	}
	f.cache.MissedChanges(since)
	for _, tc := range []struct {
		key  *service.CreatedKey
		want keyplane.VerifyCode
	}{{revoked, keyplane.VerifyRevoked}, {kept, keyplane.VerifyValid}, {suspended, keyplane.VerifyDisabled}} {
		if c := f.verify(t, tc.key.Plaintext); c != tc.want {
			t.Errorf("after catching up: %s, want %s", c, tc.want)
		}
	}
	if n := f.src.reads.Load(); n != 5 {
		t.Fatalf("%d store reads, want 5: three loads and two reloads of what changed (the cache must not be cleared)", n)
	}
}

// A catch-up the store cannot answer is retried until it can; meanwhile
// cached keys keep verifying.
func TestMissedChangesRetriedThroughOutage(t *testing.T) {
	f := newFixture(t, 0)
	k := f.newKey(t, "")
	f.verify(t, k.Plaintext)
	since := time.Now().Add(-keyplane.CatchUpMargin)
	direct, _ := service.New(f.src.Store, service.Config{})
	if _, err := direct.RevokeKey(f.ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	f.src.failing.Store(true)
	f.cache.MissedChanges(since)
	if c := f.verify(t, k.Plaintext); c != keyplane.VerifyValid {
		t.Fatalf("while the store is down the cached record serves: %s", c)
	}
	f.src.failing.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for f.verify(t, k.Plaintext) != keyplane.VerifyRevoked {
		if time.Now().After(deadline) {
			t.Fatal("the revocation was not caught up on within 5 s of the store's return")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Operator tokens are cached like keys: no store read per request, served
// through an outage up to the serve-stale limit, forgotten on a token change.
func TestTokensAreCachedAndServedStale(t *testing.T) {
	f := newFixture(t, 0)
	created, err := f.svc.CreateToken(f.ctx, service.TokenInput{Name: "api", Role: keyplane.RoleVerify})
	if err != nil {
		t.Fatal(err)
	}
	auth := func() error { _, err := f.svc.Authenticate(context.Background(), created.Plaintext); return err }
	for range 10 {
		if err := auth(); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.src.tokenReads.Load(); n != 1 {
		t.Fatalf("%d token reads for 10 requests, want 1", n)
	}
	f.cache.ApplyChange(keyplane.TokenChanged(created.Hash))
	if err := auth(); err != nil || f.src.tokenReads.Load() != 2 {
		t.Fatalf("after a token change: %v, %d reads (want a reload)", err, f.src.tokenReads.Load())
	}
	f.src.failing.Store(true)
	for _, step := range []time.Duration{0, 31 * time.Second, 5 * time.Minute, 4 * time.Minute} {
		f.clock.Add(step)
		if err := auth(); err != nil {
			t.Fatalf("cached token during the outage (+%v): %v", step, err)
		}
	}
	f.clock.Add(2 * time.Minute) // past 10 minutes since the last good load
	if err := auth(); keyplane.ErrorCode(err) != keyplane.EUNAVAILABLE {
		t.Fatalf("cached token past the serve-stale limit: %v, want unavailable", err)
	}
	if _, err := f.svc.Authenticate(context.Background(), apikey.NewToken()); err == nil {
		t.Fatal("an unknown token was accepted")
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []cache.Config{{MaxEntries: -1}, {TTL: -time.Second}, {TTL: time.Hour, ServeStale: time.Minute}} {
		if _, err := cache.New(nil, cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

func mkdirTemp() (string, error) { return os.MkdirTemp("", "keyplane-bench-") }

// gatedSource holds a load after it has read the store, until released: the
// window in which a change can commit while an old record is on its way
// into the cache.
type gatedSource struct {
	keyplane.Store
	armed   atomic.Bool
	read    chan struct{}
	release chan struct{}
}

func (g *gatedSource) VerifyRecord(ctx context.Context, hash [32]byte) (*keyplane.VerifyRecord, error) {
	rec, err := g.Store.VerifyRecord(ctx, hash)
	if g.armed.CompareAndSwap(true, false) {
		g.read <- struct{}{}
		<-g.release
	}
	return rec, err
}

// A suspension, or a full clear, that lands while a key is being loaded
// must not let the record read before it stay in the cache.
func TestChangeDuringLoad(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, f *fixture, c *cache.Cache, k *service.CreatedKey, direct *service.Service)
		want   keyplane.VerifyCode
	}{
		{"account suspended", func(t *testing.T, f *fixture, c *cache.Cache, k *service.CreatedKey, _ *service.Service) {
			suspended := keyplane.AccountSuspended
			if _, err := f.svc.UpdateAccount(f.ctx, k.AccountID, service.AccountUpdate{Status: &suspended}); err != nil {
				t.Fatal(err)
			}
		}, keyplane.VerifyDisabled},
		{"revoked elsewhere, then a reconnect", func(t *testing.T, f *fixture, c *cache.Cache, k *service.CreatedKey, direct *service.Service) {
			if _, err := direct.RevokeKey(f.ctx, k.ID); err != nil { // a change whose message is lost
				t.Fatal(err)
			}
			c.MissedChanges(time.Now().Add(-keyplane.CatchUpMargin))
		}, keyplane.VerifyRevoked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := teststore.New(t)
			g := &gatedSource{Store: store, read: make(chan struct{}), release: make(chan struct{})}
			c, err := cache.New(g, cache.Config{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			svc, _ := service.New(store, service.Config{Records: c, Cache: c})
			direct, _ := service.New(store, service.Config{})
			f := &fixture{svc: svc, ctx: keyplane.NewContextWithActor(context.Background(), service.SystemActor)}
			k := f.newKey(t, "")

			g.armed.Store(true)
			done := make(chan keyplane.VerifyCode)
			go func() {
				res, _ := svc.Verify(f.ctx, keyplane.VerifyRequest{Key: k.Plaintext})
				done <- res.Code
			}()
			<-g.read // the load has read the record as it was
			tc.change(t, f, c, k, direct)
			close(g.release)
			<-done // this request raced the change; either answer is fair
			if got := f.verify(t, k.Plaintext); got != tc.want {
				t.Fatalf("after the change: %s, want %s", got, tc.want)
			}
		})
	}
}

// A plan change reaches the cached keys of every account on the plan.
func TestPlanChangeIsSeen(t *testing.T) {
	f := newFixture(t, 0)
	one := int64(1)
	if _, err := f.svc.CreatePlan(f.ctx, service.PlanInput{Name: "tight"}); err != nil {
		t.Fatal(err)
	}
	acc, err := f.svc.CreateAccount(f.ctx, service.AccountInput{Name: "a", Plan: "tight", AllowedScopes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	k := f.newKey(t, acc.ID)
	for range 3 {
		if c := f.verify(t, k.Plaintext); c != keyplane.VerifyValid {
			t.Fatalf("no limits yet: %s", c)
		}
	}
	if _, err := f.svc.UpdatePlan(f.ctx, "tight", service.PlanUpdate{RateLimits: service.Optional[[]keyplane.RateLimitPolicy]{Set: true,
		Value: []keyplane.RateLimitPolicy{{Name: "m", Limit: &one, WindowSeconds: 60, Algorithm: keyplane.TokenBucket}}}}); err != nil {
		t.Fatal(err)
	}
	req := keyplane.VerifyRequest{Key: k.Plaintext, Cost: 1}
	first, _ := f.svc.Verify(f.ctx, req)
	second, _ := f.svc.Verify(f.ctx, req)
	if first.Code != keyplane.VerifyValid || second.Code != keyplane.VerifyRateLimited {
		t.Fatalf("after the plan got a limit of 1: %s then %s", first.Code, second.Code)
	}
}

// Accounts may name a plan before it exists; creating it reaches their cached keys.
func TestPlanCreatedLater(t *testing.T) {
	f := newFixture(t, 0)
	acc, err := f.svc.CreateAccount(f.ctx, service.AccountInput{Name: "a", AllowedScopes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	store := f.src.Store
	if _, err := store.UpdateAccount(f.ctx, acc.ID, func(a *keyplane.Account) error { a.Plan = "pro"; return nil }); err != nil {
		t.Fatal(err)
	}
	f.cache.ApplyChange(keyplane.AccountChanged(acc.ID))
	k := f.newKey(t, acc.ID)
	req := keyplane.VerifyRequest{Key: k.Plaintext, Cost: 1}
	f.svc.Verify(f.ctx, req) // cached with no plan behind it
	one := int64(1)
	if _, err := f.svc.CreatePlan(f.ctx, service.PlanInput{Name: "pro", RateLimits: []keyplane.RateLimitPolicy{
		{Name: "m", Limit: &one, WindowSeconds: 60, Algorithm: keyplane.TokenBucket}}}); err != nil {
		t.Fatal(err)
	}
	first, _ := f.svc.Verify(f.ctx, req)
	second, _ := f.svc.Verify(f.ctx, req)
	if first.Code != keyplane.VerifyValid || second.Code != keyplane.VerifyRateLimited {
		t.Fatalf("after creating the plan: %s then %s", first.Code, second.Code)
	}
}

// deletingSource can make one token disappear from the store.
type deletingSource struct {
	*source
	deleted atomic.Pointer[[32]byte]
}

func (d *deletingSource) TokenByHash(ctx context.Context, hash [32]byte) (*keyplane.Token, error) {
	if h := d.deleted.Load(); h != nil && *h == hash {
		d.tokenReads.Add(1)
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "no token with that hash")
	}
	return d.source.TokenByHash(ctx, hash)
}

// A token that no longer exists stops authenticating once its cached copy is
// TTL old and the store answers: a failed refresh keeps otter's entry unless
// the loader says otter.ErrNotFound, and a deleted token must not work on
// until ServeStale.
func TestDeletedTokenStopsAfterTTL(t *testing.T) {
	store := teststore.New(t)
	src := &deletingSource{source: &source{Store: store}}
	_, clock, svc := serviceOver(t, store, src)
	ctx := keyplane.NewContextWithActor(context.Background(), service.SystemActor)
	tok, err := svc.CreateToken(ctx, service.TokenInput{Name: "leaked", Role: keyplane.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(context.Background(), tok.Plaintext); err != nil {
		t.Fatal(err)
	}
	src.deleted.Store(&tok.Hash)
	for _, step := range []time.Duration{31 * time.Second, time.Minute, 3 * time.Minute} {
		clock.Add(step)
		_, _ = svc.Authenticate(context.Background(), tok.Plaintext) // may serve the old copy while it refreshes
		time.Sleep(100 * time.Millisecond)                           // the background refresh
		if _, err := svc.Authenticate(context.Background(), tok.Plaintext); err == nil {
			t.Errorf("+%v after deletion (TTL 30 s, store answering): the deleted token still authenticates (%d token reads)", step, src.tokenReads.Load())
		}
	}
}

// gateChanges makes the cache's catch-up queries controllable: the first
// fails (the database is not back yet), the second takes its snapshot and
// then waits to be released, later ones pass.
type gateChanges struct {
	*source
	calls   atomic.Int32
	started chan struct{}
	release chan struct{}
}

func (g *gateChanges) ChangesSince(ctx context.Context, since time.Time) ([]keyplane.Change, error) {
	switch g.calls.Add(1) {
	case 1:
		return nil, errDown
	case 2:
		changes, err := g.source.Store.ChangesSince(ctx, since) // the query ran now
		close(g.started)
		<-g.release
		return changes, err
	}
	return g.source.Store.ChangesSince(ctx, since)
}

// A second break and resubscription while the retry goroutine's catch-up
// query is in flight: the in-flight catch-up must not clear what the second
// asked for, or a revocation committed between the two is never caught up.
func TestCatchUpDuringRetryIsNotLost(t *testing.T) {
	store := teststore.New(t)
	src := &gateChanges{source: &source{Store: store}, started: make(chan struct{}), release: make(chan struct{})}
	clock := &fakeClock{}
	clock.nanos.Store(time.Now().UnixNano())
	c, err := cache.New(src, cache.Config{TTL: 30 * time.Second, ServeStale: 10 * time.Minute, Clock: clock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	limiter, throttle := ratelimit.New(), ratelimit.NewThrottle(ratelimit.ThrottleConfig{})
	t.Cleanup(limiter.Close)
	t.Cleanup(throttle.Close)
	svc, err := service.New(store, service.Config{Records: c, Tokens: c, Cache: c, Limiter: limiter, Throttle: throttle})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{svc: svc, ctx: keyplane.NewContextWithActor(context.Background(), service.SystemActor), cache: c, clock: clock}
	k := f.newKey(t, "")
	if got := f.verify(t, k.Plaintext); got != keyplane.VerifyValid {
		t.Fatal(got)
	}
	time.Sleep(2 * time.Millisecond)
	first := time.Now()    // the first break (its margin left out: the key's creation is not a change)
	c.MissedChanges(first) // fails: the retry goroutine takes over
	<-src.started          // the retry's query ran (nothing changed yet) and is finishing

	time.Sleep(2 * time.Millisecond)
	direct, _ := service.New(store, service.Config{}) // its message is lost: the bus is down again
	if _, err := direct.RevokeKey(f.ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the bus resubscribes after its second break
		defer wg.Done()
		c.MissedChanges(first.Add(time.Millisecond))
	}()
	time.Sleep(200 * time.Millisecond) // it waits for the retry's catch-up
	close(src.release)
	wg.Wait()
	time.Sleep(100 * time.Millisecond)
	if got := f.verify(t, k.Plaintext); got != keyplane.VerifyRevoked {
		t.Fatalf("after both catch-ups: %s, want revoked (%d catch-up queries)", got, src.calls.Load())
	}
}

// stallingTokens lets one token read take its snapshot, then wait.
type stallingTokens struct {
	*source
	armed   atomic.Bool
	read    chan struct{}
	release chan struct{}
}

func (s *stallingTokens) TokenByHash(ctx context.Context, hash [32]byte) (*keyplane.Token, error) {
	t, err := s.source.TokenByHash(ctx, hash)
	if s.armed.CompareAndSwap(true, false) {
		close(s.read)
		<-s.release
	}
	return t, err
}

// The catch-up finds a revocation whose bus message was lost while a TTL
// refresh of the same token, which read the row before the revocation, is
// still in flight: the catch-up must not take that refresh's (usable) token
// for its own reload, or the revoked token keeps authenticating until the
// next TTL, and through an outage until ServeStale.
func TestCatchUpDoesNotJoinAStaleRefresh(t *testing.T) {
	store := teststore.New(t)
	src := &stallingTokens{source: &source{Store: store}, read: make(chan struct{}), release: make(chan struct{})}
	c, clock, svc := serviceOver(t, store, src)
	ctx := keyplane.NewContextWithActor(context.Background(), service.SystemActor)
	if _, err := svc.CreateToken(ctx, service.TokenInput{Name: "keep", Role: keyplane.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	tok, err := svc.CreateToken(ctx, service.TokenInput{Name: "leaked", Role: keyplane.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(context.Background(), tok.Plaintext); err != nil {
		t.Fatal(err)
	}
	since := time.Now()
	time.Sleep(2 * time.Millisecond)

	// A TTL refresh starts and reads the row (still usable), then stalls.
	clock.Add(31 * time.Second)
	src.armed.Store(true)
	_, _ = svc.Authenticate(context.Background(), tok.Plaintext)
	<-src.read

	// The token is revoked on another instance; its bus message is lost.
	other, _ := service.New(store, service.Config{})
	if _, err := other.RevokeToken(ctx, tok.ID, false); err != nil {
		t.Fatal(err)
	}
	// The subscription comes back; the catch-up finds the revocation.
	done := make(chan struct{})
	go func() { c.MissedChanges(since); close(done) }()
	time.Sleep(100 * time.Millisecond)
	close(src.release) // the stale refresh finishes
	<-done
	time.Sleep(50 * time.Millisecond)

	// The database falls again before the next TTL refresh.
	src.failing.Store(true)
	clock.Add(31 * time.Second)
	_, _ = svc.Authenticate(context.Background(), tok.Plaintext)
	time.Sleep(50 * time.Millisecond)
	if _, err := svc.Authenticate(context.Background(), tok.Plaintext); err == nil {
		t.Fatal("a revocation the catch-up found was never applied: the revoked token still authenticates")
	}
}

// serviceOver is a service on store whose cache reads through src, on a
// settable clock (TTL 30 s, serve-stale 10 min).
func serviceOver(t *testing.T, store keyplane.Store, src cache.Source) (*cache.Cache, *fakeClock, *service.Service) {
	t.Helper()
	clock := &fakeClock{}
	clock.nanos.Store(time.Now().UnixNano())
	c, err := cache.New(src, cache.Config{TTL: 30 * time.Second, ServeStale: 10 * time.Minute, Clock: clock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	svc, err := service.New(store, service.Config{Records: c, Tokens: c, Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	return c, clock, svc
}
