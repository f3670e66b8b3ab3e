package storetest

import (
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
)

// WebhookTests are the webhook conformance tests; Tests includes them.
var WebhookTests = []Test{
	{"WebhookEndpointRoundTrip", testWebhookEndpointRoundTrip},
	{"WebhookEndpointCap", testWebhookEndpointCap},
	{"WebhookOutboxCommitsWithChange", testWebhookOutboxCommitsWithChange},
	{"WebhookFanOut", testWebhookFanOut},
	{"WebhookOnce", testWebhookOnce},
	{"WebhookClaims", testWebhookClaims},
	{"WebhookClaimsPerEndpoint", testWebhookClaimsPerEndpoint},
	{"WebhookClaimsConcurrent", testWebhookClaimsConcurrent},
	{"WebhookAttempts", testWebhookAttempts},
	{"WebhookRetry", testWebhookRetry},
	{"WebhookSchedule", testWebhookSchedule},
	{"WebhookKeysExpiring", testWebhookKeysExpiring},
	{"WebhookPrune", testWebhookPrune},
	{"WebhookDeleteEndpoint", testWebhookDeleteEndpoint},
}

func init() { Tests = append(Tests, WebhookTests...) }

func newEndpoint(accountID string, events ...string) *keyplane.WebhookEndpoint {
	return &keyplane.WebhookEndpoint{ID: id("whk"), AccountID: accountID, URL: "https://hooks.example.com/" + accountID, Description: "Ops",
		Events: events, Enabled: true, Secrets: []keyplane.WebhookSecret{{Sealed: []byte("sealed-1"), CreatedAt: base}}, CreatedAt: base, UpdatedAt: base}
}

func mustCreateEndpoint(t *testing.T, s keyplane.Store, e *keyplane.WebhookEndpoint) *keyplane.WebhookEndpoint {
	t.Helper()
	if err := s.CreateWebhookEndpoint(ctx, e, keyplane.MaxWebhookEndpoints); err != nil {
		t.Fatalf("CreateWebhookEndpoint: %v", err)
	}
	return e
}

func newWebhookEvent(accountID, typ string, at time.Time) *keyplane.WebhookEvent {
	return &keyplane.WebhookEvent{ID: id("msg"), AccountID: accountID, Type: typ, Time: at,
		Payload: json.RawMessage(`{"type":"` + typ + `","timestamp":"2026-03-04T05:06:07Z","data":{}}`)}
}

func raiseEvents(t *testing.T, s keyplane.Store, events ...*keyplane.WebhookEvent) {
	t.Helper()
	if err := s.RaiseWebhookEvents(ctx, events); err != nil {
		t.Fatalf("RaiseWebhookEvents: %v", err)
	}
}

// deliveriesOf lists an endpoint's deliveries, newest first.
func deliveriesOf(t *testing.T, s keyplane.Store, endpointID string) []*keyplane.WebhookDelivery {
	t.Helper()
	var all []*keyplane.WebhookDelivery
	cursor := ""
	for {
		page, next, err := s.ListWebhookDeliveries(ctx, endpointID, keyplane.Page{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatalf("ListWebhookDeliveries: %v", err)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		cursor = next
	}
}

func messageIDs(ds []*keyplane.WebhookDelivery) []string {
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.Message.ID)
	}
	return ids
}

func claim(t *testing.T, s keyplane.Store, now time.Time, limit int) []*keyplane.WebhookDelivery {
	t.Helper()
	ds, err := s.ClaimWebhookDeliveries(ctx, keyplane.ClaimRequest{Now: now, Lease: time.Minute, Limit: limit})
	if err != nil {
		t.Fatalf("ClaimWebhookDeliveries: %v", err)
	}
	return ds
}

func testWebhookEndpointRoundTrip(t *testing.T, s keyplane.Store) {
	a, b := newAccount(t, s), newAccount(t, s)
	e := mustCreateEndpoint(t, s, newEndpoint(a.ID, "key.*", "invoice.paid"))
	op := mustCreateEndpoint(t, s, newEndpoint(""))
	mustCreateEndpoint(t, s, newEndpoint(b.ID))
	got, err := s.WebhookEndpoint(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != e.URL || got.AccountID != a.ID || !slices.Equal(got.Events, e.Events) || !got.Enabled || got.Description != "Ops" ||
		len(got.Secrets) != 1 || string(got.Secrets[0].Sealed) != "sealed-1" || !got.CreatedAt.Equal(base.Truncate(time.Microsecond)) {
		t.Fatalf("read back %+v, want %+v", got, e)
	}
	if got, _ := s.WebhookEndpoint(ctx, op.ID); got.AccountID != "" || got.Events != nil {
		t.Fatalf("operator endpoint read back with account %q, events %v", got.AccountID, got.Events)
	}
	_, err = s.WebhookEndpoint(ctx, "whk_missing")
	wantCode(t, err, keyplane.ENOTFOUND)
	wantCode(t, s.CreateWebhookEndpoint(ctx, newEndpoint("acc_missing"), 20), keyplane.ENOTFOUND)

	list, _, err := s.ListWebhookEndpoints(ctx, keyplane.WebhookEndpointFilter{AccountID: a.ID, Page: keyplane.Page{Limit: 10}})
	if err != nil || len(list) != 1 || list[0].ID != e.ID {
		t.Fatalf("account list = %v, %v; want only %s", list, err, e.ID)
	}
	list, _, err = s.ListWebhookEndpoints(ctx, keyplane.WebhookEndpointFilter{Operator: true, Page: keyplane.Page{Limit: 10}})
	if err != nil || len(list) != 1 || list[0].ID != op.ID {
		t.Fatalf("operator list = %v, %v; want only %s", list, err, op.ID)
	}

	expires := base.Add(time.Hour)
	failing := base.Add(time.Minute)
	updated, err := s.UpdateWebhookEndpoint(ctx, e.ID, func(e *keyplane.WebhookEndpoint) error {
		e.URL, e.Events, e.Enabled, e.DisabledReason, e.FailingSince = "https://new.example.com/", nil, false, "gone", &failing
		e.Secrets = append(e.Secrets, keyplane.WebhookSecret{Sealed: []byte("sealed-2"), CreatedAt: base, ExpiresAt: &expires})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = s.WebhookEndpoint(ctx, e.ID)
	if got.URL != "https://new.example.com/" || got.Events != nil || got.Enabled || got.DisabledReason != "gone" || len(got.Secrets) != 2 ||
		got.Secrets[1].ExpiresAt == nil || !got.Secrets[1].ExpiresAt.Equal(expires.Truncate(time.Microsecond)) || got.FailingSince == nil {
		t.Fatalf("after update: %+v (returned %+v)", got, updated)
	}
	_, err = s.UpdateWebhookEndpoint(ctx, e.ID, func(e *keyplane.WebhookEndpoint) error {
		e.URL = "https://aborted.example.com/"
		return keyplane.Errorf(keyplane.ECONFLICT, "no")
	})
	wantCode(t, err, keyplane.ECONFLICT)
	if got, _ := s.WebhookEndpoint(ctx, e.ID); got.URL != "https://new.example.com/" {
		t.Fatalf("an aborted update was written: %s", got.URL)
	}
}

func testWebhookEndpointCap(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	for range 3 {
		if err := s.CreateWebhookEndpoint(ctx, newEndpoint(a.ID), 3); err != nil {
			t.Fatal(err)
		}
	}
	err := s.CreateWebhookEndpoint(ctx, newEndpoint(a.ID), 3)
	wantCode(t, err, keyplane.EINVALID)
	// Concurrent creations count each other.
	b := newAccount(t, s)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- s.CreateWebhookEndpoint(ctx, newEndpoint(b.ID), 5) })
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		if err == nil {
			ok++
		} else if keyplane.ErrorCode(err) != keyplane.EINVALID {
			t.Fatalf("concurrent create: %v", err)
		}
	}
	if ok != 5 {
		t.Fatalf("%d concurrent creations succeeded under a cap of 5", ok)
	}
}

// testWebhookOutboxCommitsWithChange: events raised on a change's trail
// are written with it, and not when it aborts.
func testWebhookOutboxCommitsWithChange(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	e := mustCreateEndpoint(t, s, newEndpoint(a.ID))
	k := mustCreateKey(t, s, newKey(a.ID))

	tctx, trail := keyplane.WithAuditTrail(ctx)
	ev := newWebhookEvent(a.ID, keyplane.EventKeyRevoked, base)
	_, err := s.UpdateKey(tctx, k.ID, func(k *keyplane.Key) error {
		trail.Raise(ev)
		return errors.New("abort")
	})
	if err == nil {
		t.Fatal("the aborted update succeeded")
	}
	if _, err := s.WebhookMessage(ctx, ev.ID); keyplane.ErrorCode(err) != keyplane.ENOTFOUND {
		t.Fatalf("an aborted change left its message: %v", err)
	}

	tctx, trail = keyplane.WithAuditTrail(ctx)
	_, err = s.UpdateKey(tctx, k.ID, func(k *keyplane.Key) error {
		k.RevokedAt = &base
		trail.Add(newEvent(a.ID, keyplane.AuditKeyRevoked))
		trail.Raise(ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.WebhookMessage(ctx, ev.ID)
	if err != nil || m.Type != keyplane.EventKeyRevoked || m.AccountID != a.ID || string(m.Payload) != string(ev.Payload) {
		t.Fatalf("message = %+v, %v", m, err)
	}
	ds := deliveriesOf(t, s, e.ID)
	if len(ds) != 1 || ds[0].Status != keyplane.DeliveryPending || ds[0].Attempts != 0 || ds[0].Message.ID != ev.ID {
		t.Fatalf("deliveries = %+v", ds)
	}
	// A later write through the same trail does not raise it again.
	if _, err := s.UpdateKey(tctx, k.ID, func(*keyplane.Key) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if ds := deliveriesOf(t, s, e.ID); len(ds) != 1 {
		t.Fatalf("the trail raised its event again: %d deliveries", len(ds))
	}
}

func testWebhookFanOut(t *testing.T, s keyplane.Store) {
	a, b := newAccount(t, s), newAccount(t, s)
	all := mustCreateEndpoint(t, s, newEndpoint(a.ID))
	revoked := mustCreateEndpoint(t, s, newEndpoint(a.ID, keyplane.EventKeyRevoked))
	keys := mustCreateEndpoint(t, s, newEndpoint(a.ID, "key.*"))
	invoices := mustCreateEndpoint(t, s, newEndpoint(a.ID, "invoice.paid"))
	disabled := newEndpoint(a.ID)
	disabled.Enabled = false
	mustCreateEndpoint(t, s, disabled)
	other := mustCreateEndpoint(t, s, newEndpoint(b.ID))
	operator := mustCreateEndpoint(t, s, newEndpoint(""))

	created := newWebhookEvent(a.ID, keyplane.EventKeyCreated, base)
	rev := newWebhookEvent(a.ID, keyplane.EventKeyRevoked, base)
	published := newWebhookEvent(a.ID, "invoice.paid", base)
	published.AccountOnly = true
	test := newWebhookEvent(a.ID, keyplane.EventWebhookTest, base)
	test.EndpointID = invoices.ID
	nobody := newWebhookEvent(b.ID, "invoice.paid", base)
	nobody.AccountOnly = true
	if err := s.DeleteWebhookEndpoint(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	raiseEvents(t, s, created, rev, published, test, nobody)

	want := map[string][]string{
		all.ID:      {published.ID, rev.ID, created.ID},
		revoked.ID:  {rev.ID},
		keys.ID:     {rev.ID, created.ID},
		invoices.ID: {test.ID, published.ID},
		operator.ID: {rev.ID, created.ID},
		disabled.ID: nil,
	}
	for endpoint, ids := range want {
		if got := messageIDs(deliveriesOf(t, s, endpoint)); !slices.Equal(got, ids) {
			t.Errorf("endpoint %s got %v, want %v", endpoint, got, ids)
		}
	}
	if created.Deliveries != 3 || nobody.Deliveries != 0 {
		t.Errorf("Deliveries = %d and %d, want 3 and 0", created.Deliveries, nobody.Deliveries)
	}
	// An event no endpoint receives leaves no message behind.
	if _, err := s.WebhookMessage(ctx, nobody.ID); keyplane.ErrorCode(err) != keyplane.ENOTFOUND {
		t.Errorf("an event without subscribers was stored: %v", err)
	}
}

func testWebhookOnce(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	e := mustCreateEndpoint(t, s, newEndpoint(a.ID))
	first := newWebhookEvent(a.ID, keyplane.EventKeyExpiring, base)
	first.Once = "expiring:key_1:7d"
	raiseEvents(t, s, first)
	again := newWebhookEvent(a.ID, keyplane.EventKeyExpiring, base.Add(time.Hour))
	again.Once = first.Once
	raiseEvents(t, s, again)
	if !again.Duplicate || again.ID != first.ID || first.Duplicate {
		t.Fatalf("repeat: Duplicate %v, ID %s; want true, %s", again.Duplicate, again.ID, first.ID)
	}
	// Concurrent raisers of one name: one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for range 6 {
		wg.Go(func() {
			ev := newWebhookEvent(a.ID, keyplane.EventUsageDaily, base)
			ev.Once = "usage:acc:day"
			if err := s.RaiseWebhookEvents(ctx, []*keyplane.WebhookEvent{ev}); err != nil {
				t.Errorf("RaiseWebhookEvents: %v", err)
				return
			}
			if !ev.Duplicate {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d concurrent raisers of one name won; want 1", won)
	}
	// OnceEvery: raised again once the interval has passed.
	limited := newWebhookEvent(a.ID, keyplane.EventRateLimitExceeded, base)
	limited.Once, limited.OnceEvery = "ratelimit:key_1", 10*time.Minute
	raiseEvents(t, s, limited)
	soon := newWebhookEvent(a.ID, keyplane.EventRateLimitExceeded, base.Add(9*time.Minute))
	soon.Once, soon.OnceEvery = limited.Once, limited.OnceEvery
	later := newWebhookEvent(a.ID, keyplane.EventRateLimitExceeded, base.Add(10*time.Minute))
	later.Once, later.OnceEvery = limited.Once, limited.OnceEvery
	raiseEvents(t, s, soon)
	raiseEvents(t, s, later)
	if !soon.Duplicate || later.Duplicate {
		t.Fatalf("OnceEvery: 9 minutes later Duplicate=%v, 10 minutes later Duplicate=%v", soon.Duplicate, later.Duplicate)
	}
	if n := len(deliveriesOf(t, s, e.ID)); n != 4 {
		t.Fatalf("%d deliveries, want 4 (expiring, usage, two rate-limit events)", n)
	}
}

func testWebhookClaims(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	e := mustCreateEndpoint(t, s, newEndpoint(a.ID))
	off := newEndpoint(a.ID)
	mustCreateEndpoint(t, s, off)
	var events []*keyplane.WebhookEvent
	for i := range 5 {
		events = append(events, newWebhookEvent(a.ID, keyplane.EventKeyCreated, base.Add(time.Duration(i)*time.Second)))
	}
	raiseEvents(t, s, events...)
	if _, err := s.UpdateWebhookEndpoint(ctx, off.ID, func(e *keyplane.WebhookEndpoint) error { e.Enabled = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := claim(t, s, base.Add(-time.Second), 10); len(got) != 0 {
		t.Fatalf("claimed %d deliveries not yet due", len(got))
	}
	got := claim(t, s, base.Add(2*time.Second), 10)
	if len(got) != 3 {
		t.Fatalf("claimed %d deliveries, want the 3 due (none of the disabled endpoint's)", len(got))
	}
	for i, d := range got {
		if d.EndpointID != e.ID || d.Claim == "" || d.Message.ID != events[i].ID || string(d.Message.Payload) != string(events[i].Payload) {
			t.Fatalf("claim %d = %+v", i, d)
		}
	}
	if again := claim(t, s, base.Add(10*time.Second), 10); len(again) != 2 {
		t.Fatalf("claimed %d deliveries again within the lease, want only the 2 others", len(again))
	}
	// The lease ends: a claimer that died loses its deliveries.
	after := claim(t, s, base.Add(2*time.Second+time.Minute), 10)
	if len(after) != 3 || after[0].Claim == got[0].Claim {
		t.Fatalf("after the lease: %d claimed (claim %q, before %q)", len(after), after[0].Claim, got[0].Claim)
	}
}

func testWebhookClaimsPerEndpoint(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	slow := mustCreateEndpoint(t, s, newEndpoint(a.ID, keyplane.EventKeyCreated))
	fast := mustCreateEndpoint(t, s, newEndpoint(a.ID, keyplane.EventKeyRevoked))
	var events []*keyplane.WebhookEvent
	for i := range 10 {
		events = append(events, newWebhookEvent(a.ID, keyplane.EventKeyCreated, base.Add(time.Duration(i)*time.Millisecond)))
	}
	events = append(events, newWebhookEvent(a.ID, keyplane.EventKeyRevoked, base.Add(time.Second)))
	raiseEvents(t, s, events...)
	req := keyplane.ClaimRequest{Now: base.Add(time.Hour), Lease: time.Minute, Limit: 10, PerEndpoint: 2, Busy: map[string]int{}}
	got, err := s.ClaimWebhookDeliveries(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, d := range got {
		count[d.EndpointID]++
	}
	if count[slow.ID] != 2 || count[fast.ID] != 1 {
		t.Fatalf("claimed %v; want 2 of the slow endpoint's, the fast one's too", count)
	}
	// A busy endpoint gets nothing more; others still do.
	raiseEvents(t, s, newWebhookEvent(a.ID, keyplane.EventKeyRevoked, base.Add(2*time.Second)))
	req.Busy = map[string]int{slow.ID: 2}
	got, err = s.ClaimWebhookDeliveries(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].EndpointID != fast.ID {
		t.Fatalf("with the slow endpoint busy claimed %d (%v)", len(got), got)
	}
}

// testWebhookClaimsConcurrent: claimers on two connections (two instances)
// never get the same delivery.
func testWebhookClaimsConcurrent(t *testing.T, s keyplane.Store) {
	other := raw(t, s).OpenAgain(t)
	a := newAccount(t, s)
	mustCreateEndpoint(t, s, newEndpoint(a.ID))
	mustCreateEndpoint(t, s, newEndpoint(a.ID))
	var events []*keyplane.WebhookEvent
	for range 100 {
		events = append(events, newWebhookEvent(a.ID, keyplane.EventKeyCreated, base))
	}
	raiseEvents(t, s, events...)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for i := range 6 {
		store := s
		if i%2 == 1 {
			store = other
		}
		wg.Go(func() {
			for {
				ds, err := store.ClaimWebhookDeliveries(ctx, keyplane.ClaimRequest{Now: base.Add(time.Second), Lease: time.Hour, Limit: 7})
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					seen[d.Message.ID+"/"+d.EndpointID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 200 {
		t.Fatalf("claimed %d distinct deliveries, want 200", len(seen))
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("delivery %s claimed %d times", k, n)
		}
	}
}

func attemptOf(d *keyplane.WebhookDelivery, at time.Time, status int) keyplane.WebhookAttempt {
	return keyplane.WebhookAttempt{ID: id("att"), MessageID: d.Message.ID, EndpointID: d.EndpointID, Time: at, StatusCode: status,
		Duration: 1500 * time.Microsecond, Response: "ünïcode answer"}
}

func testWebhookAttempts(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	e := mustCreateEndpoint(t, s, newEndpoint(a.ID))
	ev := newWebhookEvent(a.ID, keyplane.EventKeyCreated, base)
	raiseEvents(t, s, ev)
	d := claim(t, s, base, 1)[0]

	// A failure with a retry: pending again at the retry's time.
	at := base.Add(time.Second)
	next := at.Add(5 * time.Second)
	fail := attemptOf(d, at, 500)
	ep, err := s.RecordWebhookAttempt(ctx, keyplane.AttemptOutcome{Attempt: fail, Claim: d.Claim, Next: &next})
	if err != nil {
		t.Fatal(err)
	}
	if ep.FailingSince == nil || !ep.FailingSince.Equal(at.Truncate(time.Microsecond)) {
		t.Fatalf("FailingSince = %v, want %v", ep.FailingSince, at)
	}
	if got := claim(t, s, next.Add(-time.Millisecond), 1); len(got) != 0 {
		t.Fatal("claimed before the retry was due")
	}
	d2 := claim(t, s, next, 1)[0]
	if d2.Attempts != 1 || d2.Round != 1 {
		t.Fatalf("after one attempt: Attempts %d, Round %d", d2.Attempts, d2.Round)
	}
	// An outcome recorded under a stale claim leaves the delivery alone
	// (its attempt is still logged).
	stale := attemptOf(d2, next, 200)
	if _, err := s.RecordWebhookAttempt(ctx, keyplane.AttemptOutcome{Attempt: stale, Claim: d.Claim, Delivered: true}); err != nil {
		t.Fatal(err)
	}
	ds := deliveriesOf(t, s, e.ID)
	if ds[0].Status != keyplane.DeliveryPending || len(ds[0].History) != 2 {
		t.Fatalf("after a stale claim's outcome: %s with %d attempts", ds[0].Status, len(ds[0].History))
	}
	// Success under the current claim: delivered, and the endpoint is well.
	ok := attemptOf(d2, next.Add(time.Second), 204)
	ep, err = s.RecordWebhookAttempt(ctx, keyplane.AttemptOutcome{Attempt: ok, Claim: d2.Claim, Delivered: true})
	if err != nil {
		t.Fatal(err)
	}
	if ep.FailingSince != nil {
		t.Fatalf("FailingSince = %v after a success", ep.FailingSince)
	}
	ds = deliveriesOf(t, s, e.ID)
	got := ds[0]
	if got.Status != keyplane.DeliveryDelivered || got.Attempts != 2 || len(got.History) != 3 {
		t.Fatalf("delivered: %+v", got)
	}
	h := got.History[0]
	if h.ID != fail.ID || h.StatusCode != 500 || h.Duration != 1500*time.Microsecond || h.Response != "ünïcode answer" || !h.Time.Equal(at.Truncate(time.Microsecond)) {
		t.Fatalf("first attempt read back %+v", h)
	}
	if got := claim(t, s, base.Add(time.Hour), 10); len(got) != 0 {
		t.Fatal("a delivered message was claimed")
	}
	md, err := s.MessageDeliveries(ctx, ev.ID)
	if err != nil || len(md) != 1 || md[0].Status != keyplane.DeliveryDelivered || len(md[0].History) != 3 {
		t.Fatalf("MessageDeliveries = %+v, %v", md, err)
	}

	// No next attempt: failed for good.
	ev2 := newWebhookEvent(a.ID, keyplane.EventKeyCreated, base)
	raiseEvents(t, s, ev2)
	d3 := claim(t, s, base.Add(2*time.Hour), 1)[0]
	noAnswer := attemptOf(d3, base.Add(2*time.Hour), 0)
	noAnswer.Error, noAnswer.Response = "connection refused", ""
	if _, err := s.RecordWebhookAttempt(ctx, keyplane.AttemptOutcome{Attempt: noAnswer, Claim: d3.Claim}); err != nil {
		t.Fatal(err)
	}
	ds = deliveriesOf(t, s, e.ID)
	if ds[0].Message.ID != ev2.ID || ds[0].Status != keyplane.DeliveryFailed || ds[0].History[0].Error != "connection refused" {
		t.Fatalf("failed delivery: %+v", ds[0])
	}
}

func testWebhookRetry(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	e1 := mustCreateEndpoint(t, s, newEndpoint(a.ID))
	e2 := mustCreateEndpoint(t, s, newEndpoint(a.ID))
	old := newWebhookEvent(a.ID, keyplane.EventKeyCreated, base)
	recent := newWebhookEvent(a.ID, keyplane.EventKeyCreated, base.Add(time.Hour))
	raiseEvents(t, s, old, recent)
	// Every delivery fails for good.
	for _, d := range claim(t, s, base.Add(2*time.Hour), 10) {
		if _, err := s.RecordWebhookAttempt(ctx, keyplane.AttemptOutcome{Attempt: attemptOf(d, base.Add(2*time.Hour), 500), Claim: d.Claim}); err != nil {
			t.Fatal(err)
		}
	}
	now := base.Add(3 * time.Hour)
	n, err := s.RetryWebhookDeliveries(ctx, keyplane.RetryFilter{EndpointIDs: []string{e1.ID}, Since: base.Add(30 * time.Minute)}, now)
	if err != nil || n != 1 {
		t.Fatalf("recover since = %d, %v; want 1 (the recent message, to e1)", n, err)
	}
	got := claim(t, s, now, 10)
	if len(got) != 1 || got[0].Message.ID != recent.ID || got[0].EndpointID != e1.ID || !got[0].LastTry || got[0].Round != 0 {
		t.Fatalf("requeued: %+v", got)
	}
	n, err = s.RetryWebhookDeliveries(ctx, keyplane.RetryFilter{MessageID: old.ID}, now)
	if err != nil || n != 2 {
		t.Fatalf("retry of a message = %d, %v; want 2 (both endpoints)", n, err)
	}
	n, err = s.RetryWebhookDeliveries(ctx, keyplane.RetryFilter{MessageID: recent.ID, EndpointIDs: []string{e2.ID}}, now)
	if err != nil || n != 1 {
		t.Fatalf("retry of a message to one endpoint = %d, %v; want 1", n, err)
	}
	n, err = s.RetryWebhookDeliveries(ctx, keyplane.RetryFilter{MessageID: recent.ID, EndpointIDs: []string{}}, now)
	if err != nil || n != 0 {
		t.Fatalf("retry to no endpoint = %d, %v", n, err)
	}
}

func testWebhookSchedule(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	e := mustCreateEndpoint(t, s, newEndpoint(a.ID))
	if at, err := s.WebhookSchedule(ctx, "scan"); err != nil || !at.IsZero() {
		t.Fatalf("a new schedule stands at %v, %v", at, err)
	}
	t1 := base
	moved, err := s.AdvanceWebhookSchedule(ctx, "scan", time.Time{}, t1, nil)
	if err != nil || !moved {
		t.Fatalf("first advance: %v, %v", moved, err)
	}
	if moved, _ := s.AdvanceWebhookSchedule(ctx, "scan", time.Time{}, t1.Add(time.Hour), nil); moved {
		t.Fatal("a second first advance moved the schedule")
	}
	t2 := t1.Add(time.Minute)
	ev := newWebhookEvent(a.ID, keyplane.EventKeyExpired, t2)
	moved, err = s.AdvanceWebhookSchedule(ctx, "scan", t1, t2, []*keyplane.WebhookEvent{ev})
	if err != nil || !moved {
		t.Fatalf("advance: %v, %v", moved, err)
	}
	late := newWebhookEvent(a.ID, keyplane.EventKeyExpired, t2)
	if moved, _ := s.AdvanceWebhookSchedule(ctx, "scan", t1, t2.Add(time.Minute), []*keyplane.WebhookEvent{late}); moved {
		t.Fatal("an advance from a stale point moved the schedule")
	}
	if at, _ := s.WebhookSchedule(ctx, "scan"); !at.Equal(t2.Truncate(time.Microsecond)) {
		t.Fatalf("schedule at %v, want %v", at, t2)
	}
	if got := messageIDs(deliveriesOf(t, s, e.ID)); !slices.Equal(got, []string{ev.ID}) {
		t.Fatalf("messages %v, want only the moving advance's %s", got, ev.ID)
	}
}

func testWebhookKeysExpiring(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	at := func(d time.Duration) *time.Time { v := base.Add(d); return &v }
	soon := newKey(a.ID)
	soon.ExpiresAt = at(time.Hour)
	later := newKey(a.ID)
	later.ExpiresAt = at(3 * time.Hour)
	revoked := newKey(a.ID)
	revoked.ExpiresAt, revoked.RevokedAt = at(2*time.Hour), at(0)
	never := newKey(a.ID)
	for _, k := range []*keyplane.Key{soon, later, revoked, never} {
		mustCreateKey(t, s, k)
	}
	keys, err := s.KeysExpiringBetween(ctx, base, base.Add(3*time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	if !slices.Equal(ids, []string{soon.ID, later.ID}) {
		t.Fatalf("expiring %v, want %v", ids, []string{soon.ID, later.ID})
	}
	if keys, _ := s.KeysExpiringBetween(ctx, base.Add(time.Hour), base.Add(3*time.Hour), 1); len(keys) != 1 || keys[0].ID != later.ID {
		t.Fatalf("(1h, 3h] limit 1: %v", keys)
	}
}

func testWebhookPrune(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	e := mustCreateEndpoint(t, s, newEndpoint(a.ID))
	done := newWebhookEvent(a.ID, keyplane.EventKeyCreated, base)
	pending := newWebhookEvent(a.ID, keyplane.EventKeyCreated, base)
	fresh := newWebhookEvent(a.ID, keyplane.EventKeyCreated, base.Add(48*time.Hour))
	marked := newWebhookEvent(a.ID, keyplane.EventUsageDaily, base)
	marked.Once = "usage:old"
	raiseEvents(t, s, done, pending, fresh, marked)
	d := claim(t, s, base, 1)[0]
	if d.Message.ID != done.ID {
		t.Fatalf("claimed %s first, want %s", d.Message.ID, done.ID)
	}
	if _, err := s.RecordWebhookAttempt(ctx, keyplane.AttemptOutcome{Attempt: attemptOf(d, base, 200), Claim: d.Claim, Delivered: true}); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneWebhookMessages(ctx, base.Add(24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v; want 1 (the delivered old message)", n, err)
	}
	if got := messageIDs(deliveriesOf(t, s, e.ID)); !slices.Contains(got, pending.ID) || !slices.Contains(got, fresh.ID) || slices.Contains(got, done.ID) {
		t.Fatalf("left %v", got)
	}
	// The pruned mark no longer holds a repeat back.
	again := newWebhookEvent(a.ID, keyplane.EventUsageDaily, base.Add(25*time.Hour))
	again.Once = "usage:old"
	raiseEvents(t, s, again)
	if again.Duplicate {
		t.Fatal("a pruned mark still held its event back")
	}
}

func testWebhookDeleteEndpoint(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	e := mustCreateEndpoint(t, s, newEndpoint(a.ID))
	keep := mustCreateEndpoint(t, s, newEndpoint(a.ID))
	raiseEvents(t, s, newWebhookEvent(a.ID, keyplane.EventKeyCreated, base))
	d := claim(t, s, base, 2)
	for _, d := range d {
		if _, err := s.RecordWebhookAttempt(ctx, keyplane.AttemptOutcome{Attempt: attemptOf(d, base, 500), Claim: d.Claim}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteWebhookEndpoint(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.DeleteWebhookEndpoint(ctx, e.ID), keyplane.ENOTFOUND)
	if ds := deliveriesOf(t, s, e.ID); len(ds) != 0 {
		t.Fatalf("a deleted endpoint kept %d deliveries", len(ds))
	}
	if ds := deliveriesOf(t, s, keep.ID); len(ds) != 1 || len(ds[0].History) != 1 {
		t.Fatalf("the other endpoint's log: %+v", ds)
	}
}
