package webhooks_test

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/webhooks"
)

// TestExpiryEventsOnce: key.expiring 7 days and 1 day ahead and key.expired,
// each raised once, by however many schedulers scan, before and after a
// restart.
func TestExpiryEventsOnce(t *testing.T) {
	e := newEnv(t, func(c *webhooks.Config) { c.PollInterval = time.Hour }) // nothing is delivered: the log is what counts
	a := e.account(t)
	w := e.endpoint(t, a.ID, "http://127.0.0.1:1/", "key.expiring", "key.expired")
	start := time.Now()
	expires := start.Add(8 * 24 * time.Hour)
	k, err := e.svc.CreateKey(e.ctx, a.ID, service.KeyInput{Name: "expiring", ExpiresAt: &expires})
	if err != nil {
		t.Fatal(err)
	}
	never, err := e.svc.CreateKey(e.ctx, a.ID, service.KeyInput{Name: "forever"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := start
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	scan := func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		for range n { // several instances at once
			wg.Go(func() {
				s := webhooks.NewScheduler(webhooks.SchedulerConfig{Store: e.store, Now: clock})
				if err := s.Scan(e.ctx); err != nil {
					t.Errorf("Scan: %v", err)
				}
			})
		}
		wg.Wait()
	}
	events := func() []string {
		t.Helper()
		ds, _, err := e.store.ListWebhookDeliveries(e.ctx, w.ID, keyplane.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for i := len(ds) - 1; i >= 0; i-- {
			var p struct {
				Type string `json:"type"`
				Data struct {
					Key              webhooks.KeyData `json:"key"`
					ExpiresInSeconds int64            `json:"expires_in_seconds"`
				} `json:"data"`
			}
			if err := json.Unmarshal(ds[i].Message.Payload, &p); err != nil {
				t.Fatal(err)
			}
			if p.Data.Key.ID != k.ID {
				t.Fatalf("an event about key %s (the key without expiry is %s)", p.Data.Key.ID, never.ID)
			}
			out = append(out, p.Type+"/"+time.Duration(p.Data.ExpiresInSeconds*int64(time.Second)).String())
		}
		return out
	}
	scan(1) // the first scan starts the schedules
	set(start.Add(12 * time.Hour))
	scan(3)
	if got := events(); len(got) != 0 {
		t.Fatalf("8 days ahead: %v", got)
	}
	set(start.Add(24*time.Hour + time.Minute)) // 7 days minus a minute before expiry
	scan(3)
	scan(2) // a restart scans again
	want := []string{"key.expiring/168h0m0s"}
	if got := events(); !slices.Equal(got, want) {
		t.Fatalf("7 days ahead: %v, want %v", got, want)
	}
	set(expires.Add(time.Hour)) // the server was down for a week: it catches up
	scan(3)
	want = append(want, "key.expired/0s")
	if got := events(); !slices.Equal(got, want) {
		t.Fatalf("after expiry: %v, want %v (the 1-day notice of a key already expired is not sent)", got, want)
	}
	set(expires.Add(2 * time.Hour))
	scan(2)
	if got := events(); !slices.Equal(got, want) {
		t.Fatalf("later: %v, want %v", got, want)
	}
}

// TestExpiryOneDayNotice: the 1-day notice comes between 1 day ahead and
// the expiry.
func TestExpiryOneDayNotice(t *testing.T) {
	e := newEnv(t, func(c *webhooks.Config) { c.PollInterval = time.Hour })
	a := e.account(t)
	w := e.endpoint(t, a.ID, "http://127.0.0.1:1/", "key.*")
	start := time.Now()
	expires := start.Add(2 * 24 * time.Hour)
	if _, err := e.svc.CreateKey(e.ctx, a.ID, service.KeyInput{Name: "expiring", ExpiresAt: &expires}); err != nil {
		t.Fatal(err)
	}
	now := start
	s := webhooks.NewScheduler(webhooks.SchedulerConfig{Store: e.store, Now: func() time.Time { return now }})
	for _, at := range []time.Time{start, expires.Add(-23 * time.Hour), expires.Add(-22 * time.Hour)} {
		now = at
		if err := s.Scan(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	ds, _, err := e.store.ListWebhookDeliveries(e.ctx, w.ID, keyplane.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, d := range ds {
		types = append(types, d.Message.Type)
	}
	// key.created, then one key.expiring (1 day): the 7-day mark had passed
	// when the key was made.
	if !slices.Equal(types, []string{keyplane.EventKeyExpiring, keyplane.EventKeyCreated}) {
		t.Fatalf("events %v", types)
	}
}
