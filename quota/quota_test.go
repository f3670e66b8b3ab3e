package quota_test

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/quota"
	"github.com/keyplane/keyplane/teststore"
)

var day = time.Date(2026, 11, 23, 15, 4, 5, 0, time.UTC)

// newMeter returns a meter that only flushes when the test says so.
func newMeter(t *testing.T, store keyplane.QuotaStore) *quota.Meter {
	t.Helper()
	m := quota.New(store, quota.Config{FlushInterval: time.Hour, Now: func() time.Time { return day }})
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

func charge(t *testing.T, m *quota.Meter, q *keyplane.Quota, subject string, cost int64, now time.Time) (keyplane.QuotaState, bool) {
	t.Helper()
	st, ok, err := m.Charge(context.Background(), q, subject, cost, now)
	if err != nil {
		t.Fatal(err)
	}
	return st, ok
}

func flush(t *testing.T, m *quota.Meter) {
	t.Helper()
	if err := m.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentChargesAdmitExactlyTheLimit(t *testing.T) {
	m := newMeter(t, teststore.New(t))
	q := &keyplane.Quota{Limit: 100, Period: keyplane.QuotaDay}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range 50 {
				if _, ok, err := m.Charge(context.Background(), q, "key_a", 1, day); err != nil {
					t.Error(err)
				} else if ok {
					admitted.Add(1)
				}
				if i == 25 {
					m.Flush(context.Background()) // flushes race the charges too
				}
			}
		})
	}
	wg.Wait()
	if got := admitted.Load(); got != 100 {
		t.Fatalf("admitted %d, want exactly 100", got)
	}
	st, err := m.Usage(context.Background(), q, "key_a", day)
	if err != nil || st.Used != 100 || st.Remaining != 0 {
		t.Fatalf("usage = %+v, %v; want 100 used, 0 remaining", st, err)
	}
}

func TestStateAndCosts(t *testing.T) {
	m := newMeter(t, teststore.New(t))
	q := &keyplane.Quota{Limit: 10, Period: keyplane.QuotaDay}
	st, ok := charge(t, m, q, "key_a", 4, day)
	want := keyplane.QuotaState{Limit: 10, Used: 4, Remaining: 6, Period: keyplane.QuotaDay,
		PeriodStart: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), ResetsAt: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)}
	if !ok || st != want {
		t.Fatalf("charge 4 = %+v, %v; want %+v", st, ok, want)
	}
	if st, ok := charge(t, m, q, "key_a", 7, day); ok || st.Used != 4 {
		t.Fatalf("a charge past the limit = %+v, %v; want refused, nothing charged", st, ok)
	}
	if st, ok := charge(t, m, q, "key_a", 0, day); !ok || st.Used != 4 {
		t.Fatalf("cost 0 = %+v, %v; want admitted, nothing charged", st, ok)
	}
	if st, ok := charge(t, m, q, "key_a", 6, day); !ok || st.Remaining != 0 {
		t.Fatalf("charge to the limit = %+v, %v; want admitted, 0 remaining", st, ok)
	}
	m.Refund(q, "key_a", 6, day)
	if st, ok := charge(t, m, q, "key_a", 1, day); !ok || st.Used != 5 {
		t.Fatalf("after a refund = %+v, %v; want 5 used", st, ok)
	}
	huge := &keyplane.Quota{Limit: math.MaxInt64, Period: keyplane.QuotaMonth}
	charge(t, m, huge, "key_b", math.MaxInt64-1, day)
	if _, ok := charge(t, m, huge, "key_b", math.MaxInt64, day); ok {
		t.Fatal("a charge that overflows int64 was admitted")
	}
	zero := &keyplane.Quota{Limit: 0, Period: keyplane.QuotaDay}
	if _, ok := charge(t, m, zero, "key_c", 1, day); ok {
		t.Fatal("a zero quota admitted a request")
	}
}

func TestCountsSurviveARestart(t *testing.T) {
	store := teststore.New(t)
	q := &keyplane.Quota{Limit: 100, Period: keyplane.QuotaMonth, ResetDay: 15}
	first := quota.New(store, quota.Config{FlushInterval: time.Hour})
	for range 30 {
		charge(t, first, q, "key_a", 1, day)
	}
	if err := first.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	second := newMeter(t, store)
	st, err := second.Usage(context.Background(), q, "key_a", day)
	if err != nil || st.Used != 30 {
		t.Fatalf("after a restart usage = %+v, %v; want 30", st, err)
	}
	admitted := 0
	for range 100 {
		if _, ok := charge(t, second, q, "key_a", 1, day); ok {
			admitted++
		}
	}
	if admitted != 70 {
		t.Fatalf("admitted %d after the restart, want 70", admitted)
	}
}

// Two instances on one database: each learns the other's charges when it
// flushes, and a reset on one frees the quota on the other.
func TestInstancesShareCountsThroughTheStore(t *testing.T) {
	store := teststore.New(t)
	a, b := newMeter(t, store), newMeter(t, store)
	q := &keyplane.Quota{Limit: 100, Period: keyplane.QuotaDay}
	for range 60 {
		charge(t, a, q, "key_a", 1, day)
	}
	flush(t, a)
	admitted := 0
	for range 100 {
		if _, ok := charge(t, b, q, "key_a", 1, day); ok {
			admitted++
		}
	}
	if admitted != 40 {
		t.Fatalf("instance b admitted %d, want the 40 left", admitted)
	}
	charge(t, a, q, "key_a", 5, day) // a still thinks 60 were used: overshoot until it flushes
	flush(t, b)
	flush(t, a)
	if st, ok := charge(t, a, q, "key_a", 1, day); ok || st.Used != 105 {
		t.Fatalf("after both flushed, a's state = %+v, %v; want 105 used and refused", st, ok)
	}
	if err := a.Reset(context.Background(), q, "key_a", day); err != nil {
		t.Fatal(err)
	}
	if _, ok := charge(t, a, q, "key_a", 1, day); !ok {
		t.Fatal("a refused right after its own reset")
	}
	flush(t, a)
	flush(t, b) // b refused charges, so it reads the count again
	if st, ok := charge(t, b, q, "key_a", 1, day); !ok || st.Used != 2 {
		t.Fatalf("b after the reset = %+v, %v; want admitted with 2 used", st, ok)
	}
}

func TestPeriodsAndSubjectsAreSeparate(t *testing.T) {
	m := newMeter(t, teststore.New(t))
	q := &keyplane.Quota{Limit: 1, Period: keyplane.QuotaDay}
	charge(t, m, q, "key_a", 1, day)
	if _, ok := charge(t, m, q, "key_a", 1, day); ok {
		t.Fatal("second charge of a 1/day quota admitted")
	}
	if _, ok := charge(t, m, q, "key_b", 1, day); !ok {
		t.Fatal("another key shares key_a's count")
	}
	if _, ok := charge(t, m, q, "key_a", 1, day.Add(9*time.Hour)); !ok {
		t.Fatal("the next UTC day still counts yesterday")
	}
}

func TestAStoreOutageDoesNotStopCharges(t *testing.T) {
	store := teststore.New(t)
	m := newMeter(t, store)
	store.Close()
	q := &keyplane.Quota{Limit: 2, Period: keyplane.QuotaDay}
	if _, ok := charge(t, m, q, "key_a", 1, day); !ok {
		t.Fatal("refused while the database is down; want counted from zero")
	}
	if _, err := m.Usage(context.Background(), q, "key_a", day); keyplane.ErrorCode(err) != keyplane.EUNAVAILABLE {
		t.Fatalf("usage while the database is down: %v, want EUNAVAILABLE", err)
	}
	if err := m.Flush(context.Background()); err == nil {
		t.Fatal("flush to a closed store reported no error")
	}
	if _, ok := charge(t, m, q, "key_a", 1, day); !ok {
		t.Fatal("the unwritten charge was lost or doubled")
	}
	if _, ok := charge(t, m, q, "key_a", 1, day); ok {
		t.Fatal("a third charge of a 2/day quota admitted")
	}
}
