package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/admit"
	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/httpapi"
	"github.com/keyplane/keyplane/postgres"
	"github.com/keyplane/keyplane/postgres/postgrestest"
	"github.com/keyplane/keyplane/quota"
	"github.com/keyplane/keyplane/ratelimit"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/sqlite"
	"github.com/keyplane/keyplane/sqlite/sqlitetest"
	"github.com/keyplane/keyplane/teststore"
	"github.com/keyplane/keyplane/usage"
)

type harness struct {
	t      *testing.T
	url    string
	admin  string // admin token
	verify string // verify-role token
	store  keyplane.Store
	meter  *usage.Meter // flushes when a test says so
	srv    *httptest.Server
}

func newHarness(t *testing.T) *harness {
	return newHarnessOn(t, teststore.New(t))
}

func newHarnessOn(t *testing.T, store keyplane.Store) *harness {
	return newHarnessWith(t, store, nil)
}

// newHarnessWith lets a test configure the server, e.g. its forward-auth gate.
func newHarnessWith(t *testing.T, store keyplane.Store, configure func(*httpapi.Config)) *harness {
	t.Helper()
	limiter := ratelimit.New()
	t.Cleanup(limiter.Close)
	quotas := quota.New(store, quota.Config{})
	t.Cleanup(func() { quotas.Close(context.Background()) })
	meter := usage.New(store, usage.Config{FlushInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { meter.Close(context.Background()) })
	svc, err := service.New(store, service.Config{Limiter: limiter, Quotas: quotas, Usage: meter, UsageReports: usage.NewReporter(store)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpapi.Config{Service: svc, Store: store, Version: "test", Logger: slog.New(slog.DiscardHandler)}
	if configure != nil {
		configure(&cfg)
	}
	srv := httptest.NewServer(httpapi.New(cfg))
	t.Cleanup(srv.Close)
	sys := keyplane.NewContextWithActor(context.Background(), service.SystemActor)
	admin, err := svc.CreateToken(sys, service.TokenInput{Name: "admin", Role: keyplane.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	verify, err := svc.CreateToken(sys, service.TokenInput{Name: "gateway", Role: keyplane.RoleVerify})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, url: srv.URL, admin: admin.Plaintext, verify: verify.Plaintext, store: store, meter: meter, srv: srv}
}

// closeServer stops the server and waits for its requests to finish, so
// their log lines are written.
func (h *harness) closeServer() { h.srv.Close() }

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

func (h *harness) do(token, method, path string, body any) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (h *harness) admin_(method, path string, body any) response {
	return h.do(h.admin, method, path, body)
}

func (h *harness) want(r response, status int) map[string]any {
	h.t.Helper()
	if r.status != status {
		h.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r.json(h.t)
}

func (h *harness) account(scopes ...string) string {
	h.t.Helper()
	if scopes == nil {
		scopes = []string{}
	}
	return h.want(h.admin_("POST", "/v1/accounts", map[string]any{"name": "Acme", "allowed_scopes": scopes}), 201)["id"].(string)
}

func (h *harness) key(accountID string, body map[string]any) map[string]any {
	h.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	if body["name"] == nil {
		body["name"] = "test"
	}
	return h.want(h.admin_("POST", "/v1/accounts/"+accountID+"/keys", body), 201)
}

func (h *harness) verifyKey(key string, extra map[string]any) map[string]any {
	h.t.Helper()
	body := map[string]any{"key": key}
	for k, v := range extra {
		body[k] = v
	}
	return h.want(h.do(h.verify, "POST", "/v1/verify", body), 200)
}

// The README's walk-through, over real HTTP.
func TestWalkthrough(t *testing.T) {
	h := newHarness(t)
	acc := h.account("enrichment:*")
	created := h.key(acc, map[string]any{"name": "production", "scopes": []string{"enrichment:read"}, "metadata": map[string]any{"customer": 42}})
	plaintext := created["key"].(string)
	if !strings.HasPrefix(plaintext, "kp_live_") || created["status"] != "active" || !strings.Contains(created["hint"].(string), "…") {
		t.Fatalf("created: %v", created)
	}
	got := h.want(h.admin_("GET", "/v1/keys/"+created["id"].(string), nil), 200)
	if _, has := got["key"]; has {
		t.Fatal("GET returned the plaintext key")
	}
	if strings.Contains(string(h.admin_("GET", "/v1/accounts/"+acc+"/keys", nil).body), plaintext) {
		t.Fatal("list returned the plaintext key")
	}

	v := h.verifyKey(plaintext, map[string]any{"scope": "enrichment:read", "ip": "203.0.113.7"})
	if v["valid"] != true || v["code"] != "VALID" || v["key_id"] != created["id"] || v["account_id"] != acc || v["metadata"].(map[string]any)["customer"] != 42.0 {
		t.Fatalf("verify: %v", v)
	}
	if v := h.verifyKey(plaintext, map[string]any{"scope": "enrichment:write"}); v["valid"] != false || v["code"] != "INSUFFICIENT_SCOPE" {
		t.Fatalf("wrong scope: %v", v)
	}

	rolled := h.want(h.admin_("POST", "/v1/keys/"+created["id"].(string)+"/roll", map[string]any{"overlap_seconds": 3600}), 201)
	newKey := rolled["key"].(map[string]any)
	prev := rolled["previous"].(map[string]any)
	if prev["id"] != created["id"] || prev["status"] != "rolling" || prev["expires_at"] == nil || newKey["key"] == plaintext || newKey["rolled_from_id"] != created["id"] {
		t.Fatalf("roll: %s", h.admin_("GET", "/v1/keys/"+created["id"].(string), nil).body)
	}
	for _, k := range []string{plaintext, newKey["key"].(string)} {
		if v := h.verifyKey(k, nil); v["code"] != "VALID" {
			t.Fatalf("during overlap: %v", v)
		}
	}

	revoked := h.want(h.admin_("POST", "/v1/keys/"+newKey["id"].(string)+"/revoke", nil), 200)
	if revoked["status"] != "revoked" || revoked["revoked_at"] == nil {
		t.Fatalf("revoke: %v", revoked)
	}
	if v := h.verifyKey(newKey["key"].(string), nil); v["valid"] != false || v["code"] != "REVOKED" {
		t.Fatalf("revoked key: %v", v)
	}
	if v := h.verifyKey("kp_live_nonsense", nil); v["valid"] != false || v["code"] != "NOT_FOUND" || len(v) != 2 {
		t.Fatalf("unknown key: %v", v)
	}

	// Suspending the account stops its keys; reactivating restores them.
	h.want(h.admin_("PATCH", "/v1/accounts/"+acc, map[string]any{"status": "suspended"}), 200)
	if v := h.verifyKey(plaintext, nil); v["code"] != "DISABLED" {
		t.Fatalf("suspended account: %v", v)
	}
	h.want(h.admin_("PATCH", "/v1/accounts/"+acc, map[string]any{"status": "active"}), 200)
	if v := h.verifyKey(plaintext, nil); v["code"] != "VALID" {
		t.Fatalf("reactivated account: %v", v)
	}
}

func TestAuth(t *testing.T) {
	h := newHarness(t)
	for name, tc := range map[string]struct {
		token, method, path string
		status              int
	}{
		"no token":                  {"", "GET", "/v1/accounts", 401},
		"garbage token":             {"hello", "GET", "/v1/accounts", 401},
		"well-formed unknown token": {"kpt_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17", "GET", "/v1/accounts", 401},
		"verify token on admin":     {h.verify, "GET", "/v1/accounts", 403},
		"verify token creating":     {h.verify, "POST", "/v1/accounts", 403},
		"no token on verify":        {"", "POST", "/v1/verify", 401},
		"admin token on verify":     {h.admin, "POST", "/v1/verify", 200},
		"verify token on verify":    {h.verify, "POST", "/v1/verify", 200},
		"health needs no token":     {"", "GET", "/healthz", 200},
		"openapi needs no token":    {"", "GET", "/openapi.json", 200},
		"an api key is not a token": {"kp_live_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17", "GET", "/v1/accounts", 401},
	} {
		t.Run(name, func(t *testing.T) {
			var body any
			if tc.path == "/v1/verify" {
				body = map[string]any{"key": "kp_live_x"}
			} else if tc.method == "POST" {
				body = map[string]any{"name": "x"}
			}
			r := h.do(tc.token, tc.method, tc.path, body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status >= 400 {
				assertProblem(t, r)
			}
			if tc.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	if n := len(h.want(h.admin_("GET", "/v1/accounts", nil), 200)["data"].([]any)); n != 0 {
		t.Fatalf("refused requests created %d accounts", n)
	}
}

func assertProblem(t *testing.T, r response) map[string]any {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, want application/problem+json: %s", ct, r.body)
	}
	p := r.json(t)
	if p["status"] != float64(r.status) || p["title"] == "" || p["type"] == "" || p["code"] == "" || p["detail"] == "" {
		t.Fatalf("not a full problem: %s", r.body)
	}
	return p
}

// Each bad input gets the right 4xx, a problem that names what was wrong, and
// changes nothing.
func TestBadInput(t *testing.T) {
	h := newHarness(t)
	acc := h.account("data:*")
	k := h.key(acc, map[string]any{"name": "keep", "scopes": []string{"data:read"}})
	keyPath := "/v1/keys/" + k["id"].(string)
	huge := `{"name":"` + strings.Repeat("a", 1<<20) + `"}`
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		field              string // expected in errors[].field or detail
	}{
		{"malformed json", "POST", "/v1/accounts/" + acc + "/keys", `{"name": "x",`, 400, ""},
		{"not an object", "POST", "/v1/accounts/" + acc + "/keys", `[1,2]`, 400, ""},
		{"wrong type", "POST", "/v1/accounts/" + acc + "/keys", `{"name": 12}`, 400, "name"},
		{"wrong type in list", "POST", "/v1/accounts/" + acc + "/keys", `{"name": "x", "scopes": [1]}`, 400, "scopes[0]"},
		{"unknown field", "POST", "/v1/accounts/" + acc + "/keys", `{"name": "x", "colour": "red"}`, 400, "colour"},
		{"unknown nested field", "POST", "/v1/accounts/" + acc + "/keys", `{"name": "x", "quota": {"limit": 1, "period": "day", "x": 1}}`, 400, "quota.x"},
		{"missing name", "POST", "/v1/accounts/" + acc + "/keys", `{}`, 400, "name"},
		{"empty name", "POST", "/v1/accounts/" + acc + "/keys", map[string]any{"name": ""}, 400, "name"},
		{"name over 100", "POST", "/v1/accounts/" + acc + "/keys", map[string]any{"name": strings.Repeat("é", 101)}, 400, "name"},
		{"scope outside allowed", "POST", "/v1/accounts/" + acc + "/keys", map[string]any{"name": "x", "scopes": []string{"billing:read"}}, 400, "scopes[0]"},
		{"invalid cidr", "POST", "/v1/accounts/" + acc + "/keys", map[string]any{"name": "x", "allowed_cidrs": []string{"10.0.0.0/8", "300.1.1.1/24"}}, 400, "allowed_cidrs[1]"},
		{"metadata over 4 KiB", "POST", "/v1/accounts/" + acc + "/keys", map[string]any{"name": "x", "metadata": map[string]string{"a": strings.Repeat("x", 4097)}}, 400, "metadata"},
		{"metadata not an object", "POST", "/v1/accounts/" + acc + "/keys", `{"name": "x", "metadata": "hi"}`, 400, "metadata"},
		{"negative limit", "POST", "/v1/accounts/" + acc + "/keys", map[string]any{"name": "x", "rate_limits": []map[string]any{{"name": "d", "limit": -1, "window_seconds": 60, "algorithm": "token_bucket"}}}, 400, "rate_limits[0].limit"},
		{"zero window", "POST", "/v1/accounts/" + acc + "/keys", map[string]any{"name": "x", "rate_limits": []map[string]any{{"name": "d", "limit": 5, "window_seconds": 0, "algorithm": "token_bucket"}}}, 400, "rate_limits[0].window_seconds"},
		{"burst below 1", "POST", "/v1/accounts/" + acc + "/keys", map[string]any{"name": "x", "rate_limits": []map[string]any{{"name": "d", "limit": 5, "window_seconds": 1, "burst": 0, "algorithm": "token_bucket"}}}, 400, "rate_limits[0].burst"},
		{"unknown algorithm", "POST", "/v1/accounts/" + acc + "/keys", map[string]any{"name": "x", "rate_limits": []map[string]any{{"name": "d", "limit": 5, "window_seconds": 1, "algorithm": "leaky"}}}, 400, "rate_limits[0].algorithm"},
		{"reset day past 28", "POST", "/v1/accounts/" + acc + "/keys", map[string]any{"name": "x", "quota": map[string]any{"limit": 1, "period": "month", "reset_day": 31}}, 400, "quota.reset_day"},
		{"negative quota", "POST", "/v1/accounts/" + acc + "/keys", map[string]any{"name": "x", "quota": map[string]any{"limit": -1, "period": "day"}}, 400, "quota.limit"},
		{"unknown quota period", "POST", "/v1/accounts/" + acc + "/keys", map[string]any{"name": "x", "quota": map[string]any{"limit": 1, "period": "week"}}, 400, "quota.period"},
		{"past expiry", "POST", "/v1/accounts/" + acc + "/keys", map[string]any{"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, 400, "expires_at"},
		{"bad time", "POST", "/v1/accounts/" + acc + "/keys", map[string]any{"name": "x", "expires_at": "tomorrow"}, 400, "expires_at"},
		{"bad environment", "POST", "/v1/accounts/" + acc + "/keys", map[string]any{"name": "x", "environment": "prod"}, 400, "environment"},
		{"body over 1 MiB", "POST", "/v1/accounts/" + acc + "/keys", huge, 413, ""},
		{"unknown account", "POST", "/v1/accounts/acc_nope/keys", map[string]any{"name": "x"}, 404, ""},
		{"overlap over 7 days", "POST", keyPath + "/roll", map[string]any{"overlap_seconds": 604801}, 400, "overlap_seconds"},
		{"negative overlap", "POST", keyPath + "/roll", map[string]any{"overlap_seconds": -1}, 400, "overlap_seconds"},
		{"overlap that would overflow", "POST", keyPath + "/roll", map[string]any{"overlap_seconds": int64(1) << 55}, 400, "overlap_seconds"},
		{"id with a NUL byte", "GET", "/v1/keys/%00", nil, 404, ""},
		{"id with invalid UTF-8", "GET", "/v1/accounts/a%ffb", nil, 404, ""},
		{"cursor with a NUL byte", "GET", "/v1/accounts/" + acc + "/keys?cursor=AA", nil, 400, "cursor"},
		{"metadata with invalid UTF-8", "POST", "/v1/accounts/" + acc + "/keys", "{\"name\": \"x\", \"metadata\": {\"a\": \"\xff\"}}", 400, "metadata"},
		{"patch null name", "PATCH", keyPath, `{"name": null}`, 400, "name"},
		{"roll unknown key", "POST", "/v1/keys/key_nope/roll", map[string]any{"overlap_seconds": 0}, 404, ""},
		{"revoke unknown key", "POST", "/v1/keys/key_nope/revoke", nil, 404, ""},
		{"get unknown key", "GET", "/v1/keys/key_nope", nil, 404, ""},
		{"patch unknown key", "PATCH", "/v1/keys/key_nope", map[string]any{"name": "x"}, 404, ""},
		{"patch bad scope", "PATCH", keyPath, map[string]any{"scopes": []string{"other:read"}}, 400, "scopes[0]"},
		{"patch null scopes", "PATCH", keyPath, `{"scopes": null}`, 400, "scopes"},
		{"patch unknown field", "PATCH", keyPath, map[string]any{"hash": "x"}, 400, "hash"},
		{"get unknown account", "GET", "/v1/accounts/acc_nope", nil, 404, ""},
		{"bad account status", "PATCH", "/v1/accounts/" + acc, map[string]any{"status": "deleted"}, 400, "status"},
		{"bad status filter", "GET", "/v1/accounts/" + acc + "/keys?status=sleeping", nil, 400, "status"},
		{"limit over 100", "GET", "/v1/accounts/" + acc + "/keys?limit=101", nil, 400, "limit"},
		{"bad cursor", "GET", "/v1/accounts/" + acc + "/keys?cursor=***", nil, 400, "cursor"},
		{"verify without key", "POST", "/v1/verify", `{}`, 400, "key"},
		{"verify bad ip", "POST", "/v1/verify", map[string]any{"key": "kp_live_x", "ip": "999.1.1.1"}, 400, "ip"},
		{"verify negative cost", "POST", "/v1/verify", map[string]any{"key": "kp_live_x", "cost": -1}, 400, "cost"},
		{"verify cost too high", "POST", "/v1/verify", map[string]any{"key": "kp_live_x", "cost": 1000001}, 400, "cost"},
		{"verify unknown field", "POST", "/v1/verify", map[string]any{"key": "kp_live_x", "colour": "red"}, 400, "colour"},
		{"verify wrong type", "POST", "/v1/verify", `{"key": 42}`, 400, "key"},
		{"verify key too long", "POST", "/v1/verify", map[string]any{"key": strings.Repeat("k", 257)}, 400, "key"},
		{"verify malformed json", "POST", "/v1/verify", `{"key": "x"`, 400, ""},
		{"verify trailing data", "POST", "/v1/verify", `{"key": "x"} {"key": "y"}`, 400, ""},
		{"verify trailing brace", "POST", "/v1/verify", `{"key": "x"}}`, 400, ""},
		{"verify empty body", "POST", "/v1/verify", ``, 400, ""},
		{"verify body over 1 MiB", "POST", "/v1/verify", `{"key": "` + strings.Repeat("a", 1<<20) + `"}`, 413, ""},
		{"unknown route", "GET", "/v1/nothing", nil, 404, ""},
		{"wrong method", "DELETE", keyPath, nil, 405, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.admin_(tc.method, tc.path, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			p := assertProblem(t, r)
			if tc.field != "" && !strings.Contains(fmt.Sprint(p["errors"])+fmt.Sprint(p["detail"]), tc.field) {
				t.Fatalf("problem does not name %q: %s", tc.field, r.body)
			}
		})
	}
	// Nothing changed: one key, as it was.
	list := h.want(h.admin_("GET", "/v1/accounts/"+acc+"/keys", nil), 200)["data"].([]any)
	if len(list) != 1 {
		t.Fatalf("%d keys after bad input, want 1", len(list))
	}
	after := list[0].(map[string]any)
	if after["name"] != "keep" || after["status"] != "active" || after["updated_at"] != k["updated_at"] {
		t.Fatalf("the key changed: %v", after)
	}
}

func TestKeyCapOverHTTP(t *testing.T) {
	h := newHarness(t)
	acc := h.account()
	for range service.DefaultMaxActiveKeys {
		h.key(acc, nil)
	}
	r := h.admin_("POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "26th"})
	if r.status != 409 || assertProblem(t, r)["code"] != "limit" {
		t.Fatalf("26th key: %d %s", r.status, r.body)
	}
}

func TestPaginationAndFilter(t *testing.T) {
	h := newHarness(t)
	acc := h.account()
	var ids []string
	for range 7 {
		ids = append([]string{h.key(acc, nil)["id"].(string)}, ids...)
	}
	h.want(h.admin_("PATCH", "/v1/keys/"+ids[2], map[string]any{"enabled": false}), 200)
	var got []string
	cursor := ""
	for {
		page := h.want(h.admin_("GET", "/v1/accounts/"+acc+"/keys?limit=3&cursor="+cursor, nil), 200)
		for _, k := range page["data"].([]any) {
			got = append(got, k.(map[string]any)["id"].(string))
		}
		if cursor = page["next_cursor"].(string); cursor == "" {
			break
		}
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("pages %v, want %v", got, ids)
	}
	disabled := h.want(h.admin_("GET", "/v1/accounts/"+acc+"/keys?status=disabled", nil), 200)["data"].([]any)
	if len(disabled) != 1 || disabled[0].(map[string]any)["id"] != ids[2] {
		t.Fatalf("disabled filter: %v", disabled)
	}
}

// PATCH distinguishes absent (unchanged) from null (cleared).
func TestPatchSemantics(t *testing.T) {
	h := newHarness(t)
	acc := h.account("*")
	k := h.key(acc, map[string]any{"expires_at": "2099-01-01T00:00:00Z", "quota": map[string]any{"limit": 10, "period": "day"}, "scopes": []string{"a:b"}})
	path := "/v1/keys/" + k["id"].(string)
	got := h.want(h.admin_("PATCH", path, map[string]any{"name": "renamed"}), 200)
	if got["expires_at"] != "2099-01-01T00:00:00Z" || got["quota"] == nil || got["name"] != "renamed" {
		t.Fatalf("absent fields changed: %v", got)
	}
	got = h.want(h.admin_("PATCH", path, `{"expires_at": null, "quota": null, "rate_limits": [{"name": "burst", "limit": 10, "window_seconds": 1, "algorithm": "token_bucket"}]}`), 200)
	if _, has := got["expires_at"]; has || got["quota"] != nil || got["rate_limits"] == nil || got["scopes"].([]any)[0] != "a:b" {
		t.Fatalf("null did not clear: %v", got)
	}
	got = h.want(h.admin_("PATCH", path, `{"rate_limits": null, "enabled": false}`), 200)
	if got["rate_limits"] != nil || got["status"] != "disabled" {
		t.Fatalf("rate_limits null / disable: %v", got)
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	h := newHarness(t)
	doc := h.want(h.do("", "GET", "/openapi.json", nil), 200)
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi version %v", doc["openapi"])
	}
	paths := doc["paths"].(map[string]any)
	want := map[string][]string{
		"/v1/accounts":                    {"get", "post"},
		"/v1/accounts/{id}":               {"get", "patch"},
		"/v1/accounts/{id}/keys":          {"get", "post"},
		"/v1/keys/{id}":                   {"get", "patch"},
		"/v1/keys/{id}/revoke":            {"post"},
		"/v1/keys/{id}/roll":              {"post"},
		"/v1/keys/{id}/quota":             {"get"},
		"/v1/keys/{id}/quota/reset":       {"post"},
		"/v1/keys/{id}/usage":             {"get"},
		"/v1/accounts/{id}/usage":         {"get"},
		"/v1/usage":                       {"post"},
		"/v1/verify":                      {"post"},
		"/v1/forward-auth":                {"get"},
		"/v1/plans":                       {"get", "post"},
		"/v1/plans/{name}":                {"get", "patch"},
		"/v1/audit":                       {"get"},
		"/v1/accounts/{id}/audit":         {"get"},
		"/healthz":                        {"get"},
		"/readyz":                         {"get"},
		"/v1/accounts/{id}/members":       {"get", "post"},
		"/v1/accounts/{id}/invites":       {"get"},
		"/v1/members/{id}":                {"patch", "delete"},
		"/v1/members/{id}/password":       {"post"},
		"/v1/members/{id}/password-reset": {"post"},
		"/v1/invites/{id}":                {"delete"},
		"/v1/keys/leaked":                 {"post"},

		"/v1/accounts/{id}/webhooks":      {"get", "post"},
		"/v1/webhooks":                    {"get", "post"},
		"/v1/webhooks/{id}":               {"get", "patch", "delete"},
		"/v1/webhooks/{id}/rotate-secret": {"post"},
		"/v1/webhooks/{id}/messages":      {"get"},
		"/v1/webhooks/{id}/recover":       {"post"},
		"/v1/webhooks/{id}/test":          {"post"},
		"/v1/messages/{id}/retry":         {"post"},
		"/v1/accounts/{id}/events":        {"post"},
		"/v1/tokens":                      {"get", "post"},
		"/v1/tokens/{id}":                 {"get"},
		"/v1/tokens/{id}/revoke":          {"post"},
	}
	for path, methods := range want {
		ops, ok := paths[path].(map[string]any)
		if !ok {
			t.Errorf("document lacks %s", path)
			continue
		}
		for _, m := range methods {
			if ops[m] == nil {
				t.Errorf("document lacks %s %s", m, path)
			}
		}
	}
	// And every documented operation is served (no 404/405 from the router).
	for path, ops := range paths {
		for method := range ops.(map[string]any) {
			concrete := strings.NewReplacer("{id}", "x", "{name}", "x").Replace(path)
			r := h.admin_(strings.ToUpper(method), concrete, nil)
			if r.status == 405 || (r.status == 404 && strings.Contains(string(r.body), "no endpoint")) {
				t.Errorf("%s %s is documented but not served: %d", method, path, r.status)
			}
		}
	}
	if len(paths) != len(want) {
		t.Errorf("document has %d paths, test knows %d: update the test with the new route", len(paths), len(want))
	}
}

func TestReadiness(t *testing.T) {
	store := teststore.New(t)
	h := newHarnessOn(t, store)
	if r := h.do("", "GET", "/readyz", nil); r.status != 200 {
		t.Fatalf("readyz %d", r.status)
	}
	store.Close()
	r := h.do("", "GET", "/readyz", nil)
	if r.status != 503 {
		t.Fatalf("readyz with the store closed: %d %s", r.status, r.body)
	}
	assertProblem(t, r)
	if r := h.do("", "GET", "/healthz", nil); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}
}

// While PostgreSQL is unreachable, requests that need it answer 503 problems
// and /readyz is unready; when it is back the service recovers by itself.
func TestDatabaseOutage(t *testing.T) {
	dbURL, proxy := postgrestest.NewDatabaseBehindProxy(t)
	store, err := postgres.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h := newHarnessOn(t, store)
	acc := h.account("*")
	k := h.key(acc, nil)["key"].(string)

	proxy.Down()
	for _, tc := range []struct {
		token, method, path string
		body                any
	}{
		{h.admin, "GET", "/v1/accounts/" + acc, nil},
		{h.admin, "POST", "/v1/accounts", map[string]any{"name": "x"}},
		{h.verify, "POST", "/v1/verify", map[string]any{"key": k}},
		{"", "GET", "/readyz", nil},
	} {
		r := h.do(tc.token, tc.method, tc.path, tc.body)
		if r.status != 503 {
			t.Fatalf("%s %s while the database is down: %d %s", tc.method, tc.path, r.status, r.body)
		}
		if p := assertProblem(t, r); p["code"] != "unavailable" {
			t.Fatalf("problem code %v", p["code"])
		}
	}
	if r := h.do("", "GET", "/healthz", nil); r.status != 200 {
		t.Fatalf("healthz while the database is down: %d", r.status)
	}

	proxy.Up(t)
	deadline := time.Now().Add(10 * time.Second)
	for h.do("", "GET", "/readyz", nil).status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("not ready 10 s after the database came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v := h.verifyKey(k, nil); v["code"] != "VALID" {
		t.Fatalf("after recovery: %v", v)
	}
}

// A key pasted where an id belongs is neither echoed nor logged.
func TestKeyAsIDIsNotEchoedOrLogged(t *testing.T) {
	store := teststore.New(t)
	svc, _ := service.New(store, service.Config{})
	var logs bytes.Buffer
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Service: svc, Store: store, Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
	defer srv.Close()
	admin, _ := svc.CreateToken(keyplane.NewContextWithActor(context.Background(), service.SystemActor), service.TokenInput{Name: "a", Role: keyplane.RoleAdmin})
	h := &harness{t: t, url: srv.URL, admin: admin.Plaintext, store: store}
	acc := h.account("*")
	key := h.key(acc, nil)["key"].(string)
	for _, path := range []string{"/v1/keys/" + key, "/v1/keys/" + key + "/revoke", "/v1/accounts/" + key} {
		method := "GET"
		if strings.HasSuffix(path, "/revoke") {
			method = "POST"
		}
		r := h.admin_(method, path, nil)
		if r.status != 404 || strings.Contains(string(r.body), key) {
			t.Fatalf("%s %s: %d %s", method, path, r.status, r.body)
		}
	}
	if strings.Contains(logs.String(), key) || !strings.Contains(logs.String(), "[redacted key]") {
		t.Fatalf("the key reached the log:\n%s", logs.String())
	}
}

// Keys and operator tokens pasted into a path are masked in the request log
// wherever the path goes (API routes, unknown paths, Envoy-style
// forward-auth), including keys with a bad checksum and verification lines
// at debug level.
func TestSecretsInPathsAreNotLogged(t *testing.T) {
	logs := &syncBuffer{}
	store := teststore.New(t)
	h := newHarnessWith(t, store, func(c *httpapi.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	acc := h.account("*")
	key := h.key(acc, nil)["key"].(string)
	last := strings.IndexByte(apikey.Alphabet, key[len(key)-1])
	badChecksum := key[:len(key)-1] + string(apikey.Alphabet[(last+1)%len(apikey.Alphabet)])
	secrets := []string{key, badChecksum, h.admin, h.verify, apikey.NewToken()}
	for _, secret := range secrets {
		for _, path := range []string{"/v1/keys/" + secret, "/v1/keys/" + secret + "/revoke", "/v1/accounts/" + secret + "/keys",
			"/nowhere/" + secret, "/v1/forward-auth/things/" + secret} {
			h.admin_("GET", path, nil)
			h.do("", "POST", path, nil)
		}
	}
	h.closeServer()
	out := logs.String()
	for _, secret := range secrets {
		if strings.Contains(out, secret) || strings.Contains(out, secret[len(secret)-20:]) {
			t.Fatalf("a secret reached the log:\n%s", out)
		}
	}
	for _, want := range []string{`path="/v1/keys/[redacted token]"`, `path="/v1/keys/[redacted key]/revoke"`,
		`path="/nowhere/[redacted token]"`, `path="/v1/forward-auth/things/[redacted key]"`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the log:\n%s", want, out)
		}
	}
}

// syncBuffer is a log destination that server goroutines write while a test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestVerifyRateLimited(t *testing.T) {
	h := newHarness(t)
	acc := h.account("*")
	key := h.key(acc, map[string]any{"rate_limits": []map[string]any{
		{"name": "default", "limit": 2, "window_seconds": 60, "algorithm": "token_bucket"},
		{"name": "daily", "limit": 1000, "window_seconds": 86400, "algorithm": "sliding_window"},
	}})["key"].(string)
	first := h.verifyKey(key, nil)
	rl := first["ratelimit"].(map[string]any)
	if first["code"] != "VALID" || rl["policy"] != "default" || rl["limit"] != 2.0 || rl["remaining"] != 1.0 {
		t.Fatalf("first: %v", first)
	}
	h.verifyKey(key, nil)
	third := h.verifyKey(key, nil)
	rl = third["ratelimit"].(map[string]any)
	if third["valid"] != false || third["code"] != "RATE_LIMITED" || rl["remaining"] != 0.0 || third["retry_after_seconds"] != 30.0 || third["key_id"] == nil {
		t.Fatalf("third: %v", third)
	}
	// A cost of 0 charges nothing, so it fits even an empty bucket, and says
	// what is left; the next charged request is still refused.
	if v := h.verifyKey(key, map[string]any{"cost": 0}); v["code"] != "VALID" || v["ratelimit"].(map[string]any)["remaining"] != 0.0 {
		t.Fatalf("cost 0 on an empty bucket: %v", v)
	}
	if v := h.verifyKey(key, nil); v["code"] != "RATE_LIMITED" {
		t.Fatalf("after cost 0: %v", v)
	}
}

func TestRateLimitHeaders(t *testing.T) {
	h := http.Header{}
	admit.RateLimitHeaders(h, keyplane.VerifyResult{Code: keyplane.VerifyRateLimited, RetryAfter: 1500 * time.Millisecond,
		RateLimit: &keyplane.RateLimitState{Policy: "default", Limit: 100, Remaining: 0, Reset: 17200 * time.Millisecond, Window: time.Minute}})
	want := map[string]string{
		"RateLimit-Policy": `"default";q=100;w=60`, "RateLimit": `"default";r=0;t=18`,
		"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "18", "Retry-After": "2",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	h = http.Header{}
	admit.RateLimitHeaders(h, keyplane.VerifyResult{Code: keyplane.VerifyRateLimited, RetryAfter: 5 * time.Minute})
	if h.Get("Retry-After") != "300" {
		t.Fatalf("a refusal without a policy's state (the failure throttle): %v", h)
	}
	h = http.Header{}
	admit.RateLimitHeaders(h, keyplane.VerifyResult{Code: keyplane.VerifyValid})
	if len(h) != 0 {
		t.Fatalf("headers without rate limits: %v", h)
	}
}

func TestPlansOverHTTP(t *testing.T) {
	h := newHarness(t)
	p := h.want(h.admin_("POST", "/v1/plans", map[string]any{"name": "free", "max_keys": 1, "allowed_scopes": []string{"data:read"},
		"rate_limits": []map[string]any{{"name": "minute", "limit": 1, "window_seconds": 60, "algorithm": "token_bucket"}}}), 201)
	if p["name"] != "free" || p["max_keys"] != 1.0 || p["rate_limits"] == nil || p["quota"] != nil {
		t.Fatalf("created: %v", p)
	}
	if got := h.want(h.admin_("GET", "/v1/plans/free", nil), 200); got["name"] != "free" {
		t.Fatalf("get: %v", got)
	}
	list := h.want(h.admin_("GET", "/v1/plans", nil), 200)["data"].([]any)
	if len(list) != 2 || list[0].(map[string]any)["name"] != "default" {
		t.Fatalf("list: %v", list)
	}
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
	}{
		{"POST", "/v1/plans", map[string]any{"name": "free"}, 409},
		{"POST", "/v1/plans", map[string]any{"name": "Bad Name"}, 400},
		{"POST", "/v1/plans", map[string]any{"name": "x", "max_keys": -1}, 400},
		{"GET", "/v1/plans/nope", nil, 404},
		{"PATCH", "/v1/plans/nope", map[string]any{"max_keys": 3}, 404},
		{"PATCH", "/v1/plans/free", map[string]any{"max_keys": null()}, 400},
		{"POST", "/v1/accounts", map[string]any{"name": "x", "plan": "gold"}, 400},
		{"PATCH", "/v1/accounts/" + h.account(), map[string]any{"plan": "gold"}, 400},
	} {
		r := h.admin_(tc.method, tc.path, tc.body)
		if r.status != tc.status {
			t.Fatalf("%s %s %v: %d, want %d: %s", tc.method, tc.path, tc.body, r.status, tc.status, r.body)
		}
		assertProblem(t, r)
	}
	if r := h.do(h.verify, "GET", "/v1/plans", nil); r.status != 403 {
		t.Fatalf("verify token on plans: %d", r.status)
	}
	// An account on the plan: its key has the plan's limit of 1 a minute.
	acc := h.want(h.admin_("POST", "/v1/accounts", map[string]any{"name": "Acme", "plan": "free", "allowed_scopes": []string{"*"}}), 201)["id"].(string)
	key := h.key(acc, map[string]any{"scopes": []string{"data:read"}})["key"].(string)
	if r := h.admin_("POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "second"}); r.status != 409 {
		t.Fatalf("a second key on a plan of max_keys 1: %d", r.status)
	}
	if v := h.verifyKey(key, nil); v["code"] != "VALID" {
		t.Fatalf("first: %v", v)
	}
	if v := h.verifyKey(key, nil); v["code"] != "RATE_LIMITED" {
		t.Fatalf("second: %v", v)
	}
	// null removes the plan's limits; the key is free again at its next request.
	got := h.want(h.admin_("PATCH", "/v1/plans/free", `{"rate_limits": null}`), 200)
	if got["rate_limits"] != nil {
		t.Fatalf("patched: %v", got)
	}
	if v := h.verifyKey(key, nil); v["code"] != "VALID" {
		t.Fatalf("after removing the plan's limits: %v", v)
	}
}

func null() any { return nil }

// No API answer may be cached: the one that creates a key carries its
// plaintext, and every other carries one account's data.
func TestAnswersAreNotCached(t *testing.T) {
	h := newHarness(t)
	acc := h.account("data:*")
	r := h.admin_("POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "k", "scopes": []string{"data:read"}})
	created := h.want(r, 201)
	for name, got := range map[string]response{
		"create key": r,
		"roll key":   h.admin_("POST", "/v1/keys/"+created["id"].(string)+"/roll", map[string]any{"overlap_seconds": 0}),
		"get key":    h.admin_("GET", "/v1/keys/"+created["id"].(string), nil),
		"not found":  h.admin_("GET", "/v1/keys/key_01aaaaaaaaaaaaaaaaaaaaaaaa", nil),
		"no route":   h.admin_("GET", "/v1/nothing-here", nil),
	} {
		if cc := got.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s (%d): Cache-Control %q, want no-store", name, got.status, cc)
		}
	}
}

// waitingStore holds CreateAccount and key lookups until the request's
// context ends, as a slow database would, then lets the real store answer
// with that context.
type waitingStore struct {
	keyplane.Store
	entered chan struct{}
}

func (s *waitingStore) CreateAccount(ctx context.Context, a *keyplane.Account) error {
	s.entered <- struct{}{}
	<-ctx.Done()
	return s.Store.CreateAccount(ctx, a)
}

func (s *waitingStore) VerifyRecord(ctx context.Context, hash [32]byte) (*keyplane.VerifyRecord, error) {
	s.entered <- struct{}{}
	<-ctx.Done()
	return s.Store.VerifyRecord(ctx, hash)
}

// A client that hangs up before the answer, while the server waits on the
// database or while it sends the body, is a client disconnect: status 499 in
// the request log (at info level, verification at debug as always), no
// error line, never a 500.
func TestClientHangUpIsNotAServerError(t *testing.T) {
	logs := &syncBuffer{}
	store := &waitingStore{Store: teststore.New(t), entered: make(chan struct{}, 1)}
	h := newHarnessWith(t, store, func(c *httpapi.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})

	// Hangs up while the server waits on the database.
	hangUp := func(req *http.Request) {
		ctx, cancel := context.WithCancel(context.Background())
		req = req.WithContext(ctx)
		done := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		select {
		case <-store.entered:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s %s never reached the store", req.Method, req.URL.Path)
		}
		cancel()
		if err := <-done; err == nil {
			t.Fatalf("%s %s was answered although its client canceled it", req.Method, req.URL.Path)
		}
	}
	req, _ := http.NewRequest("POST", h.url+"/v1/accounts", strings.NewReader(`{"name": "Acme"}`))
	req.Header.Set("Authorization", "Bearer "+h.admin)
	hangUp(req)
	req, _ = http.NewRequest("GET", h.url+"/v1/forward-auth", nil)
	req.Header.Set("X-Forwarded-Method", "GET")
	req.Header.Set("X-Forwarded-Uri", "/things")
	req.Header.Set("X-Keyplane-Token", h.verify)
	req.Header.Set("X-API-Key", apikey.New(apikey.DefaultPrefix, "live"))
	hangUp(req)

	// Hangs up halfway through the body it announced.
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/plans HTTP/1.1\r\nHost: keyplane\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\": ", h.admin)
	time.Sleep(50 * time.Millisecond) // the server is reading the body
	conn.Close()

	h.closeServer() // waits for the requests to finish
	out := logs.String()
	for _, want := range []string{`level=INFO msg="http request" method=POST path=/v1/accounts status=499 `,
		`level=DEBUG msg="http request" method=GET path=/v1/forward-auth status=499 `,
		`level=INFO msg="http request" method=POST path=/v1/plans status=499 `} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the log:\n%s", want, out)
		}
	}
	if strings.Contains(out, "level=ERROR") || strings.Contains(out, "status=500") {
		t.Fatalf("a client hanging up was logged as a server error:\n%s", out)
	}
}

// A SQLite file that can no longer grow (a full disk) answers writes with
// 503 problems that say so, without a file path, never a 500.
func TestFullDiskAnswers503(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyplane.db")
	ctx := context.Background()
	before, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(before, service.Config{})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := svc.CreateToken(keyplane.NewContextWithActor(ctx, service.SystemActor), service.TokenInput{Name: "admin", Role: keyplane.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	before.Close()

	sqlitetest.FillDiskOnOpen(t, path)
	store, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if svc, err = service.New(store, service.Config{}); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Service: svc, Store: store, Logger: slog.New(slog.NewTextHandler(logs, nil))}))
	defer srv.Close()
	h := &harness{t: t, url: srv.URL, admin: admin.Plaintext, store: store}
	var r response
	for i := 0; ; i++ {
		if r = h.admin_("POST", "/v1/accounts", map[string]any{"name": fmt.Sprintf("Account %d with a name long enough to fill pages", i)}); r.status != 201 {
			break
		}
		if i == 1000 {
			t.Fatal("1000 accounts written to a full disk")
		}
	}
	p := r.json(t)
	if r.status != 503 || p["code"] != "unavailable" || p["detail"] != "the database is out of disk space" || strings.Contains(string(r.body), path) {
		t.Fatalf("a write to a full disk: %d %s", r.status, r.body)
	}
	if r := h.admin_("GET", "/v1/accounts", nil); r.status != 200 {
		t.Fatalf("a read with the disk full: %d %s", r.status, r.body)
	}
	srv.Close()
	if !strings.Contains(logs.String(), "status=503") || strings.Contains(logs.String(), "status=500") {
		t.Fatalf("log:\n%s", logs.String())
	}
}

// A plan's key_policy binds the keys of its accounts: created and rolled
// keys must expire, within the plan's maximum lifetime; a refusal is a 400
// naming expires_at.
func TestPlanKeyPolicyOverHTTP(t *testing.T) {
	h := newHarness(t)
	p := h.want(h.admin_("POST", "/v1/plans", map[string]any{"name": "strict", "key_policy": map[string]any{"require_expiry": true, "max_lifetime_days": 30}}), 201)
	if kp, _ := p["key_policy"].(map[string]any); kp["require_expiry"] != true || kp["max_lifetime_days"] != 30.0 {
		t.Fatalf("created: %v", p)
	}
	if got := h.want(h.admin_("GET", "/v1/plans/strict", nil), 200); got["key_policy"] == nil {
		t.Fatalf("read back: %v", got)
	}
	if got := h.want(h.admin_("GET", "/v1/plans/default", nil), 200); got["key_policy"] != nil {
		t.Fatalf("default plan: %v", got)
	}
	acc := h.want(h.admin_("POST", "/v1/accounts", map[string]any{"name": "Acme", "plan": "strict", "allowed_scopes": []string{"*"}}), 201)["id"].(string)
	day := 24 * time.Hour
	at := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }
	refused := func(r response, what string) {
		t.Helper()
		if r.status != 400 {
			t.Fatalf("%s: %d, want 400: %s", what, r.status, r.body)
		}
		if p := assertProblem(t, r); !strings.Contains(fmt.Sprint(p["errors"]), "expires_at") {
			t.Fatalf("%s: the problem does not name expires_at: %s", what, r.body)
		}
	}
	refused(h.admin_("POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "forever"}), "no expiry")
	refused(h.admin_("POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "long", "expires_at": at(31 * day)}), "31 days")
	k := h.key(acc, map[string]any{"expires_at": at(29 * day)})
	id := k["id"].(string)
	refused(h.admin_("PATCH", "/v1/keys/"+id, `{"expires_at": null}`), "update to no expiry")
	// A roll keeps the expiry, which is within the policy counted from now.
	next := h.want(h.admin_("POST", "/v1/keys/"+id+"/roll", map[string]any{"overlap_seconds": 60}), 201)["key"].(map[string]any)
	if next["expires_at"] == nil {
		t.Fatalf("successor without expiry: %v", next)
	}
	id = next["id"].(string)
	refused(h.admin_("POST", "/v1/keys/"+id+"/roll", map[string]any{"overlap_seconds": 0, "expires_at": at(31 * day)}), "roll to 31 days")
	// The plan tightens: the successor may not inherit an expiry beyond it.
	h.want(h.admin_("PATCH", "/v1/plans/strict", map[string]any{"key_policy": map[string]any{"require_expiry": true, "max_lifetime_days": 7}}), 200)
	refused(h.admin_("POST", "/v1/keys/"+id+"/roll", map[string]any{"overlap_seconds": 0}), "roll keeping 29 days under 7")
	h.want(h.admin_("POST", "/v1/keys/"+id+"/roll", map[string]any{"overlap_seconds": 0, "expires_at": at(6 * day)}), 201)
	// Out-of-range policies name the field; null removes the policy.
	r := h.admin_("PATCH", "/v1/plans/strict", map[string]any{"key_policy": map[string]any{"max_lifetime_days": -1}})
	if r.status != 400 || !strings.Contains(string(r.body), "max_lifetime_days") {
		t.Fatalf("bad policy: %d %s", r.status, r.body)
	}
	if got := h.want(h.admin_("PATCH", "/v1/plans/strict", `{"key_policy": null}`), 200); got["key_policy"] != nil {
		t.Fatalf("removed: %v", got)
	}
	h.key(acc, map[string]any{"name": "forever now"})
}
