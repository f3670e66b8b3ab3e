package httpapi_test

import (
	"testing"
	"time"
)

func TestQuotaOverHTTP(t *testing.T) {
	h := newHarness(t)
	acc := h.account()
	k := h.key(acc, map[string]any{"quota": map[string]any{"limit": 2, "period": "month", "reset_day": 15}})
	if q := k["quota"].(map[string]any); q["reset_day"] != 15.0 || q["period"] != "month" {
		t.Fatalf("created key's quota: %v", q)
	}
	id, plaintext := k["id"].(string), k["key"].(string)
	v := h.verifyKey(plaintext, map[string]any{"cost": 2})
	q := v["quota"].(map[string]any)
	if v["code"] != "VALID" || q["limit"] != 2.0 || q["used"] != 2.0 || q["remaining"] != 0.0 || q["period"] != "month" {
		t.Fatalf("verify: %v", v)
	}
	resets, err := time.Parse(time.RFC3339, q["resets_at"].(string))
	if err != nil || resets.Day() != 15 || resets.Before(time.Now()) {
		t.Fatalf("resets_at %v: %v", q["resets_at"], err)
	}
	v = h.verifyKey(plaintext, nil)
	if v["code"] != "QUOTA_EXCEEDED" || v["valid"] != false || v["retry_after_seconds"].(float64) < 1 {
		t.Fatalf("past the quota: %v", v)
	}

	usage := h.want(h.admin_("GET", "/v1/keys/"+id+"/quota", nil), 200)
	if usage["used"] != 2.0 || usage["remaining"] != 0.0 || usage["subject_id"] != id || usage["period_start"] == nil {
		t.Fatalf("GET quota: %v", usage)
	}
	if r := h.do(h.verify, "POST", "/v1/keys/"+id+"/quota/reset", nil); r.status != 403 {
		t.Fatalf("a verify-only token reset a quota: %d %s", r.status, r.body)
	}
	if usage := h.want(h.admin_("POST", "/v1/keys/"+id+"/quota/reset", nil), 200); usage["used"] != 0.0 || usage["remaining"] != 2.0 {
		t.Fatalf("reset: %v", usage)
	}
	if v := h.verifyKey(plaintext, nil); v["code"] != "VALID" {
		t.Fatalf("after the reset: %v", v)
	}

	plain := h.key(acc, nil)["id"].(string)
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
	}{
		{"GET", "/v1/keys/" + plain + "/quota", nil, 404},
		{"GET", "/v1/keys/key_nope/quota", nil, 404},
		{"POST", "/v1/keys/key_nope/quota/reset", nil, 404},
	} {
		r := h.admin_(tc.method, tc.path, tc.body)
		if r.status != tc.status {
			t.Fatalf("%s %s: %d, want %d: %s", tc.method, tc.path, r.status, tc.status, r.body)
		}
		assertProblem(t, r)
	}
}
