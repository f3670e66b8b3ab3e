package usage

import (
	"context"
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
	if got.Requests != 2 || got.Successes != 1 || got.Rejected[keyplane.RejectionIndex(keyplane.VerifyExpired)] != 1 {
		t.Errorf("sealing took %+v", got)
	}
	if c.countVerification(keyplane.VerifyValid, 3) || c.countVerification(keyplane.VerifyExpired, 3) {
		t.Error("an add to a sealed cell counted")
	}
	if ks.lastUsed.Load() != 3 {
		t.Errorf("last use %d, want 3", ks.lastUsed.Load())
	}
}

// Widening a busy key drops its cells with what they counted since the
// drain took their counts.
func TestWidenKeepsLateCounts(t *testing.T) {
	sh := &shard{keys: map[string]*keyState{}}
	ks := &keyState{keyID: "key_w", accountID: "acc_w", cells: map[cellKey]*cell{}, endpoints: map[string]string{}}
	c := ks.cell("GET /", 60, 0)
	c.countVerification(keyplane.VerifyValid, 1) // after the drain's take
	ks.wide = true
	snaps := sh.widen(nil, ks)
	if len(snaps) != 1 || snaps[0].counts.Requests != 1 || snaps[0].endpoint != "GET /" || snaps[0].minute != 60 {
		t.Fatalf("late counts: %+v", snaps)
	}
	if len(ks.cells) != 0 {
		t.Fatal("the cell was kept")
	}
	if c.countVerification(keyplane.VerifyValid, 2) {
		t.Fatal("the dropped cell still counts")
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
