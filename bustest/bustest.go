package bustest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
)

// Harness gives the suite two buses on one channel and a way to cut the
// subscriber's connection from the server's side.
type Harness struct {
	Publisher, Subscriber keyplane.ChangeBus
	// SendRaw publishes a payload as-is, to check that junk is ignored.
	SendRaw func(t *testing.T, payload string)
	// BreakSubscription drops the subscriber's connection on the server.
	BreakSubscription func(t *testing.T)
}

// Recorder is a ChangeListener that remembers what it was told.
type Recorder struct {
	mu      sync.Mutex
	changes []keyplane.Change
	missed  []time.Time
}

func (r *Recorder) ApplyChange(c keyplane.Change) {
	r.mu.Lock()
	r.changes = append(r.changes, c)
	r.mu.Unlock()
}
func (r *Recorder) MissedChanges(since time.Time) {
	r.mu.Lock()
	r.missed = append(r.missed, since)
	r.mu.Unlock()
}

// State returns the changes received and how often the cache was told to
// catch up.
func (r *Recorder) State() ([]keyplane.Change, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]keyplane.Change(nil), r.changes...), len(r.missed)
}

// Missed returns the moments the cache was told to catch up from.
func (r *Recorder) Missed() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.missed...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Run checks delivery, that junk is ignored, recovery after a broken
// subscription (the cache told to catch up from before the break, changes
// flowing again) and shutdown.
func Run(t *testing.T, h Harness) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &Recorder{}
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- h.Subscriber.Listen(ctx, rec, ready) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Listen: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("not subscribed after 15 s")
	}

	var hash [32]byte
	hash[0], hash[31] = 7, 9
	h.SendRaw(t, "nonsense")
	h.Publisher.Publish(ctx, keyplane.KeyChanged(hash))
	h.Publisher.Publish(ctx, keyplane.AccountChanged("acc_1"))
	waitFor(t, "two changes", func() bool { c, _ := rec.State(); return len(c) == 2 })
	if c, missed := rec.State(); c[0] != keyplane.KeyChanged(hash) || c[1] != keyplane.AccountChanged("acc_1") || missed != 0 {
		t.Fatalf("received %v, cleared %d times", c, missed)
	}

	broke := time.Now()
	h.BreakSubscription(t)
	waitFor(t, "a catch-up after the break", func() bool { _, m := rec.State(); return m >= 1 })
	// From before the break by the margin: nothing changed after it is skipped.
	if since := rec.Missed()[0]; since.After(broke.Add(-keyplane.CatchUpMargin + time.Second)) {
		t.Fatalf("told to catch up from %v, want at or before %v", since, broke.Add(-keyplane.CatchUpMargin))
	}
	waitFor(t, "a change after resubscribing", func() bool {
		h.Publisher.Publish(ctx, keyplane.AccountChanged("acc_2"))
		c, _ := rec.State()
		return len(c) > 2 && c[len(c)-1] == keyplane.AccountChanged("acc_2")
	})

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Listen did not return after its context ended")
	}
}
