package verifyfailures_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/teststore"
	"github.com/keyplane/keyplane/verifyfailures"
)

var ctx = context.Background()

// clock is a settable time source.
type clock struct{ nanos atomic.Int64 }

func newClock(t time.Time) *clock    { c := &clock{}; c.nanos.Store(t.UnixNano()); return c }
func (c *clock) Now() time.Time      { return time.Unix(0, c.nanos.Load()).UTC() }
func (c *clock) Add(d time.Duration) { c.nanos.Add(int64(d)) }
func (c *clock) Set(t time.Time)     { c.nanos.Store(t.UnixNano()) }
func quiet() *slog.Logger            { return slog.New(slog.DiscardHandler) }
func addr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}
func admin() context.Context         { return keyplane.NewContextWithActor(ctx, service.SystemActor) }
func minuteOf(t time.Time) time.Time { return t.Truncate(time.Minute) }
func mustJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

type fixture struct {
	store    keyplane.Store
	clock    *clock
	failures *verifyfailures.Recorder
	svc      *service.Service
}

func newFixture(t *testing.T, store keyplane.AuditStore, cfg verifyfailures.Config) *fixture {
	t.Helper()
	s := teststore.New(t)
	if store == nil {
		store = s
	}
	c := newClock(time.Date(2026, 5, 6, 7, 8, 0, 0, time.UTC))
	cfg.Now, cfg.Logger, cfg.FlushInterval = c.Now, quiet(), time.Hour // flushed by the test
	failures := verifyfailures.New(store, cfg)
	t.Cleanup(func() { failures.Close(ctx) })
	svc, err := service.New(s, service.Config{Now: c.Now, VerifyFailures: failures})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{store: s, clock: c, failures: failures, svc: svc}
}

func (f *fixture) verify(t *testing.T, key string, ip netip.Addr, scope string) keyplane.VerifyCode {
	t.Helper()
	res, err := f.svc.Verify(ctx, keyplane.VerifyRequest{Key: key, IP: ip, Scope: scope, Cost: 1})
	if err != nil {
		t.Fatal(err)
	}
	return res.Code
}

func (f *fixture) failedEvents(t *testing.T) []*keyplane.AuditEvent {
	t.Helper()
	var out []*keyplane.AuditEvent
	filter := keyplane.AuditFilter{Type: keyplane.AuditVerifyFailed, Page: keyplane.Page{Limit: 1000}}
	for {
		page, next, err := f.store.ListAudit(ctx, filter)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		filter.Cursor = next
	}
}

// TestOneEventPerKeyIPCodeAndMinute: failures are grouped, written once
// their minute is over, on the key's account chain (or the operator's for
// keys that do not exist), and valid verifications record nothing.
func TestOneEventPerKeyIPCodeAndMinute(t *testing.T) {
	f := newFixture(t, nil, verifyfailures.Config{})
	acc, err := f.svc.CreateAccount(admin(), service.AccountInput{Name: "a", AllowedScopes: []string{"data:*"}})
	if err != nil {
		t.Fatal(err)
	}
	revoked, _ := f.svc.CreateKey(admin(), acc.ID, service.KeyInput{Name: "old", Scopes: []string{"data:read"}})
	if _, err := f.svc.RevokeKey(admin(), revoked.ID); err != nil {
		t.Fatal(err)
	}
	good, _ := f.svc.CreateKey(admin(), acc.ID, service.KeyInput{Name: "good", Scopes: []string{"data:read"}})
	unknown := apikey.New("kp", "live")
	a, b := netip.MustParseAddr("203.0.113.5"), netip.MustParseAddr("2001:db8::1")
	minute := f.clock.Now()

	for range 1000 {
		f.verify(t, revoked.Plaintext, a, "")
	}
	for range 10 {
		f.verify(t, revoked.Plaintext, b, "")
		f.verify(t, good.Plaintext, a, "data:write") // INSUFFICIENT_SCOPE
		f.verify(t, good.Plaintext, a, "data:read")  // valid: not recorded
	}
	for range 5 {
		f.verify(t, unknown, a, "")
	}
	f.verify(t, "not a key at all", netip.Addr{}, "")

	// Nothing is written while the minute lasts.
	if err := f.failures.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	if evs := f.failedEvents(t); len(evs) != 0 {
		t.Fatalf("%d events written during their minute", len(evs))
	}
	f.clock.Add(time.Minute)
	if err := f.failures.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	got := map[string]*keyplane.AuditEvent{}
	for _, ev := range f.failedEvents(t) {
		d := mustJSON(t, ev.Details)
		got[fmt.Sprintf("%s %s %s %v %v", d["code"], ev.KeyID, ev.SourceIP, d["count"], d["key_hash_prefix"])] = ev
		if !ev.Time.Equal(minuteOf(minute)) || ev.Actor.Kind != "system" || d["minute"] != minuteOf(minute).Format(time.RFC3339) {
			t.Errorf("event %+v %s", ev, ev.Details)
		}
	}
	h := apikey.Hash(unknown)
	garbage := apikey.Hash("not a key at all")
	for _, want := range []string{
		fmt.Sprintf("REVOKED %s %s 1000 <nil>", revoked.ID, a),
		fmt.Sprintf("REVOKED %s %s 10 <nil>", revoked.ID, b),
		fmt.Sprintf("INSUFFICIENT_SCOPE %s %s 10 <nil>", good.ID, a),
		fmt.Sprintf("NOT_FOUND  %s 5 %x", a, h[:4]),
		fmt.Sprintf("NOT_FOUND   1 %x", garbage[:4]),
	} {
		ev, ok := got[want]
		if !ok {
			t.Errorf("no event %q among %v", want, keys(got))
			continue
		}
		if wantChain := map[bool]string{true: acc.ID, false: ""}[ev.KeyID != ""]; ev.AccountID != wantChain {
			t.Errorf("%q is on chain %q, want %q", want, ev.AccountID, wantChain)
		}
	}
	if len(got) != 5 {
		t.Errorf("%d events, want 5: %v", len(got), keys(got))
	}
	report, err := keyplane.CheckAuditChains(ctx, f.store)
	if err != nil || len(report.Problems) > 0 {
		t.Fatalf("verify: %v %v", err, report.Problems)
	}
}

func keys(m map[string]*keyplane.AuditEvent) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestFloodIsBounded sends 100,000 failed verifications from 100,000
// addresses over two minutes: the log gets at most the cap of groups per
// minute plus one "other" group per code, and every failure is counted.
func TestFloodIsBounded(t *testing.T) {
	const maxGroups = 500
	f := newFixture(t, nil, verifyfailures.Config{MaxGroupsPerMinute: maxGroups})
	const n = 100_000
	var wg sync.WaitGroup
	for w := range 4 { // concurrently, as a server would see them
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				if i == n/2 {
					f.clock.Add(time.Minute)
				}
				key := fmt.Sprintf("kp_live_flood%08d", i)
				if res, err := f.svc.Verify(ctx, keyplane.VerifyRequest{Key: key, IP: addr(i)}); err != nil || res.Code != keyplane.VerifyNotFound {
					t.Errorf("verify: %v %s", err, res.Code)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := f.failures.Close(ctx); err != nil {
		t.Fatal(err)
	}
	events := f.failedEvents(t)
	var total, others int64
	for _, ev := range events {
		d := mustJSON(t, ev.Details)
		total += int64(d["count"].(float64))
		if d["other"] == true {
			others++
			if ev.SourceIP != "" || ev.KeyID != "" {
				t.Errorf("an overflow event names an address or key: %+v", ev)
			}
		}
	}
	if limit := 2 * (maxGroups + 1); len(events) > limit || others == 0 {
		t.Fatalf("%d events (%d overflow) for a flood of %d; want at most %d", len(events), others, n, limit)
	}
	if total != n {
		t.Fatalf("events count %d failures, want %d", total, n)
	}
	t.Logf("%d failed verifications from %d addresses: %d events", n, n, len(events))
}

// TestRecordingAHeldGroupDoesNotAllocate: a repeated failure costs a map
// increment under a lock, nothing more.
func TestRecordingAHeldGroupDoesNotAllocate(t *testing.T) {
	f := newFixture(t, nil, verifyfailures.Config{})
	fail := keyplane.VerifyFailure{Time: f.clock.Now(), Code: keyplane.VerifyRevoked, KeyID: "key_1", AccountID: "acc_1", IP: addr(1)}
	f.failures.VerifyFailed(fail)
	if n := testing.AllocsPerRun(1000, func() { f.failures.VerifyFailed(fail) }); n != 0 {
		t.Fatalf("recording a failure allocates %v times", n)
	}
}

// TestCloseWritesTheCurrentMinute: a graceful shutdown loses nothing.
func TestCloseWritesTheCurrentMinute(t *testing.T) {
	f := newFixture(t, nil, verifyfailures.Config{})
	f.verify(t, apikey.New("kp", "live"), addr(7), "")
	if err := f.failures.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if evs := f.failedEvents(t); len(evs) != 1 {
		t.Fatalf("%d events after Close, want 1", len(evs))
	}
	if err := f.failures.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// flaky is the real store, refusing writes while down is set: a database
// outage, which cannot be staged on a shared server.
type flaky struct {
	keyplane.AuditStore
	down atomic.Bool
}

func (s *flaky) AppendAudit(ctx context.Context, events []*keyplane.AuditEvent) error {
	if s.down.Load() {
		return &keyplane.Error{Code: keyplane.EUNAVAILABLE, Message: "the database is unavailable", Err: errors.New("down")}
	}
	return s.AuditStore.AppendAudit(ctx, events)
}

// TestAFailedWriteIsRetried: counts survive a write that fails.
func TestAFailedWriteIsRetried(t *testing.T) {
	store := &flaky{}
	f := newFixture(t, store, verifyfailures.Config{})
	store.AuditStore = f.store
	f.verify(t, apikey.New("kp", "live"), addr(1), "")
	f.clock.Add(time.Minute)
	store.down.Store(true)
	if err := f.failures.Flush(ctx, false); err == nil {
		t.Fatal("Flush reported success while the database was down")
	}
	f.verify(t, apikey.New("kp", "live"), addr(2), "")
	store.down.Store(false)
	if err := f.failures.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if evs := f.failedEvents(t); len(evs) != 2 {
		t.Fatalf("%d events after the retry, want 2", len(evs))
	}
}

// BenchmarkVerifyFailed is the cost a failed verification adds: counting
// into a group already held, from one goroutine and from all.
func BenchmarkVerifyFailed(b *testing.B) {
	r := verifyfailures.New(teststore.New(b), verifyfailures.Config{Logger: quiet(), FlushInterval: time.Hour})
	b.Cleanup(func() { r.Close(ctx) })
	fail := keyplane.VerifyFailure{Time: time.Now(), Code: keyplane.VerifyNotFound, KeyHashPrefix: [4]byte{1, 2, 3, 4}, IP: addr(1)}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.VerifyFailed(fail)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r.VerifyFailed(fail)
			}
		})
	})
}
