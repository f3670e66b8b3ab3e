package usage

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"testing"
	"time"
	"unsafe"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/teststore"
)

// A sealed cell refuses adds, so that their callers count them elsewhere;
// what was added before the seal is taken by it.
func TestSealedCellRefusesAdds(t *testing.T) {
	ks := &keyState{keyID: "key_s", cells: map[cellKey]*cell{}, endpoints: map[string]string{}}
	c := ks.cell("GET /", 60, 0)
	if !c.countVerification(keyplane.VerifyValid, 1) || !c.countVerification(keyplane.VerifyExpired, 2) {
		t.Fatal("an add to a live cell did not count")
	}
	var got keyplane.UsageCounts
	c.take(&got, true)
	if got.Requests != 2 || got.Valid != 1 || got.Rejected[keyplane.RejectionIndex(keyplane.VerifyExpired)] != 1 {
		t.Errorf("sealing took %+v", got)
	}
	if c.countVerification(keyplane.VerifyValid, 3) || c.countVerification(keyplane.VerifyExpired, 3) {
		t.Error("an add to a sealed cell counted")
	}
	if ks.lastUsed.Load() != 3 {
		t.Errorf("last use %d, want 3", ks.lastUsed.Load())
	}
}

// An endpoint verified wideAfter times in an interval gets a cell per
// stripe: its one cell is sealed and dropped with its counts taken, and an
// interval with half as many makes it share one cell again.
func TestBusyEndpointGetsACellPerStripe(t *testing.T) {
	sh := &shard{keys: map[string]*keyState{}}
	ks := &keyState{keyID: "key_w", accountID: "acc_w", cells: map[cellKey]*cell{}, endpoints: map[string]string{}}
	sh.keys[ks.keyID] = ks
	drain := func() keyplane.UsageCounts {
		var got keyplane.UsageCounts
		for _, s := range sh.drain(nil, map[string]*keyplane.KeyUsageTotal{}, 60, time.Unix(90, 0), time.Hour) {
			if s.endpoint == "GET /busy" {
				got.Add(&s.counts)
			}
		}
		return got
	}
	shared := ks.cell("GET /busy", 60, 3)
	calm := ks.cell("GET /calm", 60, 3)
	if shared != ks.cell("GET /busy", 60, 5) {
		t.Fatal("an endpoint not busy has more than one cell")
	}
	for range wideAfter {
		shared.countVerification(keyplane.VerifyValid, 1)
	}
	if got := drain(); got.Requests != wideAfter {
		t.Fatalf("the drain took %d requests, want %d", got.Requests, wideAfter)
	}
	if !ks.busy["GET /busy"] || ks.busy["GET /calm"] {
		t.Fatalf("busy endpoints: %v", ks.busy)
	}
	if shared.countVerification(keyplane.VerifyValid, 2) || !shared.dropped.Load() {
		t.Fatal("the busy endpoint's shared cell still counts")
	}
	a, b := ks.cell("GET /busy", 60, 3), ks.cell("GET /busy", 60, 5)
	if a == b || a == shared {
		t.Fatal("a busy endpoint's stripes share a cell")
	}
	if ks.cell("GET /calm", 60, 5) != calm {
		t.Fatal("the calm endpoint lost its shared cell")
	}
	a.countVerification(keyplane.VerifyValid, 3)
	b.countVerification(keyplane.VerifyValid, 3)
	if got := drain(); got.Requests != 2 {
		t.Fatalf("the stripes' cells gave %d requests, want 2", got.Requests)
	}
	if ks.busy["GET /busy"] {
		t.Fatal("an endpoint that calmed down is still busy")
	}
}

// A cell fills its allocation class exactly, so its counts, first, start a
// cache line of their own.
func TestCellIsOneAllocationClass(t *testing.T) {
	if size := unsafe.Sizeof(cell{}); size != 256 {
		t.Fatalf("a cell is %d bytes, want 256", size)
	}
	if size := unsafe.Sizeof(stripe{}); size != 64 {
		t.Fatalf("a stripe is %d bytes, want 64", size)
	}
	ks := &keyState{keyID: "key_a", cells: map[cellKey]*cell{}, endpoints: map[string]string{}}
	for i := range 100 {
		c := ks.cell("GET /", int64(i)*60, 0) // on the heap, as the meter makes them
		if at := uintptr(unsafe.Pointer(&c.counts)); at%64 != 0 {
			t.Fatalf("counts at %#x, not on a cache line's start", at)
		}
	}
}

func TestStripes(t *testing.T) {
	for procs, want := range map[int]int{1: 16, 2: 16, 3: 32, 4: 32, 8: 64, 32: 256, 1000: 256} {
		if got := stripes(procs); got != want {
			t.Errorf("stripes(%d) = %d, want %d", procs, got, want)
		}
	}
}

// A valid verification of the cached key, endpoint and minute counted last
// by the caller's stripe takes no lock: the verify path's promise. So does
// one of a busy key, once it has a cell of the caller's stripe.
func TestVerificationOfAHotKeyTakesNoLock(t *testing.T) {
	t0 := time.Date(2026, 5, 6, 7, 8, 0, 0, time.UTC)
	m := New(teststore.New(t), Config{FlushInterval: time.Hour, PruneInterval: time.Hour, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return t0.Add(30 * time.Second) }})
	defer m.Close(context.Background())
	k := &keyplane.Key{ID: "key_hot", AccountID: "acc_hot"}
	sh := m.shard(k.ID)
	locked, answered := make(chan bool), make(chan bool)
	// One goroutine makes the calls, so that all are of one stripe: its
	// stack is grown first and the collector, which may shrink it, is off,
	// so that the stack stays where it is.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	go func() {
		growStack(64)
		for _, busy := range []bool{false, true} {
			m.RecordVerification(k, "GET /", t0, keyplane.VerifyValid) // under the lock: makes the cell
			locked <- true
			<-locked
			m.RecordVerification(k, "GET /", t0.Add(time.Second), keyplane.VerifyValid)
			answered <- true
			<-answered
			if !busy {
				for range wideAfter {
					m.RecordVerification(k, "GET /", t0, keyplane.VerifyValid)
				}
				if err := m.Flush(context.Background()); err != nil { // makes the key busy
					t.Error(err)
				}
			}
		}
	}()
	for _, state := range []string{"not busy", "busy"} {
		<-locked
		sh.mu.Lock()
		locked <- true
		select {
		case <-answered:
		case <-time.After(5 * time.Second):
			sh.mu.Unlock()
			t.Fatalf("%s: the verification waited for the shard's lock", state)
		}
		sh.mu.Unlock()
		answered <- true
	}
}

// growStack uses about n KiB of stack.
func growStack(n int) byte {
	var b [1024]byte
	if n > 0 {
		b[n%1024] = growStack(n - 1)
	}
	return b[0]
}

// A flush empties the slots of the cells it dropped: they would keep the
// cells, their keys and the keys' cached records in memory.
func TestFlushEmptiesSlotsOfDroppedCells(t *testing.T) {
	t0 := time.Date(2026, 5, 6, 7, 8, 0, 0, time.UTC)
	now := t0
	m := New(teststore.New(t), Config{FlushInterval: time.Hour, PruneInterval: time.Hour, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return now }})
	defer m.Close(context.Background())
	held := func() (n int) {
		for i := range m.hot {
			if m.hot[i].Load() != nil {
				n++
			}
		}
		return n
	}
	for i := range 50 {
		k := &keyplane.Key{ID: fmt.Sprint("key_", i), AccountID: "acc_d"}
		m.RecordVerification(k, "GET /", t0, keyplane.VerifyValid)
	}
	if err := m.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := held(); n < 45 { // a few keys may share a slot
		t.Fatalf("%d slots hold a cell, want about 50", n)
	}
	now = t0.Add(2 * time.Minute) // the minute is over: its cells are dropped
	if err := m.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := held(); n != 0 {
		t.Fatalf("%d slots still hold a dropped cell", n)
	}
}
