package httpapi_test

import (
	"testing"

	"github.com/keyplane/keyplane/admit"
	"github.com/keyplane/keyplane/httpapi"
)

// An admin token scoped to another account must not use forward-auth:
// docs/api.md says the verify routes (forward-auth among them) answer 403
// to account-scoped tokens, since verifying sees every account's keys.
func TestScopedTokenRefusedByForwardAuth(t *testing.T) {
	f := newForwardAuth(t, admit.GateConfig{}, httpapi.ForwardAuthConfig{})
	other := f.account()
	scoped := f.want(f.admin_("POST", "/v1/tokens", map[string]any{"name": "other", "role": "admin", "account_id": other}), 201)["token"].(string)
	// the scoped token is refused on /v1/verify...
	if r := f.do(scoped, "POST", "/v1/verify", map[string]any{"key": f.reader}); r.status != 403 {
		t.Fatalf("verify: %d %s", r.status, r.body)
	}
	// ...but forward-auth admits the first account's key with it
	r := f.call("GET", "/v1/forward-auth", map[string]string{"X-Keyplane-Token": scoped, "X-Forwarded-Uri": "/v1/things/1", "X-API-Key": f.reader})
	if r.status != 403 {
		t.Fatalf("forward-auth with a token scoped to another account: %d, want 403; identity headers: %v", r.status, r.header)
	}
}

// A scoped admin token manages its account "as its owner would"; owners may
// not set a key's own rate limits or quota (they override the plan's), and
// quota reset is refused to scoped tokens for the same reason. Setting a
// key's quota lifts the plan's all the same.
func TestScopedTokenCannotLiftPlanLimits(t *testing.T) {
	h := newHarness(t)
	h.want(h.admin_("POST", "/v1/plans", map[string]any{"name": "tiny", "quota": map[string]any{"limit": 1, "period": "day"},
		"rate_limits": []map[string]any{{"name": "default", "limit": 1, "window_seconds": 60, "algorithm": "token_bucket"}}}), 201)
	acc := h.want(h.admin_("POST", "/v1/accounts", map[string]any{"name": "A", "plan": "tiny", "allowed_scopes": []string{}}), 201)["id"].(string)
	scoped := h.want(h.admin_("POST", "/v1/tokens", map[string]any{"name": "a", "role": "admin", "account_id": acc}), 201)["token"].(string)
	r := h.do(scoped, "POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "big", "quota": map[string]any{"limit": 1000000000, "period": "day"},
		"rate_limits": []map[string]any{{"name": "default", "limit": 1000000, "window_seconds": 1, "algorithm": "token_bucket"}}})
	if r.status != 403 {
		t.Fatalf("scoped token set its key's own quota and rate limits: %d %s", r.status, r.body)
	}
}
