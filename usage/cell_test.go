package usage

import (
	"testing"

	"github.com/keyplane/keyplane"
)

// A sealed cell refuses adds, so that their callers count them elsewhere;
// what was added before the seal is taken by it.
func TestSealedCellRefusesAdds(t *testing.T) {
	ks := &keyState{keyID: "key_s", cells: map[cellKey]*cell{}, endpoints: map[string]string{}}
	for _, stripes := range []int{1, 16} {
		c := &cell{key: ks, stripes: make([]stripe, stripes)}
		if !c.countVerification(keyplane.VerifyValid, 1) || !c.countVerification(keyplane.VerifyExpired, 2) {
			t.Fatal("an add to a live cell did not count")
		}
		var got keyplane.UsageCounts
		c.take(&got, true)
		if got.Requests != 2 || got.Successes != 1 || got.Rejected[keyplane.RejectionIndex(keyplane.VerifyExpired)] != 1 {
			t.Errorf("%d stripes: sealing took %+v", stripes, got)
		}
		if c.countVerification(keyplane.VerifyValid, 3) || c.countVerification(keyplane.VerifyExpired, 3) {
			t.Errorf("%d stripes: an add to a sealed cell counted", stripes)
		}
		if ks.lastUsed.Load() != 3 {
			t.Errorf("last use %d, want 3", ks.lastUsed.Load())
		}
	}
}

// Widening a busy key drops its narrow cells with what they counted since
// the drain took their counts, and its next cells are striped.
func TestWidenKeepsLateCounts(t *testing.T) {
	m := &Meter{wideStripes: wideStripes(2)}
	sh := &shard{keys: map[string]*keyState{}, hot: &m.hot}
	ks := &keyState{keyID: "key_w", accountID: "acc_w", cells: map[cellKey]*cell{}, endpoints: map[string]string{}}
	c := m.cell(ks, "GET /", 60)
	c.hotSlot = 7
	m.hot[c.hotSlot].Store(c)
	c.countVerification(keyplane.VerifyValid, 1) // after the drain's take
	ks.wide = true
	snaps := sh.widen(nil, ks)
	if len(snaps) != 1 || snaps[0].counts.Requests != 1 || snaps[0].endpoint != "GET /" || snaps[0].minute != 60 {
		t.Fatalf("late counts: %+v", snaps)
	}
	if len(ks.cells) != 0 || m.hot[7].Load() != nil {
		t.Fatal("the narrow cell was kept")
	}
	if c.countVerification(keyplane.VerifyValid, 2) {
		t.Fatal("the dropped cell still counts")
	}
	if w := m.cell(ks, "GET /", 60); len(w.stripes) != m.wideStripes || w.stripes == nil {
		t.Fatalf("the next cell has %d stripes, want %d", len(w.stripes), m.wideStripes)
	}
}

func TestWideStripes(t *testing.T) {
	for procs, want := range map[int]int{1: 16, 2: 16, 3: 32, 4: 32, 8: 64, 32: 256, 1000: 256} {
		if got := wideStripes(procs); got != want {
			t.Errorf("wideStripes(%d) = %d, want %d", procs, got, want)
		}
	}
}
