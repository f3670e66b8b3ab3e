package usage_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/teststore"
	"github.com/keyplane/keyplane/usage"
)

var ctx = context.Background()

// t0 is a minute in the middle of an hour, so that a run crosses no hour.
var t0 = time.Date(2026, 5, 6, 7, 8, 0, 0, time.UTC)

func newMeter(t testing.TB, store keyplane.UsageStore) *usage.Meter {
	// An hour-long interval: the tests flush themselves.
	m := usage.New(store, usage.Config{FlushInterval: time.Hour, PruneInterval: time.Hour, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return t0.Add(30 * time.Second) }})
	t.Cleanup(func() { m.Close(ctx) })
	return m
}

func flush(t testing.TB, m *usage.Meter) {
	t.Helper()
	if err := m.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func rows(t testing.TB, s keyplane.UsageStore, subject string, g keyplane.UsageGranularity) []keyplane.UsageRow {
	t.Helper()
	got, err := s.UsageRows(ctx, keyplane.UsageQuery{Subject: subject, Granularity: g, From: t0.Add(-40 * 24 * time.Hour), To: t0.Add(40 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func sum(rows []keyplane.UsageRow) (c keyplane.UsageCounts) {
	for i := range rows {
		c.Add(&rows[i].UsageCounts)
	}
	return c
}

func verification(key, account, endpoint string, code keyplane.VerifyCode, at time.Time) keyplane.UsageEvent {
	return keyplane.UsageEvent{KeyID: key, AccountID: account, Endpoint: endpoint, Code: code, Time: at}
}

func TestCountsEveryOutcome(t *testing.T) {
	store := teststore.New(t)
	m := newMeter(t, store)
	m.Record(verification("key_a", "acc_1", "GET /x", keyplane.VerifyValid, t0))
	m.Record(verification("key_a", "acc_1", "GET /x", keyplane.VerifyValid, t0.Add(time.Second)))
	m.Record(verification("key_a", "acc_1", "GET /x", keyplane.VerifyRateLimited, t0.Add(2*time.Second)))
	m.Record(verification("key_a", "acc_1", "GET /y", keyplane.VerifyRevoked, t0.Add(3*time.Second)))
	m.Record(verification("key_b", "acc_1", "GET /x", keyplane.VerifyValid, t0.Add(4*time.Second)))
	m.Record(verification("", "", "GET /x", keyplane.VerifyNotFound, t0)) // not found: not metered
	// The upstream answered one of key_a's valid requests with a 503.
	m.Record(keyplane.UsageEvent{KeyID: "key_a", AccountID: "acc_1", Endpoint: "GET /x", Code: keyplane.VerifyValid, Status: 503,
		Latency: 20 * time.Millisecond, Time: t0.Add(time.Second)})
	// An outcome of a refused request changes nothing: nothing was proxied.
	m.Record(keyplane.UsageEvent{KeyID: "key_a", AccountID: "acc_1", Endpoint: "GET /x", Code: keyplane.VerifyRateLimited, Status: 429, Time: t0})
	flush(t, m)

	got := rows(t, store, "key_a", keyplane.UsageMinute)
	if len(got) != 2 || got[0].Endpoint != "GET /x" || got[1].Endpoint != "GET /y" {
		t.Fatalf("key_a minutes: %+v", got)
	}
	x := got[0]
	rl, rev := keyplane.RejectionIndex(keyplane.VerifyRateLimited), keyplane.RejectionIndex(keyplane.VerifyRevoked)
	if x.Requests != 3 || x.Valid != 2 || x.UpstreamErrors != 1 || x.Successes() != 1 || x.Errors() != 1 || x.Rejected[rl] != 1 || x.Rejections() != 1 || x.AccountID != "acc_1" {
		t.Errorf("GET /x = %+v", x.UsageCounts)
	}
	if x.Latency == nil || got[1].Latency != nil {
		t.Errorf("latency stored where none was measured, or missing")
	}
	if got[1].Requests != 1 || got[1].Rejected[rev] != 1 {
		t.Errorf("GET /y = %+v", got[1].UsageCounts)
	}
	// The account's rows sum its keys'.
	acc := sum(rows(t, store, "acc_1", keyplane.UsageMinute))
	if acc.Requests != 5 || acc.Valid != 3 || acc.Successes() != 2 || acc.Errors() != 1 || acc.Rejections() != 2 {
		t.Errorf("account = %+v", acc)
	}
	totals, err := store.KeyUsageTotals(ctx, []string{"key_a", "key_b"})
	if err != nil {
		t.Fatal(err)
	}
	if totals[0].Requests != 4 || !totals[0].LastUsedAt.Equal(t0.Add(3*time.Second)) || totals[0].AccountID != "acc_1" || totals[1].Requests != 1 {
		t.Errorf("totals = %+v", totals)
	}
	// A flush with nothing new writes nothing more.
	flush(t, m)
	if again := rows(t, store, "key_a", keyplane.UsageMinute); again[0].Requests != 3 {
		t.Errorf("a second flush counted again: %+v", again[0])
	}
}

// Outcomes are counted apart from verifications, never taken from them:
// 5xx reported of a key with no verifications leave every count at zero or
// above, in every row (issue #14), and its later verifications whole.
func TestOutcomesWithoutVerificationsCountApart(t *testing.T) {
	store := teststore.New(t)
	m := newMeter(t, store)
	for i := range 1000 {
		m.Record(keyplane.UsageEvent{KeyID: "key_u", AccountID: "acc_u", Endpoint: "GET /x", Code: keyplane.VerifyValid, Status: 503,
			Latency: time.Millisecond, Time: t0.Add(time.Duration(i) * time.Millisecond)})
	}
	flush(t, m)
	// Verifications after the outcomes, in a later flush, count whole.
	for range 3 {
		m.Record(verification("key_u", "acc_u", "GET /x", keyplane.VerifyValid, t0.Add(2*time.Second)))
	}
	flush(t, m)
	for _, subject := range []string{"key_u", "acc_u"} {
		for _, g := range keyplane.UsageGranularities {
			got := rows(t, store, subject, g)
			want := keyplane.UsageCounts{Requests: 3, Valid: 3, UpstreamErrors: 1000}
			if len(got) != 1 || got[0].UsageCounts != want {
				t.Errorf("%s by %s: %+v, want %+v", subject, g, got, want)
				continue
			}
			if c := got[0].UsageCounts; c.Successes() != 0 || c.Errors() != 3 || c.ErrorRate() != 1 {
				t.Errorf("%s by %s: %d successes, %d errors, rate %v", subject, g, c.Successes(), c.Errors(), c.ErrorRate())
			}
		}
	}
	totals, err := store.KeyUsageTotals(ctx, []string{"key_u"})
	if err != nil || totals[0].Requests != 3 {
		t.Errorf("totals %+v, %v", totals, err)
	}
}

// Hour and day rows are written by the same flushes as minutes: they hold
// exactly the sum of their minutes.
func TestRollupsEqualTheSumOfMinutes(t *testing.T) {
	store := teststore.New(t)
	m := newMeter(t, store)
	rng := rand.New(rand.NewPCG(1, 2))
	codes := []keyplane.VerifyCode{keyplane.VerifyValid, keyplane.VerifyValid, keyplane.VerifyValid, keyplane.VerifyRateLimited, keyplane.VerifyExpired}
	start := time.Date(2026, 5, 6, 22, 0, 0, 0, time.UTC) // spans midnight: two days, several hours
	for i := range 3000 {
		at := start.Add(time.Duration(rng.IntN(4*3600)) * time.Second)
		key := fmt.Sprintf("key_%d", rng.IntN(3))
		ev := verification(key, "acc_r", fmt.Sprintf("GET /%d", rng.IntN(4)), codes[rng.IntN(len(codes))], at)
		m.Record(ev)
		if ev.Code == keyplane.VerifyValid && rng.IntN(3) == 0 {
			ev.Status, ev.Latency = 200+rng.IntN(2)*300, time.Duration(1+rng.IntN(500))*time.Millisecond
			m.Record(ev)
		}
		if i%500 == 0 {
			flush(t, m) // several flushes, so rows are added to, not only created
		}
	}
	flush(t, m)
	for _, subject := range []string{"key_0", "key_1", "key_2", "acc_r"} {
		minutes := rows(t, store, subject, keyplane.UsageMinute)
		hours := rows(t, store, subject, keyplane.UsageHour)
		days := rows(t, store, subject, keyplane.UsageDay)
		if len(hours) < 4 || len(days) != 2*len(days)/2 || len(days) < 2 {
			t.Fatalf("%s: %d hour rows and %d day rows", subject, len(hours), len(days))
		}
		for _, g := range []struct {
			name string
			rows []keyplane.UsageRow
			of   keyplane.UsageGranularity
		}{{"hours", hours, keyplane.UsageHour}, {"days", days, keyplane.UsageDay}} {
			// Per bucket and endpoint, the coarse row is the sum of its minutes.
			want := map[string]keyplane.UsageCounts{}
			for _, r := range minutes {
				k := fmt.Sprint(g.of.BucketStart(r.BucketStart.Unix()), r.Endpoint)
				c := want[k]
				c.Add(&r.UsageCounts)
				want[k] = c
			}
			if len(want) != len(g.rows) {
				t.Errorf("%s %s: %d rows, want %d", subject, g.name, len(g.rows), len(want))
			}
			for _, r := range g.rows {
				if w := want[fmt.Sprint(r.BucketStart.Unix(), r.Endpoint)]; w != r.UsageCounts {
					t.Errorf("%s %s %s %s = %+v, minutes sum to %+v", subject, g.name, r.BucketStart, r.Endpoint, r.UsageCounts, w)
				}
			}
		}
	}
}

// Percentiles read from the stored sketches, merged across flushes, rows
// and granularities, are within the sketch's relative accuracy of the exact
// ones of a sorted slice.
func TestPercentilesMatchAReference(t *testing.T) {
	store := teststore.New(t)
	m := newMeter(t, store)
	rng := rand.New(rand.NewPCG(3, 4))
	var latencies []float64
	for i := range 20000 {
		// A long-tailed mix, from 0.1 ms to seconds.
		ms := math.Exp(rng.NormFloat64()*1.5 + 3)
		d := time.Duration(ms * float64(time.Millisecond))
		latencies = append(latencies, float64(d)/float64(time.Millisecond))
		at := t0.Add(time.Duration(rng.IntN(3*3600)) * time.Second)
		m.Record(keyplane.UsageEvent{KeyID: "key_p", AccountID: "acc_p", Endpoint: fmt.Sprint("GET /", i%3), Code: keyplane.VerifyValid,
			Status: 200, Latency: d, Time: at})
		if i%4000 == 0 {
			flush(t, m)
		}
	}
	flush(t, m)
	slices.Sort(latencies)
	reporter := usage.NewReporter(store)
	for _, g := range keyplane.UsageGranularities {
		from := time.Unix(g.BucketStart(t0.Unix()), 0).UTC()
		rep, err := reporter.UsageReport(ctx, keyplane.UsageQuery{Subject: "acc_p", Granularity: g, From: from, To: from.Add(4 * 24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Latency.Count != int64(len(latencies)) {
			t.Fatalf("%s: %d latencies, want %d", g, rep.Latency.Count, len(latencies))
		}
		for _, p := range []struct {
			q   float64
			got float64
		}{{0.5, rep.Latency.P50}, {0.95, rep.Latency.P95}, {0.99, rep.Latency.P99}} {
			// DDSketch's rank for quantile q is q·(n−1), rounded down.
			want := latencies[int(p.q*float64(len(latencies)-1))]
			if math.Abs(p.got-want) > usage.RelativeAccuracy*want {
				t.Errorf("%s p%v = %.4f ms, exact %.4f ms: off by more than %v", g, p.q*100, p.got, want, usage.RelativeAccuracy)
			}
		}
	}
}

func TestEndpointsPerKeyAreBounded(t *testing.T) {
	store := teststore.New(t)
	m := newMeter(t, store)
	for i := range keyplane.MaxUsageEndpoints + 50 {
		m.Record(verification("key_e", "acc_e", fmt.Sprintf("GET /%d", i), keyplane.VerifyValid, t0))
	}
	// Names the stores cannot hold are folded too, not written to fail the flush.
	m.Record(verification("key_f", "acc_e", "bad\xff", keyplane.VerifyValid, t0))
	m.Record(verification("key_f", "acc_e", "nul\x00", keyplane.VerifyValid, t0))
	flush(t, m)
	got := rows(t, store, "key_e", keyplane.UsageMinute)
	if len(got) != keyplane.MaxUsageEndpoints+1 {
		t.Fatalf("%d rows, want %d", len(got), keyplane.MaxUsageEndpoints+1)
	}
	if other := got[0]; other.Endpoint != keyplane.OtherEndpoint || other.Requests != 50 {
		t.Errorf("first row %q has %d requests, want %q with 50", other.Endpoint, other.Requests, keyplane.OtherEndpoint)
	}
	if f := rows(t, store, "key_f", keyplane.UsageMinute); len(f) != 1 || f[0].Endpoint != keyplane.OtherEndpoint || f[0].Requests != 2 {
		t.Errorf("unstorable names: %+v", f)
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	m := newMeter(t, teststore.New(t))
	ev := verification("key_z", "acc_z", "GET /things/{id}", keyplane.VerifyValid, t0)
	outcome := ev
	outcome.Status, outcome.Latency = 200, 12*time.Millisecond
	m.Record(ev)
	m.Record(outcome)
	if n := testing.AllocsPerRun(1000, func() { m.Record(ev); m.Record(outcome) }); n != 0 {
		t.Fatalf("Record allocates %v times", n)
	}
	// Nor after a flush: the cell and its sketch are kept and reused.
	flush(t, m)
	if n := testing.AllocsPerRun(1000, func() { m.Record(ev); m.Record(outcome) }); n != 0 {
		t.Fatalf("Record allocates %v times after a flush", n)
	}
}

// failing fails its next AddUsage calls.
type failing struct {
	keyplane.Store
	failures atomic.Int32
}

func (f *failing) AddUsage(ctx context.Context, rows []keyplane.UsageRow, totals []keyplane.KeyUsageTotal, merge keyplane.LatencyMerge) error {
	if f.failures.Add(-1) >= 0 {
		return errors.New("database down")
	}
	return f.Store.AddUsage(ctx, rows, totals, merge)
}

func TestFailedFlushIsRetried(t *testing.T) {
	store := &failing{Store: teststore.New(t)}
	store.failures.Store(2)
	m := newMeter(t, store)
	for range 3 {
		m.Record(verification("key_r", "acc_r", "", keyplane.VerifyValid, t0))
	}
	if err := m.Flush(ctx); err == nil {
		t.Fatal("flush reported no error")
	}
	m.Record(verification("key_r", "acc_r", "", keyplane.VerifyValid, t0))
	m.Record(keyplane.UsageEvent{KeyID: "key_r", AccountID: "acc_r", Code: keyplane.VerifyValid, Status: 200, Latency: time.Millisecond, Time: t0})
	if err := m.Flush(ctx); err == nil {
		t.Fatal("flush reported no error")
	}
	flush(t, m)
	got := rows(t, store, "key_r", keyplane.UsageMinute)
	if len(got) != 1 || got[0].Requests != 4 || got[0].Latency == nil {
		t.Fatalf("after two failed flushes: %+v", got)
	}
	totals, _ := store.KeyUsageTotals(ctx, []string{"key_r"})
	if totals[0].Requests != 4 {
		t.Fatalf("totals after two failed flushes: %+v", totals)
	}
}

func TestCloseWritesEverything(t *testing.T) {
	store := teststore.New(t)
	m := usage.New(store, usage.Config{FlushInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				m.Record(verification(fmt.Sprint("key_", g), "acc_c", "", keyplane.VerifyValid, time.Now()))
			}
		}()
	}
	wg.Wait()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	totals, err := store.KeyUsageTotals(ctx, []string{"key_0", "key_1", "key_2", "key_3"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tot := range totals {
		if tot.Requests != 1000 {
			t.Errorf("%s: %d requests after Close, want 1000", tot.KeyID, tot.Requests)
		}
	}
}

// Two meters on one database, as two instances: their counts add up.
func TestTwoMetersAddUp(t *testing.T) {
	store := teststore.New(t)
	a, b := newMeter(t, store), newMeter(t, store)
	for i := range 100 {
		m := a
		if i%3 == 0 {
			m = b
		}
		m.Record(verification("key_2m", "acc_2m", "GET /", keyplane.VerifyValid, t0))
		m.Record(keyplane.UsageEvent{KeyID: "key_2m", AccountID: "acc_2m", Endpoint: "GET /", Code: keyplane.VerifyValid, Status: 200,
			Latency: time.Duration(i+1) * time.Millisecond, Time: t0})
	}
	flush(t, a)
	flush(t, b)
	for _, g := range keyplane.UsageGranularities {
		got := rows(t, store, "key_2m", g)
		if len(got) != 1 || got[0].Requests != 100 {
			t.Fatalf("%s: %+v", g, got)
		}
		s, err := usage.DecodeSketch(got[0].Latency)
		if err != nil || s.GetCount() != 100 {
			t.Fatalf("%s: merged sketch of %v latencies, %v", g, s.GetCount(), err)
		}
	}
}

func TestPrune(t *testing.T) {
	store := teststore.New(t)
	now := t0
	m := usage.New(store, usage.Config{FlushInterval: time.Hour, PruneInterval: time.Hour, Logger: slog.New(slog.DiscardHandler),
		Retention: usage.Retention{Minute: 2 * time.Hour, Hour: 48 * time.Hour, Day: 30 * 24 * time.Hour}, Now: func() time.Time { return now }})
	defer m.Close(ctx)
	for _, ago := range []time.Duration{time.Hour, 3 * time.Hour, 72 * time.Hour} {
		m.Record(verification("key_old", "acc_old", "", keyplane.VerifyValid, t0.Add(-ago)))
	}
	flush(t, m)
	if err := m.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, store, "key_old", keyplane.UsageMinute); len(got) != 1 {
		t.Errorf("minutes kept: %d, want 1", len(got))
	}
	if got := rows(t, store, "key_old", keyplane.UsageHour); len(got) != 2 {
		t.Errorf("hours kept: %d, want 2", len(got))
	}
	if got := rows(t, store, "key_old", keyplane.UsageDay); sum(got).Requests != 3 {
		t.Errorf("days kept %d requests, want 3", sum(got).Requests)
	}
}

func TestParseRetention(t *testing.T) {
	r, err := usage.ParseRetention("minute=1d, day=400d")
	if err != nil || r.Minute != 24*time.Hour || r.Hour != usage.DefaultRetention.Hour || r.Day != 400*24*time.Hour {
		t.Fatalf("got %+v, %v", r, err)
	}
	if r, err := usage.ParseRetention(usage.DefaultRetention.String()); err != nil || r != usage.DefaultRetention {
		t.Fatalf("round trip of %s: %+v, %v", usage.DefaultRetention, r, err)
	}
	for _, bad := range []string{"minute", "week=1d", "hour=30m", "day=-1d", "minute=xd", "minute=7"} {
		if _, err := usage.ParseRetention(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// RecordVerification checks the cell it counted the key's last verification
// in before any lookup: keys sharing a slot, alternating endpoints, a
// record replaced in the cache and a minute's end must still land in their
// own rows.
func TestVerificationShortcutsKeepRowsApart(t *testing.T) {
	store := teststore.New(t)
	m := newMeter(t, store)
	// Many keys, so that some share a slot; and a second record of one key,
	// as the cache has after a reload.
	var keys []*keyplane.Key
	for i := range 200 {
		keys = append(keys, &keyplane.Key{ID: fmt.Sprintf("key_%03d", i), AccountID: "acc_s"})
	}
	keys = append(keys, &keyplane.Key{ID: "key_000", AccountID: "acc_s"})
	type bucket struct {
		key, endpoint string
		minute        time.Time
	}
	want := map[bucket]int64{}
	for i := range 4000 {
		// Runs of five events per key and of twenty per endpoint, and a
		// minute that ends inside a run.
		at := t0.Add(time.Duration(i/40-2) * time.Second)
		k, endpoint := keys[i/5%len(keys)], fmt.Sprint("GET /", i/20%3)
		m.RecordVerification(k, endpoint, at, keyplane.VerifyValid)
		want[bucket{k.ID, endpoint, at.Truncate(time.Minute)}]++
	}
	flush(t, m)
	for _, k := range keys[:200] {
		for _, r := range rows(t, store, k.ID, keyplane.UsageMinute) {
			b := bucket{k.ID, r.Endpoint, r.BucketStart.UTC()}
			if r.Requests != want[b] || r.Valid != want[b] {
				t.Errorf("%+v: %d requests, want %d", b, r.Requests, want[b])
			}
			delete(want, b)
		}
	}
	if len(want) > 0 {
		t.Errorf("rows missing: %v", want)
	}
}

// A key dropped from memory while idle is counted afresh when it comes
// back, not into the dropped state the shard saw last.
func TestKeyBackFromIdleIsCounted(t *testing.T) {
	store := teststore.New(t)
	now := t0.Add(30 * time.Second)
	m := usage.New(store, usage.Config{FlushInterval: time.Hour, PruneInterval: time.Hour, IdleAfter: time.Minute,
		Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }})
	defer m.Close(ctx)
	m.Record(verification("key_idle", "acc_idle", "GET /", keyplane.VerifyValid, t0))
	flush(t, m)
	now = t0.Add(5 * time.Minute)
	flush(t, m) // the minute is over and the key idle: both dropped
	m.Record(verification("key_idle", "acc_idle", "GET /", keyplane.VerifyValid, now))
	flush(t, m)
	if got := sum(rows(t, store, "key_idle", keyplane.UsageMinute)); got.Requests != 2 {
		t.Fatalf("%d requests, want 2", got.Requests)
	}
}

// Records on several goroutines while flushes run and minutes end: the
// lock-free counts, the cells a flush seals at a minute's end, and a busy
// key's switch to striped cells lose nothing and count nothing twice.
func TestConcurrentRecordsAndFlushesAddUp(t *testing.T) {
	store := teststore.New(t)
	var clock atomic.Int64 // seconds after t0
	now := func() time.Time { return t0.Add(time.Duration(clock.Load()) * time.Second) }
	m := usage.New(store, usage.Config{FlushInterval: time.Hour, PruneInterval: time.Hour, Logger: slog.New(slog.DiscardHandler), Now: now})
	const goroutines = 4
	const end = 5 * 60 // seconds after t0: five minutes, so cells are sealed
	keys := []string{"key_busy", "key_calm"}
	// As the verify path has them: one cached key each, and constant
	// endpoints.
	cached := []*keyplane.Key{{ID: keys[0], AccountID: "acc_cc"}, {ID: keys[1], AccountID: "acc_cc"}}
	endpoints := []string{"GET /0", "GET /1"}
	var wg sync.WaitGroup
	counted := make([][2]keyplane.UsageCounts, goroutines) // what each goroutine recorded, by key
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; clock.Load() < end; i++ {
				k, code := 0, keyplane.VerifyValid
				if i%10 == 0 {
					k = 1
				}
				c := &counted[g][k]
				c.Requests++
				if i%7 == 0 {
					code = keyplane.VerifyRateLimited
					c.Rejected[keyplane.RejectionIndex(code)]++
				} else {
					c.Valid++
				}
				m.RecordVerification(cached[k], endpoints[g%2], now(), code)
				if i%64 == 0 {
					runtime.Gosched() // lets the flushing goroutine in on a busy machine
				}
			}
		}()
	}
	flushes := 0
	for clock.Load() < end {
		time.Sleep(time.Millisecond)
		clock.Add(20) // a minute ends every third flush
		flush(t, m)
		flushes++
	}
	wg.Wait()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var want [2]keyplane.UsageCounts
	for g := range counted {
		for k := range want {
			want[k].Add(&counted[g][k])
		}
	}
	for k, key := range keys {
		for _, g := range keyplane.UsageGranularities {
			if got := sum(rows(t, store, key, g)); got != want[k] {
				t.Errorf("%s, %s rows: %+v, want %+v", key, g, got, want[k])
			}
		}
	}
	totals, err := store.KeyUsageTotals(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for k, tot := range totals {
		if tot.Requests != want[k].Requests {
			t.Errorf("%s: total %d, want %d", tot.KeyID, tot.Requests, want[k].Requests)
		}
	}
	if minutes := len(rows(t, store, keys[0], keyplane.UsageMinute)) / 2; minutes < 2 {
		t.Errorf("the run spanned %d minutes (%d flushes): no cell was sealed", minutes, flushes)
	}
}
