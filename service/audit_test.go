package service_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

// auditLog reads the whole log and hands out the events added since the
// previous call, oldest first.
type auditLog struct {
	store keyplane.Store
	seen  map[string]bool
}

func (l *auditLog) newEvents(t *testing.T) []*keyplane.AuditEvent {
	t.Helper()
	if l.seen == nil {
		l.seen = map[string]bool{}
	}
	var fresh []*keyplane.AuditEvent
	f := keyplane.AuditFilter{Page: keyplane.Page{Limit: 100}}
	for {
		page, next, err := l.store.ListAudit(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page {
			if !l.seen[ev.ID] {
				l.seen[ev.ID] = true
				fresh = append(fresh, ev)
			}
		}
		if next == "" {
			break
		}
		f.Cursor = next
	}
	slices.Reverse(fresh)
	return fresh
}

var request = keyplane.RequestInfo{SourceIP: "198.51.100.4", UserAgent: "keyplane-test/1.0", RequestID: "req-42"}

// TestEachMutationWritesItsEvent runs every kind of change and wants
// exactly its events, with the actor and the request's facts; and no event
// for a change that fails.
func TestEachMutationWritesItsEvent(t *testing.T) {
	e := newEnv(t)
	log := &auditLog{store: e.store}
	ctx := keyplane.NewContextWithRequestInfo(e.ctx, request)
	var plaintexts []string

	want := func(what string, err error, accountID, keyID string, types ...string) []*keyplane.AuditEvent {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		events := log.newEvents(t)
		var got []string
		for _, ev := range events {
			got = append(got, ev.Type)
			if ev.Actor != (keyplane.AuditActor{Kind: "token", ID: "tok_test"}) || ev.SourceIP != request.SourceIP ||
				ev.UserAgent != request.UserAgent || ev.RequestID != request.RequestID {
				t.Errorf("%s: event %+v lacks the actor or the request's facts", what, ev)
			}
			if ev.AccountID != accountID || ev.KeyID != keyID {
				t.Errorf("%s: %s on account %q key %q, want %q %q", what, ev.Type, ev.AccountID, ev.KeyID, accountID, keyID)
			}
			if !strings.HasPrefix(ev.ID, "evt_") || !ev.Time.Equal(e.clock.Now()) {
				t.Errorf("%s: id %q time %v", what, ev.ID, ev.Time)
			}
			var obj map[string]any
			if err := json.Unmarshal(ev.Details, &obj); err != nil {
				t.Errorf("%s: details %s are not an object", what, ev.Details)
			}
		}
		if strings.Join(got, " ") != strings.Join(types, " ") {
			t.Errorf("%s wrote %v, want %v", what, got, types)
		}
		return events
	}
	wantNone := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s succeeded; want it to fail", what)
		}
		if events := log.newEvents(t); len(events) > 0 {
			t.Errorf("%s failed but wrote %d event(s), the first %s", what, len(events), events[0].Type)
		}
	}

	a, err := e.svc.CreateAccount(ctx, service.AccountInput{Name: "Acme", AllowedScopes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	evs := want("CreateAccount", err, a.ID, "", keyplane.AuditAccountCreated)
	if !strings.Contains(string(evs[0].Details), `"name":"Acme"`) {
		t.Errorf("account.created details %s", evs[0].Details)
	}
	_, err = e.svc.CreateAccount(ctx, service.AccountInput{Name: ""})
	wantNone("CreateAccount without a name", err)

	_, err = e.svc.UpdateAccount(ctx, a.ID, service.AccountUpdate{Name: ptr("Acme 2")})
	want("UpdateAccount name", err, a.ID, "", keyplane.AuditAccountUpdated)
	_, err = e.svc.UpdateAccount(ctx, a.ID, service.AccountUpdate{Status: ptr(keyplane.AccountSuspended)})
	want("suspend", err, a.ID, "", keyplane.AuditAccountSuspended)
	_, err = e.svc.UpdateAccount(ctx, a.ID, service.AccountUpdate{Status: ptr(keyplane.AccountActive), Name: ptr("Acme 3")})
	want("reactivate and rename", err, a.ID, "", keyplane.AuditAccountReactivated, keyplane.AuditAccountUpdated)
	_, err = e.svc.UpdateAccount(ctx, a.ID, service.AccountUpdate{Plan: ptr("no-such-plan")})
	wantNone("UpdateAccount to a missing plan", err)

	_, err = e.svc.CreatePlan(ctx, service.PlanInput{Name: "pro"})
	want("CreatePlan", err, "", "", keyplane.AuditPlanCreated)
	_, err = e.svc.CreatePlan(ctx, service.PlanInput{Name: "pro"})
	wantNone("CreatePlan of a taken name", err)
	_, err = e.svc.UpdatePlan(ctx, "pro", service.PlanUpdate{MaxKeys: service.Optional[int]{Set: true, Value: 3}})
	evs = want("UpdatePlan", err, "", "", keyplane.AuditPlanUpdated)
	if string(evs[0].Details) != `{"fields":["max_keys"],"name":"pro"}` {
		t.Errorf("plan.updated details %s", evs[0].Details)
	}

	k, err := e.svc.CreateKey(ctx, a.ID, service.KeyInput{Name: "ci", Scopes: []string{"data:read"}, Quota: &keyplane.Quota{Limit: 10, Period: keyplane.QuotaDay}})
	if err != nil {
		t.Fatal(err)
	}
	want("CreateKey", err, a.ID, k.ID, keyplane.AuditKeyCreated)
	plaintexts = append(plaintexts, k.Plaintext)
	_, err = e.svc.CreateKey(ctx, a.ID, service.KeyInput{Name: "x", Scopes: []string{"bad scope"}})
	wantNone("CreateKey with a bad scope", err)

	_, err = e.svc.UpdateKey(ctx, k.ID, service.KeyUpdate{Enabled: service.Optional[bool]{Set: true, Value: false}})
	want("disable", err, a.ID, k.ID, keyplane.AuditKeyDisabled)
	_, err = e.svc.UpdateKey(ctx, k.ID, service.KeyUpdate{Enabled: service.Optional[bool]{Set: true, Value: true}})
	want("enable", err, a.ID, k.ID, keyplane.AuditKeyEnabled)
	_, err = e.svc.UpdateKey(ctx, k.ID, service.KeyUpdate{Name: service.Optional[string]{Set: true, Value: "ci 2"}})
	evs = want("rename", err, a.ID, k.ID, keyplane.AuditKeyUpdated)
	if string(evs[0].Details) != `{"fields":["name"]}` {
		t.Errorf("key.updated details %s", evs[0].Details)
	}
	_, err = e.svc.UpdateKey(ctx, k.ID, service.KeyUpdate{Scopes: service.Optional[[]string]{Set: true, Value: []string{"bad scope"}}})
	wantNone("UpdateKey with a bad scope", err)

	_, err = e.svc.ResetQuota(ctx, k.ID)
	want("ResetQuota", err, a.ID, k.ID, keyplane.AuditQuotaReset)

	rolled, err := e.svc.RollKey(ctx, k.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	evs = want("RollKey", err, a.ID, k.ID, keyplane.AuditKeyRolled)
	plaintexts = append(plaintexts, rolled.Key.Plaintext)
	if !strings.Contains(string(evs[0].Details), `"successor_id":"`+rolled.Key.ID+`"`) {
		t.Errorf("key.rolled details %s", evs[0].Details)
	}
	_, err = e.svc.RollKey(ctx, k.ID, time.Hour)
	wantNone("rolling a rolled key", err)

	_, err = e.svc.RevokeKey(ctx, rolled.Key.ID)
	want("RevokeKey", err, a.ID, rolled.Key.ID, keyplane.AuditKeyRevoked)
	_, err = e.svc.RevokeKey(ctx, rolled.Key.ID)
	want("revoking a revoked key", err, a.ID, rolled.Key.ID) // nothing changed, nothing recorded
	_, err = e.svc.UpdateKey(ctx, rolled.Key.ID, service.KeyUpdate{Name: service.Optional[string]{Set: true, Value: "x"}})
	wantNone("UpdateKey of a revoked key", err)

	tok, err := e.svc.CreateToken(ctx, service.TokenInput{Name: "deploy", Role: keyplane.RoleVerify})
	if err != nil {
		t.Fatal(err)
	}
	evs = want("CreateToken", err, "", "", keyplane.AuditTokenCreated)
	plaintexts = append(plaintexts, tok.Plaintext)
	if !strings.Contains(string(evs[0].Details), tok.ID) {
		t.Errorf("token.created details %s do not name the token", evs[0].Details)
	}
	_, err = e.svc.CreateToken(ctx, service.TokenInput{Name: "deploy", Role: "root"})
	wantNone("CreateToken with a bad role", err)

	// No plaintext in any event, and the chains verify.
	all, _, err := e.store.ListAudit(context.Background(), keyplane.AuditFilter{Page: keyplane.Page{Limit: 100}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range all {
		b, _ := json.Marshal(ev)
		for _, p := range plaintexts {
			if strings.Contains(string(b), p) || strings.Contains(string(b), p[len(p)-12:]) {
				t.Fatalf("event %s holds a plaintext key or token: %s", ev.Type, b)
			}
		}
	}
	report, err := keyplane.CheckAuditChains(context.Background(), e.store)
	if err != nil || len(report.Problems) > 0 || report.Events != int64(len(all)) {
		t.Fatalf("verify: %v %+v (%d events listed)", err, report, len(all))
	}
}

func TestFirstTokenIsRecordedAsTheSystem(t *testing.T) {
	e := newEnv(t)
	if _, err := e.svc.EnsureFirstToken(context.Background()); err != nil {
		t.Fatal(err)
	}
	events := (&auditLog{store: e.store}).newEvents(t)
	if len(events) != 1 || events[0].Type != keyplane.AuditTokenCreated || events[0].Actor != (keyplane.AuditActor{Kind: "system", ID: "system"}) {
		t.Fatalf("events %+v", events)
	}
}

func TestRecordAudit(t *testing.T) {
	e := newEnv(t)
	a := e.account(t)
	log := &auditLog{store: e.store}
	log.newEvents(t)
	member := keyplane.NewContextWithActor(keyplane.NewContextWithRequestInfo(context.Background(), request),
		keyplane.Actor{Kind: "member", ID: "mem_1", AccountID: a.ID})
	ev, err := e.svc.RecordAudit(member, keyplane.AuditEvent{Type: keyplane.AuditMemberSignedIn, AccountID: a.ID, Details: json.RawMessage(`{"method":"password"}`)})
	if err != nil {
		t.Fatal(err)
	}
	got := log.newEvents(t)
	if len(got) != 1 || got[0].ID != ev.ID || got[0].Actor != (keyplane.AuditActor{Kind: "member", ID: "mem_1"}) || got[0].RequestID != "req-42" ||
		got[0].Seq != 2 || string(got[0].Details) != `{"method":"password"}` {
		t.Fatalf("recorded %+v", got)
	}
	// A failed sign-in has no authenticated actor: the caller names one.
	anon := keyplane.NewContextWithRequestInfo(context.Background(), request)
	if _, err := e.svc.RecordAudit(anon, keyplane.AuditEvent{Type: keyplane.AuditMemberSignInFailed, AccountID: a.ID, Actor: keyplane.AuditActor{Kind: "member"}}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []keyplane.AuditEvent{
		{Type: "signed in"},
		{Type: keyplane.AuditMemberSignedIn, Details: json.RawMessage(`[1]`)},
		{Type: keyplane.AuditMemberSignedIn, Details: json.RawMessage(`{"a":"` + strings.Repeat("x", 5000) + `"}`)},
		{Type: keyplane.AuditMemberSignedIn, AccountID: "nope"},
		{Type: keyplane.AuditMemberSignedIn, KeyID: "kp_live_secret"},
	} {
		_, err := e.svc.RecordAudit(member, bad)
		wantCode(t, err, keyplane.EINVALID)
	}
}

func TestAuditListsAndIsolation(t *testing.T) {
	e := newEnv(t)
	mine, theirs := e.account(t, "*"), e.account(t, "*")
	k := e.key(t, mine.ID, service.KeyInput{})
	e.key(t, theirs.ID, service.KeyInput{})
	member := keyplane.NewContextWithActor(context.Background(), keyplane.Actor{Kind: "member", ID: "mem_1", AccountID: mine.ID})

	events, _, err := e.svc.ListAccountAudit(member, mine.ID, service.AuditFilter{})
	if err != nil || len(events) != 2 || events[0].Type != keyplane.AuditKeyCreated || events[0].KeyID != k.ID || events[1].Type != keyplane.AuditAccountCreated {
		t.Fatalf("own account's events: %v %+v", err, events)
	}
	_, _, err = e.svc.ListAccountAudit(member, theirs.ID, service.AuditFilter{})
	wantCode(t, err, keyplane.ENOTFOUND)
	_, _, err = e.svc.ListAudit(member, service.AuditFilter{})
	wantCode(t, err, keyplane.EFORBIDDEN)

	all, next, err := e.svc.ListAudit(e.ctx, service.AuditFilter{Page: keyplane.Page{Limit: 3}})
	if err != nil || len(all) != 3 || next == "" {
		t.Fatalf("first page: %v %d %q", err, len(all), next)
	}
	byKey, _, err := e.svc.ListAudit(e.ctx, service.AuditFilter{KeyID: k.ID, Type: keyplane.AuditKeyCreated, ActorID: "tok_test"})
	if err != nil || len(byKey) != 1 {
		t.Fatalf("by key: %v %+v", err, byKey)
	}
	from, to := e.clock.Now(), e.clock.Now()
	for name, f := range map[string]service.AuditFilter{
		"limit":   {Page: keyplane.Page{Limit: 101}},
		"account": {AccountID: "acme"},
		"key":     {KeyID: "kp_live_notanid"},
		"type":    {Type: "key created"},
		"actor":   {ActorID: "root; DROP"},
		"range":   {From: &from, To: &to},
		"cursor":  {Page: keyplane.Page{Cursor: "!!"}},
	} {
		_, _, err := e.svc.ListAudit(e.ctx, f)
		if keyplane.ErrorCode(err) != keyplane.EINVALID {
			t.Errorf("bad %s filter: %v, want invalid", name, err)
		}
	}
}
