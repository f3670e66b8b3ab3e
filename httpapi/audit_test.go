package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestAuditOverHTTP(t *testing.T) {
	h := newHarness(t)
	// A change made with a user agent and request id of the caller's.
	req, _ := http.NewRequest("POST", h.url+"/v1/accounts", strings.NewReader(`{"name":"Audited"}`))
	req.Header.Set("Authorization", "Bearer "+h.admin)
	req.Header.Set("User-Agent", "billing-sync/2.1")
	req.Header.Set("X-Request-Id", "sync-0001")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("create account: %d %s", resp.StatusCode, body)
	}
	var acc map[string]any
	json.Unmarshal(body, &acc)
	accID := acc["id"].(string)
	other := h.account()
	k := h.key(accID, nil)
	plaintext := k["key"].(string)
	h.want(h.admin_("POST", "/v1/keys/"+k["id"].(string)+"/revoke", nil), 200)

	page := h.want(h.admin_("GET", "/v1/audit?type=account.created&account_id="+accID, nil), 200)
	data := page["data"].([]any)
	if len(data) != 1 {
		t.Fatalf("account.created events: %s", page)
	}
	ev := data[0].(map[string]any)
	actor := ev["actor"].(map[string]any)
	if ev["ip"] != "127.0.0.1" || ev["user_agent"] != "billing-sync/2.1" || ev["request_id"] != "sync-0001" || ev["account_id"] != accID ||
		actor["kind"] != "token" || !strings.HasPrefix(actor["id"].(string), "tok_") || ev["seq"] != float64(1) || ev["prev_hash"] != "" ||
		len(ev["hash"].(string)) != 64 || ev["details"].(map[string]any)["name"] != "Audited" {
		t.Fatalf("event %v", ev)
	}

	// The account's own list: its events only, newest first, in pages.
	var types []string
	cursor := ""
	for range 5 {
		p := h.want(h.admin_("GET", "/v1/accounts/"+accID+"/audit?limit=1&cursor="+url.QueryEscape(cursor), nil), 200)
		for _, e := range p["data"].([]any) {
			e := e.(map[string]any)
			if e["account_id"] != accID {
				t.Fatalf("another account's event in the list: %v", e)
			}
			types = append(types, e["type"].(string))
		}
		if cursor = p["next_cursor"].(string); cursor == "" {
			break
		}
	}
	if strings.Join(types, " ") != "key.revoked key.created account.created" {
		t.Fatalf("account's events %v", types)
	}
	if d := h.want(h.admin_("GET", "/v1/accounts/"+other+"/audit", nil), 200)["data"].([]any); len(d) != 1 {
		t.Fatalf("the other account's list: %v", d)
	}
	all := h.admin_("GET", "/v1/audit?limit=100", nil)
	if strings.Contains(string(all.body), plaintext) || strings.Contains(string(all.body), h.admin) {
		t.Fatal("an audit event holds a plaintext key or token")
	}

	// Unknown accounts are 404s; bad filters are problems naming the field;
	// a verify token may not read the log.
	assertProblem(t, h.admin_("GET", "/v1/accounts/acc_01jd2x5y6z7a8b9c0d1e2f3g4h/audit", nil))
	if r := h.admin_("GET", "/v1/accounts/acc_01jd2x5y6z7a8b9c0d1e2f3g4h/audit", nil); r.status != 404 {
		t.Fatalf("unknown account: %d", r.status)
	}
	for query, field := range map[string]string{
		"type=key%20created": "type",
		"from=yesterday":     "from",
		"limit=101":          "limit",
		"key_id=kp_live_x":   "key_id",
		"account_id=ACME":    "account_id",
		"from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z": "to",
		"colour=red": "colour",
	} {
		r := h.admin_("GET", "/v1/audit?"+query, nil)
		if r.status != 400 {
			t.Errorf("%s: status %d, want 400", query, r.status)
			continue
		}
		if p := assertProblem(t, r); !strings.Contains(string(r.body), field) || p["code"] != "invalid" {
			t.Errorf("%s: problem %s does not name %s", query, r.body, field)
		}
	}
	if r := h.do(h.verify, "GET", "/v1/audit", nil); r.status != 403 {
		t.Fatalf("verify token reading the log: %d", r.status)
	}
}
