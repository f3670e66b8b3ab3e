package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
)

// Raw is what the audit tests need beyond the Store interface: SQL straight
// on the store's database, as someone with write access to it could run, and
// a second store on the same database, as a second instance would open. The
// stores' test packages wrap their store to provide it.
type Raw interface {
	// ExecSQL runs one statement on the store's database, outside the store.
	ExecSQL(t *testing.T, statement string)
	// OpenAgain opens another store on the same database.
	OpenAgain(t *testing.T) keyplane.Store
}

func raw(t *testing.T, s keyplane.Store) Raw {
	t.Helper()
	r, ok := s.(Raw)
	if !ok {
		t.Fatalf("the store under test (%T) must implement storetest.Raw: wrap it in the store's test", s)
	}
	return r
}

func newEvent(chain, typ string) *keyplane.AuditEvent {
	return &keyplane.AuditEvent{
		ID: id("evt"), Time: base, Type: typ, Actor: keyplane.AuditActor{Kind: "token", ID: "tok_admin"}, AccountID: chain,
		SourceIP: "192.0.2.7", UserAgent: "curl/8.5", RequestID: "req-" + id("r"), Details: json.RawMessage(`{"name":"Acme"}`),
	}
}

func appendEvents(t *testing.T, s keyplane.Store, events ...*keyplane.AuditEvent) {
	t.Helper()
	if err := s.AppendAudit(ctx, events); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
}

// chainOf appends n events to a new chain and returns them in order.
func chainOf(t *testing.T, s keyplane.Store, n int) []*keyplane.AuditEvent {
	t.Helper()
	chain := id("acc")
	var events []*keyplane.AuditEvent
	for i := range n {
		ev := newEvent(chain, keyplane.AuditKeyUpdated)
		ev.Details = json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))
		appendEvents(t, s, ev)
		events = append(events, ev)
	}
	return events
}

func verifyLog(t *testing.T, s keyplane.Store) keyplane.AuditReport {
	t.Helper()
	r, err := keyplane.CheckAuditChains(ctx, s)
	if err != nil {
		t.Fatalf("CheckAuditChains: %v", err)
	}
	return r
}

func wantIntact(t *testing.T, s keyplane.Store) keyplane.AuditReport {
	t.Helper()
	r := verifyLog(t, s)
	if len(r.Problems) > 0 {
		t.Fatalf("an untouched log fails verification: %v", r.Problems)
	}
	return r
}

// wantProblem verifies the log and wants exactly one broken chain, broken at
// the event named, for the reason given.
func wantProblem(t *testing.T, s keyplane.Store, eventID, reason string) {
	t.Helper()
	r := verifyLog(t, s)
	if len(r.Problems) != 1 {
		t.Fatalf("problems = %v, want one, at %s (%s)", r.Problems, eventID, reason)
	}
	if p := r.Problems[0]; p.EventID != eventID || p.Reason != reason {
		t.Fatalf("problem = %s; want event %s, %s", p, eventID, reason)
	}
}

func listAudit(t *testing.T, s keyplane.Store, f keyplane.AuditFilter) []string {
	t.Helper()
	if f.Limit == 0 {
		f.Limit = 2
	}
	var ids []string
	for pages := 0; ; pages++ {
		if pages > 50 {
			t.Fatal("pagination does not end")
		}
		page, next, err := s.ListAudit(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > f.Limit {
			t.Fatalf("page of %d, limit %d", len(page), f.Limit)
		}
		for _, e := range page {
			ids = append(ids, e.ID)
		}
		if next == "" {
			return ids
		}
		f.Cursor = next
	}
}

func testAuditAppendAndRead(t *testing.T, s keyplane.Store) {
	chain := id("acc")
	first, second := newEvent(chain, keyplane.AuditAccountCreated), newEvent(chain, keyplane.AuditKeyCreated)
	second.KeyID, second.Details = id("key"), json.RawMessage(`{"scopes":["a","b"],"name":"☃ \"q\""}`)
	operator := newEvent("", keyplane.AuditTokenCreated)
	operator.Time = base.Add(time.Hour)
	appendEvents(t, s, first, second, operator)

	if first.Seq != 1 || first.PrevHash != "" || second.Seq != 2 || second.PrevHash != first.Hash || operator.Seq != 1 || operator.PrevHash != "" {
		t.Fatalf("links: first %d %q, second %d %q (first's hash %q), operator %d %q",
			first.Seq, first.PrevHash, second.Seq, second.PrevHash, first.Hash, operator.Seq, operator.PrevHash)
	}
	if len(first.Hash) != 64 || first.Hash != first.ComputeHash() {
		t.Fatalf("hash %q, want the event's own", first.Hash)
	}
	got, err := s.AuditChain(ctx, chain, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("chain has %d events, want 2", len(got))
	}
	want := *second
	want.Time = base.Truncate(time.Microsecond)
	if g := got[1]; g.ID != want.ID || !g.Time.Equal(want.Time) || g.Time.Location() != time.UTC || g.Type != want.Type || g.Actor != want.Actor ||
		g.AccountID != chain || g.KeyID != want.KeyID || g.SourceIP != want.SourceIP || g.UserAgent != want.UserAgent ||
		g.RequestID != want.RequestID || string(g.Details) != string(want.Details) || g.Seq != 2 || g.PrevHash != first.Hash || g.Hash != want.Hash {
		t.Fatalf("read back %+v, want %+v", g, want)
	}
	if after, _ := s.AuditChain(ctx, chain, 1, 10); len(after) != 1 || after[0].ID != second.ID {
		t.Fatalf("events after seq 1: %v", after)
	}
	heads, err := s.AuditChains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, h := range heads {
		if h.Chain == chain && h.Seq == 2 && h.Hash == second.Hash && !h.Missing || h.Chain == "" && h.Seq == 1 && h.Hash == operator.Hash {
			found++
		}
	}
	if found != 2 {
		t.Fatalf("heads %+v, want %s at 2 and the operator chain at 1", heads, chain)
	}
	r := wantIntact(t, s)
	if r.Chains != 2 || r.Events != 3 {
		t.Fatalf("verified %d chains, %d events; want 2, 3", r.Chains, r.Events)
	}
	if err := s.AppendAudit(ctx, nil); err != nil {
		t.Fatalf("empty append: %v", err)
	}
}

func testAuditListFilters(t *testing.T, s keyplane.Store) {
	acc1, acc2, key := id("acc"), id("acc"), id("key")
	var all []*keyplane.AuditEvent
	add := func(chain, typ, keyID, actor string, at time.Time) *keyplane.AuditEvent {
		ev := newEvent(chain, typ)
		ev.KeyID, ev.Actor.ID, ev.Time = keyID, actor, at
		appendEvents(t, s, ev)
		all = append(all, ev)
		return ev
	}
	a := add(acc1, keyplane.AuditAccountCreated, "", "tok_a", base)
	b := add(acc1, keyplane.AuditKeyCreated, key, "tok_a", base.Add(time.Minute))
	c := add(acc2, keyplane.AuditAccountCreated, "", "tok_b", base.Add(2*time.Minute))
	d := add(acc1, keyplane.AuditKeyRevoked, key, "mem_x", base.Add(3*time.Minute))
	e := add("", keyplane.AuditPlanCreated, "", "tok_b", base.Add(4*time.Minute))

	ids := func(evs ...*keyplane.AuditEvent) string {
		var out []string
		for _, ev := range evs {
			out = append(out, ev.ID)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		name string
		f    keyplane.AuditFilter
		want string
	}{
		{"all, newest first", keyplane.AuditFilter{}, ids(e, d, c, b, a)},
		{"account", keyplane.AuditFilter{AccountID: acc1}, ids(d, b, a)},
		{"key", keyplane.AuditFilter{KeyID: key}, ids(d, b)},
		{"type", keyplane.AuditFilter{Type: keyplane.AuditAccountCreated}, ids(c, a)},
		{"actor", keyplane.AuditFilter{ActorID: "tok_b"}, ids(e, c)},
		{"from inclusive", keyplane.AuditFilter{From: base.Add(3 * time.Minute)}, ids(e, d)},
		{"to exclusive", keyplane.AuditFilter{To: base.Add(time.Minute)}, ids(a)},
		{"combined", keyplane.AuditFilter{AccountID: acc1, Type: keyplane.AuditKeyRevoked, ActorID: "mem_x"}, ids(d)},
		{"nothing", keyplane.AuditFilter{AccountID: "acc_none"}, ""},
	} {
		for _, limit := range []int{1, 2, 10} {
			tc.f.Limit = limit
			if got := strings.Join(listAudit(t, s, tc.f), " "); got != tc.want {
				t.Errorf("%s, pages of %d: got %s, want %s", tc.name, limit, got, tc.want)
			}
		}
	}
	_, _, err := s.ListAudit(ctx, keyplane.AuditFilter{Page: keyplane.Page{Limit: 2, Cursor: "!!"}})
	wantCode(t, err, keyplane.EINVALID)
}

// testAuditTrail holds every write to the rule that it appends the events
// of the trail in its context, in its own transaction: committed with the
// change, or not at all.
func testAuditTrail(t *testing.T, s keyplane.Store) {
	withEvent := func(chain, typ string) (context.Context, *keyplane.AuditEvent) {
		c, trail := keyplane.WithAuditTrail(ctx)
		ev := newEvent(chain, typ)
		trail.Add(ev)
		return c, ev
	}
	written := func(ev *keyplane.AuditEvent) bool {
		t.Helper()
		page, _, err := s.ListAudit(ctx, keyplane.AuditFilter{Type: ev.Type, AccountID: ev.AccountID, Page: keyplane.Page{Limit: 100}})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			if e.ID == ev.ID {
				return true
			}
		}
		return false
	}
	mustWrite := func(what string, ev *keyplane.AuditEvent, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !written(ev) {
			t.Errorf("%s committed without its audit event", what)
		}
	}
	boom := errors.New("boom")
	mustNotWrite := func(what string, ev *keyplane.AuditEvent, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s succeeded; want it to fail", what)
		}
		if written(ev) {
			t.Errorf("%s failed but its audit event was written", what)
		}
	}

	a := &keyplane.Account{ID: id("acc"), Name: "Acme", Plan: "free", AllowedScopes: []string{}, Status: keyplane.AccountActive, CreatedAt: base, UpdatedAt: base}
	c, ev := withEvent(a.ID, keyplane.AuditAccountCreated)
	mustWrite("CreateAccount", ev, s.CreateAccount(c, a))
	c, ev = withEvent(a.ID, keyplane.AuditAccountCreated)
	mustNotWrite("CreateAccount of a taken id", ev, s.CreateAccount(c, a))

	c, ev = withEvent(a.ID, keyplane.AuditAccountUpdated)
	_, err := s.UpdateAccount(c, a.ID, func(*keyplane.Account) error { return nil })
	mustWrite("UpdateAccount", ev, err)
	c, ev = withEvent(a.ID, keyplane.AuditAccountUpdated)
	_, err = s.UpdateAccount(c, a.ID, func(*keyplane.Account) error { return boom })
	mustNotWrite("an aborted UpdateAccount", ev, err)

	k := newKey(a.ID)
	c, ev = withEvent(a.ID, keyplane.AuditKeyCreated)
	mustWrite("CreateKey", ev, s.CreateKey(c, k, 10, base))
	c, ev = withEvent(a.ID, keyplane.AuditKeyCreated)
	mustNotWrite("CreateKey over the cap", ev, s.CreateKey(c, newKey(a.ID), 1, base))

	// Events added by the callback, under the row lock, are written too.
	c, trail := keyplane.WithAuditTrail(ctx)
	ev = newEvent(a.ID, keyplane.AuditKeyDisabled)
	_, err = s.UpdateKey(c, k.ID, func(k *keyplane.Key) error { k.Enabled = false; trail.Add(ev); return nil })
	mustWrite("UpdateKey", ev, err)
	c, trail = keyplane.WithAuditTrail(ctx)
	ev = newEvent(a.ID, keyplane.AuditKeyEnabled)
	_, err = s.UpdateKey(c, k.ID, func(k *keyplane.Key) error { trail.Add(ev); return boom })
	mustNotWrite("an aborted UpdateKey", ev, err)

	c, ev = withEvent(a.ID, keyplane.AuditKeyRolled)
	_, _, err = s.RollKey(c, k.ID, rollTo(newKey(a.ID), base.Add(time.Hour)))
	mustWrite("RollKey", ev, err)
	c, ev = withEvent(a.ID, keyplane.AuditKeyRolled)
	_, _, err = s.RollKey(c, k.ID, func(*keyplane.Key) (*keyplane.Key, error) { return nil, boom })
	mustNotWrite("an aborted RollKey", ev, err)

	p := newPlan("audited-" + strings.TrimPrefix(id("p"), "p_"))
	c, ev = withEvent("", keyplane.AuditPlanCreated)
	mustWrite("CreatePlan", ev, s.CreatePlan(c, p))
	c, ev = withEvent("", keyplane.AuditPlanCreated)
	mustNotWrite("CreatePlan of a taken name", ev, s.CreatePlan(c, p))
	c, ev = withEvent("", keyplane.AuditPlanUpdated)
	_, err = s.UpdatePlan(c, p.Name, func(*keyplane.Plan) error { return nil })
	mustWrite("UpdatePlan", ev, err)

	tok := &keyplane.Token{ID: id("tok"), Name: "ci", Role: keyplane.RoleAdmin, Hash: hashOf("tok" + id("x")), CreatedAt: base}
	c, ev = withEvent("", keyplane.AuditTokenCreated)
	mustWrite("CreateToken", ev, s.CreateToken(c, tok))
	c, ev = withEvent("", keyplane.AuditTokenCreated)
	mustNotWrite("CreateToken of a taken hash", ev, s.CreateToken(c, tok))

	c, ev = withEvent(a.ID, keyplane.AuditQuotaReset)
	mustWrite("ResetQuotaUsage", ev, s.ResetQuotaUsage(c, ref(k.ID, base)))

	// A second write in the same context does not repeat what the first wrote.
	c, ev = withEvent(a.ID, keyplane.AuditAccountUpdated)
	for range 2 {
		if _, err := s.UpdateAccount(c, a.ID, func(*keyplane.Account) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(listAudit(t, s, keyplane.AuditFilter{AccountID: a.ID, Type: keyplane.AuditAccountUpdated})); n != 2 {
		t.Errorf("%d account.updated events, want 2: a trail is written once", n)
	}
	wantIntact(t, s)
}

// testAuditConcurrentAppends appends to one chain from two stores on the
// same database, as two instances would: the chain must not fork.
func testAuditConcurrentAppends(t *testing.T, s keyplane.Store) {
	other := raw(t, s).OpenAgain(t)
	chain := id("acc")
	const perWriter = 40
	var wg sync.WaitGroup
	errs := make(chan error, 4*perWriter)
	for _, store := range []keyplane.Store{s, s, other, other} {
		wg.Go(func() {
			for i := range perWriter {
				evs := []*keyplane.AuditEvent{newEvent(chain, keyplane.AuditKeyUpdated)}
				if i%5 == 0 { // some batches span two chains, in either order
					evs = append(evs, newEvent("", keyplane.AuditPlanUpdated))
					if i%10 == 0 {
						evs[0], evs[1] = evs[1], evs[0]
					}
				}
				if err := store.AppendAudit(ctx, evs); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent AppendAudit: %v", err)
	}
	r := wantIntact(t, s)
	events, err := s.AuditChain(ctx, chain, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 4*perWriter || events[len(events)-1].Seq != 4*perWriter {
		t.Fatalf("chain has %d events; want %d, numbered 1 to %[2]d", len(events), 4*perWriter)
	}
	if r.Events != 4*perWriter+4*perWriter/5 {
		t.Fatalf("verified %d events, want %d", r.Events, 4*perWriter+4*perWriter/5)
	}
}

// The tampering tests edit the database as someone with write access could,
// and want the verifier to name the first event that no longer fits.

func testAuditTamperUpdate(t *testing.T, s keyplane.Store) {
	evs := chainOf(t, s, 5)
	wantIntact(t, s)
	raw(t, s).ExecSQL(t, `UPDATE audit_events SET details = '{"n":99}' WHERE id = '`+evs[2].ID+`'`)
	wantProblem(t, s, evs[2].ID, keyplane.AuditHashMismatch)
}

// testAuditTamperUpdateRehashed edits an event and recomputes its hash, as
// someone who knows the scheme would: the next event's link breaks.
func testAuditTamperUpdateRehashed(t *testing.T, s keyplane.Store) {
	evs := chainOf(t, s, 5)
	forged := *evs[2]
	forged.Details = json.RawMessage(`{"n":99}`)
	raw(t, s).ExecSQL(t, `UPDATE audit_events SET details = '{"n":99}', hash = '`+forged.ComputeHash()+`' WHERE id = '`+evs[2].ID+`'`)
	wantProblem(t, s, evs[3].ID, keyplane.AuditBrokenLink)
}

func testAuditTamperDelete(t *testing.T, s keyplane.Store) {
	evs := chainOf(t, s, 5)
	raw(t, s).ExecSQL(t, `DELETE FROM audit_events WHERE id = '`+evs[2].ID+`'`)
	wantProblem(t, s, evs[3].ID, keyplane.AuditGap)
}

func testAuditTamperDeleteFirst(t *testing.T, s keyplane.Store) {
	evs := chainOf(t, s, 3)
	raw(t, s).ExecSQL(t, `DELETE FROM audit_events WHERE id = '`+evs[0].ID+`'`)
	wantProblem(t, s, evs[1].ID, keyplane.AuditGap)
}

func testAuditTamperDeleteLast(t *testing.T, s keyplane.Store) {
	evs := chainOf(t, s, 5)
	raw(t, s).ExecSQL(t, `DELETE FROM audit_events WHERE id = '`+evs[4].ID+`'`)
	wantProblem(t, s, evs[3].ID, keyplane.AuditTruncated)
}

func testAuditTamperDeleteHead(t *testing.T, s keyplane.Store) {
	evs := chainOf(t, s, 3)
	raw(t, s).ExecSQL(t, `DELETE FROM audit_chains WHERE chain = '`+evs[0].AccountID+`'`)
	wantProblem(t, s, evs[2].ID, keyplane.AuditMissingHead)
}

// testAuditTamperSwapOrder swaps two rows' places in the chain (their
// sequence numbers): the first row out of place is named.
func testAuditTamperSwapOrder(t *testing.T, s keyplane.Store) {
	evs := chainOf(t, s, 5)
	r := raw(t, s)
	r.ExecSQL(t, `UPDATE audit_events SET seq = -1 WHERE id = '`+evs[1].ID+`'`)
	r.ExecSQL(t, `UPDATE audit_events SET seq = 2 WHERE id = '`+evs[3].ID+`'`)
	r.ExecSQL(t, `UPDATE audit_events SET seq = 4 WHERE id = '`+evs[1].ID+`'`)
	wantProblem(t, s, evs[3].ID, keyplane.AuditReordered)
}

// testAuditTamperSwapContents swaps what two rows say (their details)
// while each keeps its place and hashes: the earlier one is named.
func testAuditTamperSwapContents(t *testing.T, s keyplane.Store) {
	evs := chainOf(t, s, 5)
	r := raw(t, s)
	r.ExecSQL(t, `UPDATE audit_events SET details = '`+string(evs[1].Details)+`' WHERE id = '`+evs[3].ID+`'`)
	r.ExecSQL(t, `UPDATE audit_events SET details = '`+string(evs[3].Details)+`' WHERE id = '`+evs[1].ID+`'`)
	wantProblem(t, s, evs[1].ID, keyplane.AuditHashMismatch)
}

// testAuditTamperOtherChainsIntact checks that one broken chain is reported
// alone: the others still verify.
func testAuditTamperOtherChainsIntact(t *testing.T, s keyplane.Store) {
	chainOf(t, s, 3)
	evs := chainOf(t, s, 3)
	chainOf(t, s, 3)
	raw(t, s).ExecSQL(t, `UPDATE audit_events SET actor_id = 'tok_someone_else' WHERE id = '`+evs[0].ID+`'`)
	wantProblem(t, s, evs[0].ID, keyplane.AuditHashMismatch)
}
