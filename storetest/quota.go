package storetest

import (
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
)

// day is a period start; quota periods begin at midnight UTC.
var day = time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)

func ref(subject string, periodStart time.Time) keyplane.QuotaRef {
	return keyplane.QuotaRef{Subject: subject, PeriodStart: periodStart}
}

func delta(r keyplane.QuotaRef, used int64) keyplane.QuotaDelta {
	return keyplane.QuotaDelta{QuotaRef: r, Used: used}
}

func addQuota(t *testing.T, s keyplane.Store, deltas ...keyplane.QuotaDelta) []int64 {
	t.Helper()
	totals, err := s.AddQuotaUsage(ctx, deltas)
	if err != nil {
		t.Fatalf("AddQuotaUsage: %v", err)
	}
	return totals
}

func quotaUsage(t *testing.T, s keyplane.Store, refs ...keyplane.QuotaRef) []int64 {
	t.Helper()
	used, err := s.QuotaUsage(ctx, refs)
	if err != nil {
		t.Fatalf("QuotaUsage: %v", err)
	}
	return used
}

func wantCounts(t *testing.T, what string, got []int64, want ...int64) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func testQuotaAddTotals(t *testing.T, s keyplane.Store) {
	r1, r2 := ref(id("key"), day), ref(id("key"), day)
	wantCounts(t, "first add", addQuota(t, s, delta(r1, 3), delta(r2, 10)), 3, 10)
	wantCounts(t, "second add", addQuota(t, s, delta(r2, 1), delta(r1, 4)), 11, 7)
	wantCounts(t, "usage", quotaUsage(t, s, r1, r2), 7, 11)

	// A large batch, as a busy instance flushes.
	var deltas []keyplane.QuotaDelta
	var refs []keyplane.QuotaRef
	for range 1000 {
		r := ref(id("key"), day)
		refs, deltas = append(refs, r), append(deltas, delta(r, 1))
	}
	addQuota(t, s, deltas...)
	for i := range deltas {
		deltas[i].Used = 2
	}
	totals := addQuota(t, s, deltas...)
	used := quotaUsage(t, s, refs...)
	if len(totals) != len(refs) || len(used) != len(refs) {
		t.Fatalf("%d totals and %d counts for %d refs", len(totals), len(used), len(refs))
	}
	for i := range refs {
		if totals[i] != 3 || used[i] != 3 {
			t.Fatalf("ref %d: total %d, usage %d, want 3", i, totals[i], used[i])
		}
	}
}

// testQuotaAddConcurrent has instances flush the same two counts at once, half
// of them naming the refs in the opposite order: nothing is lost, each add
// sees its own total, and no batch fails (PostgreSQL would report a deadlock
// if rows were locked in the caller's order).
func testQuotaAddConcurrent(t *testing.T, s keyplane.Store) {
	const workers, adds = 8, 50
	a, b := ref(id("acc"), day), ref(id("key"), day)
	var mu sync.Mutex
	var seenA, seenB []int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for range adds {
				batch := []keyplane.QuotaDelta{delta(a, 1), delta(b, 2)}
				if w%2 == 1 {
					slices.Reverse(batch)
				}
				totals, err := s.AddQuotaUsage(ctx, batch)
				if err != nil {
					errs <- err
					return
				}
				if w%2 == 1 {
					slices.Reverse(totals)
				}
				mu.Lock()
				seenA, seenB = append(seenA, totals[0]), append(seenB, totals[1])
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent add: %v", err)
	}
	wantCounts(t, "usage", quotaUsage(t, s, a, b), workers*adds, 2*workers*adds)
	slices.Sort(seenA)
	slices.Sort(seenB)
	for i := range seenA {
		if seenA[i] != int64(i+1) || seenB[i] != int64(2*(i+1)) {
			t.Fatalf("add %d of the sorted totals saw %d and %d, want %d and %d: two adds saw the same count",
				i, seenA[i], seenB[i], i+1, 2*(i+1))
		}
	}
}

func testQuotaRefsIndependent(t *testing.T, s keyplane.Store) {
	key, account := id("key"), id("acc")
	today, tomorrow, month := ref(key, day), ref(key, day.AddDate(0, 0, 1)), ref(key, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	shared := ref(account, day)
	addQuota(t, s, delta(today, 5), delta(tomorrow, 7), delta(shared, 11))
	wantCounts(t, "usage", quotaUsage(t, s, today, tomorrow, shared, month), 5, 7, 11, 0)

	// Period starts compare as instants at microsecond precision, as all
	// times do: another zone or extra nanoseconds name the same period, a
	// microsecond later does not.
	tokyo := time.FixedZone("UTC+9", 9*3600)
	wantCounts(t, "add in another zone", addQuota(t, s, delta(ref(key, day.In(tokyo)), 1)), 6)
	wantCounts(t, "add with nanoseconds", addQuota(t, s, delta(ref(key, day.Add(999*time.Nanosecond)), 1)), 7)
	wantCounts(t, "usage", quotaUsage(t, s, ref(key, day.In(tokyo)), today, ref(key, day.Add(time.Microsecond))), 7, 7, 0)
}

func testQuotaClampsAtZero(t *testing.T, s keyplane.Store) {
	r := ref(id("key"), day)
	wantCounts(t, "add", addQuota(t, s, delta(r, 5)), 5)
	wantCounts(t, "refund", addQuota(t, s, delta(r, -3)), 2)
	wantCounts(t, "refund past zero", addQuota(t, s, delta(r, -10)), 0)
	wantCounts(t, "add after clamping", addQuota(t, s, delta(r, 4)), 4)

	fresh := ref(id("key"), day)
	wantCounts(t, "refund of nothing", addQuota(t, s, delta(fresh, -5)), 0)
	wantCounts(t, "usage after refund of nothing", quotaUsage(t, s, fresh), 0)
	wantCounts(t, "add after refund of nothing", addQuota(t, s, delta(fresh, 2)), 2)

	// One ref's deltas in one batch apply in order, each clamped.
	again := ref(id("key"), day)
	wantCounts(t, "repeated ref", addQuota(t, s, delta(again, 5), delta(again, -7), delta(again, 3)), 5, 0, 3)
	wantCounts(t, "usage", quotaUsage(t, s, r, again), 4, 3)
}

func testQuotaUsageOrder(t *testing.T, s keyplane.Store) {
	r1, r2 := ref(id("key"), day), ref(id("key"), day)
	addQuota(t, s, delta(r1, 1), delta(r2, 2))
	unknown, otherDay := ref(id("key"), day), ref(r1.Subject, day.AddDate(0, 0, -1))
	wantCounts(t, "usage", quotaUsage(t, s, r2, unknown, r1, r2, otherDay, unknown), 2, 0, 1, 2, 0, 0)
}

func testQuotaReset(t *testing.T, s keyplane.Store) {
	key := id("key")
	r, nextDay, otherKey := ref(key, day), ref(key, day.AddDate(0, 0, 1)), ref(id("key"), day)
	addQuota(t, s, delta(r, 5), delta(nextDay, 6), delta(otherKey, 7))
	if err := s.ResetQuotaUsage(ctx, r); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, "usage after reset", quotaUsage(t, s, r, nextDay, otherKey), 0, 6, 7)
	wantCounts(t, "add after reset", addQuota(t, s, delta(r, 2)), 2)

	never := ref(id("key"), day)
	if err := s.ResetQuotaUsage(ctx, never); err != nil {
		t.Fatalf("reset of a count never made: %v", err)
	}
	wantCounts(t, "usage after reset of nothing", quotaUsage(t, s, never), 0)
}

// testQuotaEmptyBatch closes the store first: empty batches must not need it.
func testQuotaEmptyBatch(t *testing.T, s keyplane.Store) {
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, deltas := range [][]keyplane.QuotaDelta{nil, {}} {
		if totals, err := s.AddQuotaUsage(ctx, deltas); totals != nil || err != nil {
			t.Fatalf("AddQuotaUsage(%#v) = %v, %v; want nil, nil", deltas, totals, err)
		}
	}
	for _, refs := range [][]keyplane.QuotaRef{nil, {}} {
		if used, err := s.QuotaUsage(ctx, refs); used != nil || err != nil {
			t.Fatalf("QuotaUsage(%#v) = %v, %v; want nil, nil", refs, used, err)
		}
	}
	// The closed store does fail on real work, so the calls above proved something.
	if _, err := s.AddQuotaUsage(ctx, []keyplane.QuotaDelta{delta(ref(id("key"), day), 1)}); err == nil {
		t.Fatal("AddQuotaUsage on a closed store succeeded")
	}
}

// testQuotaBatchIsAtomic fails the last delta of a batch by overflowing its
// count: the deltas before it are not applied either.
func testQuotaBatchIsAtomic(t *testing.T, s keyplane.Store) {
	first, full := ref(id("key"), day), ref(id("key"), day)
	addQuota(t, s, delta(first, 5), delta(full, math.MaxInt64))
	totals, err := s.AddQuotaUsage(ctx, []keyplane.QuotaDelta{delta(first, 1), delta(full, 1)})
	if err == nil {
		t.Fatalf("an add past the largest count succeeded: %v", totals)
	}
	t.Logf("overflow: %v", err)
	wantCounts(t, "usage after the failed batch", quotaUsage(t, s, first, full), 5, math.MaxInt64)
}
