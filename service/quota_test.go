package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

func TestQuotaIsChargedLast(t *testing.T) {
	e := newEnv(t)
	acc := e.account(t, "data:*")
	k := e.key(t, acc.ID, service.KeyInput{Scopes: []string{"data:read"}, Quota: &keyplane.Quota{Limit: 3, Period: keyplane.QuotaDay}})
	// Refused for another reason: nothing charged.
	for range 5 {
		if c := e.verify(t, keyplane.VerifyRequest{Key: k.Plaintext, Scope: "data:write", Cost: 1}); c != keyplane.VerifyInsufficientScope {
			t.Fatalf("wrong scope: %s", c)
		}
	}
	ok := keyplane.VerifyRequest{Key: k.Plaintext, Scope: "data:read", Cost: 1}
	for i := range 3 {
		res, err := e.svc.Verify(e.ctx, ok)
		if err != nil || res.Code != keyplane.VerifyValid || !res.Quota.Counted() || res.Quota.Remaining != int64(2-i) || res.Quota.Limit != 3 {
			t.Fatalf("request %d: %v %s %+v", i+1, err, res.Code, res.Quota)
		}
	}
	res, _ := e.svc.Verify(e.ctx, ok)
	midnight := time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)
	if res.Code != keyplane.VerifyQuotaExceeded || res.Valid || res.Quota.Used != 3 || !res.Quota.ResetsAt.Equal(midnight) ||
		res.RetryAfter != midnight.Sub(e.clock.Now()) {
		t.Fatalf("fourth: %s %+v retry after %v", res.Code, res.Quota, res.RetryAfter)
	}
	// cost 0 still answers, with the state.
	if res, _ := e.svc.Verify(e.ctx, keyplane.VerifyRequest{Key: k.Plaintext}); res.Code != keyplane.VerifyValid || res.Quota.Remaining != 0 {
		t.Fatalf("cost 0: %s %+v", res.Code, res.Quota)
	}
	e.clock.Add(24 * time.Hour)
	if c := e.verify(t, ok); c != keyplane.VerifyValid {
		t.Fatalf("the next day: %s", c)
	}
}

// A request the rate limit refuses is not counted against the quota, and an
// exhausted quota takes nothing from the rate limit.
func TestQuotaAndRateLimitChargeOnlyTogether(t *testing.T) {
	e := newEnv(t)
	acc := e.account(t)
	two := int64(2)
	k := e.key(t, acc.ID, service.KeyInput{Quota: &keyplane.Quota{Limit: 3, Period: keyplane.QuotaMonth},
		RateLimits: []keyplane.RateLimitPolicy{{Name: "minute", Limit: &two, WindowSeconds: 60, Algorithm: keyplane.TokenBucket}}})
	req := keyplane.VerifyRequest{Key: k.Plaintext, Cost: 1}
	for i, want := range []keyplane.VerifyCode{keyplane.VerifyValid, keyplane.VerifyValid, keyplane.VerifyRateLimited, keyplane.VerifyRateLimited} {
		res, _ := e.svc.Verify(e.ctx, req)
		if res.Code != want {
			t.Fatalf("request %d: %s, want %s", i+1, res.Code, want)
		}
		if want == keyplane.VerifyRateLimited && (res.Quota.Used != 2 || res.Quota.Remaining != 1) {
			t.Fatalf("a rate-limited request reports quota %+v; want 2 used, 1 remaining", res.Quota)
		}
	}
	e.clock.Add(time.Minute) // the bucket is full again: 2 allowed
	if c := e.verify(t, req); c != keyplane.VerifyValid {
		t.Fatalf("third admitted request: %s (rate-limited requests were charged to the quota?)", c)
	}
	if c := e.verify(t, req); c != keyplane.VerifyQuotaExceeded {
		t.Fatalf("past the quota: %s", c)
	}
	e.clock.Add(31 * 24 * time.Hour)
	for i := range 2 {
		if c := e.verify(t, req); c != keyplane.VerifyValid {
			t.Fatalf("next month, request %d: %s (a quota refusal took rate-limit allowance?)", i+1, c)
		}
	}
}

func TestSharedQuotaFromThePlan(t *testing.T) {
	e := newEnv(t)
	if _, err := e.svc.CreatePlan(e.ctx, service.PlanInput{Name: "metered", Quota: &keyplane.Quota{Limit: 4, Period: keyplane.QuotaDay, Shared: true}}); err != nil {
		t.Fatal(err)
	}
	acc, err := e.svc.CreateAccount(e.ctx, service.AccountInput{Name: "Acme", Plan: "metered"})
	if err != nil {
		t.Fatal(err)
	}
	a, b := e.key(t, acc.ID, service.KeyInput{}), e.key(t, acc.ID, service.KeyInput{})
	other := e.key(t, e.account(t).ID, service.KeyInput{}) // default plan: no quota
	for i, k := range []*service.CreatedKey{a, b, a, b} {
		if c := e.verify(t, keyplane.VerifyRequest{Key: k.Plaintext, Cost: 1}); c != keyplane.VerifyValid {
			t.Fatalf("request %d: %s", i+1, c)
		}
	}
	if c := e.verify(t, keyplane.VerifyRequest{Key: b.Plaintext, Cost: 1}); c != keyplane.VerifyQuotaExceeded {
		t.Fatalf("fifth request on the account: %s", c)
	}
	if res, _ := e.svc.Verify(e.ctx, keyplane.VerifyRequest{Key: other.Plaintext, Cost: 1}); res.Code != keyplane.VerifyValid || res.Quota.Counted() {
		t.Fatalf("a key without a quota: %s %+v", res.Code, res.Quota)
	}
	u, err := e.svc.QuotaUsage(e.ctx, a.Key.ID)
	if err != nil || u.SubjectID != acc.ID || u.State.Used != 4 || !u.Quota.Shared {
		t.Fatalf("QuotaUsage: %v %+v", err, u)
	}
	_, err = e.svc.QuotaUsage(e.ctx, other.Key.ID)
	wantCode(t, err, keyplane.ENOTFOUND)
	// Resetting through one key frees the account's shared count.
	if u, err := e.svc.ResetQuota(e.ctx, b.Key.ID); err != nil || u.State.Used != 0 {
		t.Fatalf("ResetQuota: %v %+v", err, u)
	}
	if c := e.verify(t, keyplane.VerifyRequest{Key: a.Plaintext, Cost: 1}); c != keyplane.VerifyValid {
		t.Fatalf("after the reset: %s", c)
	}
	// Raising the plan's quota applies at the next request.
	if _, err := e.svc.UpdatePlan(e.ctx, "metered", service.PlanUpdate{Quota: service.Optional[*keyplane.Quota]{Set: true,
		Value: &keyplane.Quota{Limit: 1, Period: keyplane.QuotaDay, Shared: true}}}); err != nil {
		t.Fatal(err)
	}
	if c := e.verify(t, keyplane.VerifyRequest{Key: a.Plaintext, Cost: 1}); c != keyplane.VerifyQuotaExceeded {
		t.Fatalf("after lowering the plan's quota: %s", c)
	}
}

func TestQuotaUsageSurvivesARestart(t *testing.T) {
	e := newEnv(t)
	acc := e.account(t)
	k := e.key(t, acc.ID, service.KeyInput{Quota: &keyplane.Quota{Limit: 10, Period: keyplane.QuotaDay}})
	for range 7 {
		e.verify(t, keyplane.VerifyRequest{Key: k.Plaintext, Cost: 1})
	}
	if err := e.quotas.Close(context.Background()); err != nil { // what a graceful shutdown does
		t.Fatal(err)
	}
	restarted := newEnvOn(t, e.store, e.clock)
	u, err := restarted.svc.QuotaUsage(restarted.ctx, k.Key.ID)
	if err != nil || u.State.Used != 7 || u.State.Remaining != 3 {
		t.Fatalf("after a restart: %v %+v", err, u)
	}
}

func TestQuotaEndpointsIsolationAndRoles(t *testing.T) {
	e := newEnv(t)
	acc, other := e.account(t), e.account(t)
	k := e.key(t, acc.ID, service.KeyInput{Quota: &keyplane.Quota{Limit: 10, Period: keyplane.QuotaDay}})
	stranger := keyplane.NewContextWithActor(context.Background(), keyplane.Actor{Kind: "member", ID: "m2", AccountID: other.ID})
	_, err := e.svc.QuotaUsage(stranger, k.Key.ID)
	wantCode(t, err, keyplane.ENOTFOUND)
	owner := keyplane.NewContextWithActor(context.Background(), keyplane.Actor{Kind: "member", ID: "m1", AccountID: acc.ID})
	if _, err := e.svc.QuotaUsage(owner, k.Key.ID); err != nil {
		t.Fatalf("the account's own member: %v", err)
	}
	_, err = e.svc.ResetQuota(owner, k.Key.ID)
	wantCode(t, err, keyplane.EFORBIDDEN)
	verifier := keyplane.NewContextWithActor(context.Background(), keyplane.Actor{Kind: "token", ID: "tok_v", Role: keyplane.RoleVerify})
	_, err = e.svc.ResetQuota(verifier, k.Key.ID)
	wantCode(t, err, keyplane.EFORBIDDEN)
	_, err = e.svc.QuotaUsage(e.ctx, "key_nope")
	wantCode(t, err, keyplane.ENOTFOUND)
}

func TestQuotaValidation(t *testing.T) {
	e := newEnv(t)
	acc := e.account(t)
	for _, q := range []keyplane.Quota{
		{Limit: -1, Period: keyplane.QuotaDay},
		{Limit: 1, Period: "week"},
		{Limit: 1, Period: keyplane.QuotaMonth, ResetDay: 29},
		{Limit: 1, Period: keyplane.QuotaDay, ResetDay: 3},
	} {
		_, err := e.svc.CreateKey(e.ctx, acc.ID, service.KeyInput{Name: "q", Quota: &q})
		wantCode(t, err, keyplane.EINVALID)
	}
	if _, err := e.svc.CreateKey(e.ctx, acc.ID, service.KeyInput{Name: "q", Quota: &keyplane.Quota{Limit: 1, Period: keyplane.QuotaMonth, ResetDay: 28}}); err != nil {
		t.Fatalf("reset day 28: %v", err)
	}
}
