package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/admit"
	"github.com/keyplane/keyplane/httpapi"
	"github.com/keyplane/keyplane/routes"
	"github.com/keyplane/keyplane/teststore"
)

const forwardAuthRules = `unmatched: deny
routes:
  - match: GET /v1/things/{id}
    scope: things:read
  - match: POST /v1/things
    scope: things:write
    cost: 5
  - match: /v1/hidden/
    scope: things:read
  - match: GET /v1/open
`

// forwardAuth is a forward-auth test server and the keys it knows.
type forwardAuth struct {
	*harness
	reader, limited, quota, restricted, revoked string
}

func newForwardAuth(t *testing.T, gate admit.GateConfig, fa httpapi.ForwardAuthConfig) *forwardAuth {
	t.Helper()
	rules, err := routes.Parse("rules.yaml", []byte(forwardAuthRules))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessWith(t, teststore.New(t), func(c *httpapi.Config) {
		gate.Service, gate.Rules = c.Service, routes.Static(rules)
		c.Gate, c.ForwardAuth = admit.NewGate(gate), fa
	})
	acc := h.account("things:*")
	f := &forwardAuth{harness: h}
	f.reader = h.key(acc, map[string]any{"scopes": []string{"things:read"}})["key"].(string)
	f.limited = h.key(acc, map[string]any{"scopes": []string{"things:*"}, "rate_limits": []map[string]any{
		{"name": "default", "limit": 6, "window_seconds": 60, "algorithm": "token_bucket"}}})["key"].(string)
	f.quota = h.key(acc, map[string]any{"scopes": []string{"things:read"}, "quota": map[string]any{"limit": 1, "period": "day"}})["key"].(string)
	f.restricted = h.key(acc, map[string]any{"scopes": []string{"things:read"}, "allowed_cidrs": []string{"203.0.113.0/24"}})["key"].(string)
	revoked := h.key(acc, map[string]any{"scopes": []string{"things:read"}})
	h.want(h.admin_("POST", "/v1/keys/"+revoked["id"].(string)+"/revoke", nil), 200)
	f.revoked = revoked["key"].(string)
	return f
}

// call asks forward-auth about a request; headers are the proxy's and the client's.
func (f *forwardAuth) call(method, path string, headers map[string]string) response {
	f.t.Helper()
	req, err := http.NewRequest(method, f.url+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// ask is a proxy's call with its token, for a client request of method and uri.
func (f *forwardAuth) ask(method, uri string, client map[string]string) response {
	f.t.Helper()
	h := map[string]string{"X-Keyplane-Token": f.verify, "X-Forwarded-Method": method, "X-Forwarded-Uri": uri}
	for k, v := range client {
		h[k] = v
	}
	return f.call("GET", "/v1/forward-auth", h)
}

func problemCode(t *testing.T, r response) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("status %d, content type %q: %s", r.status, ct, r.body)
	}
	var p struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil || p.Status != r.status {
		t.Fatalf("problem %s: %v", r.body, err)
	}
	return p.Code
}

func TestForwardAuthOutcomes(t *testing.T) {
	f := newForwardAuth(t, admit.GateConfig{KeyHeader: "X-Things-Key", KeyQuery: "api_key"}, httpapi.ForwardAuthConfig{})
	bearer := func(k string) map[string]string { return map[string]string{"Authorization": "Bearer " + k} }
	for _, c := range []struct {
		name         string
		method, uri  string
		client       map[string]string
		status       int
		code         string // problem code; "" for 200
		wwwAuthorize bool
	}{
		{"valid, bearer", "GET", "/v1/things/1", bearer(f.reader), 200, "", false},
		{"valid, X-API-Key", "GET", "/v1/things/1?x=1", map[string]string{"X-API-Key": f.reader}, 200, "", false},
		{"valid, configured header", "GET", "/v1/things/1", map[string]string{"X-Things-Key": f.reader}, 200, "", false},
		{"valid, configured query parameter", "GET", "/v1/things/1?api_key=" + f.reader, nil, 200, "", false},
		{"a route without a scope takes any key", "GET", "/v1/open", bearer(f.reader), 200, "", false},
		{"no key", "GET", "/v1/things/1", nil, 401, "missing_key", true},
		{"Authorization that is not Bearer", "GET", "/v1/things/1", map[string]string{"Authorization": "Basic eDp5"}, 401, "missing_key", true},
		{"unknown key", "GET", "/v1/things/1", bearer("kp_live_000000000000000000000000000000000000"), 401, "not_found", true},
		{"revoked key", "GET", "/v1/things/1", bearer(f.revoked), 401, "revoked", true},
		{"wrong scope", "POST", "/v1/things", bearer(f.reader), 403, "insufficient_scope", false},
		{"no rule: deny", "DELETE", "/v1/things/1", bearer(f.reader), 403, "no_route", false},
		{"dot segments", "GET", "/v1/open/../things/1", bearer(f.reader), 400, "invalid", false},
		{"encoded dot segments", "GET", "/v1/open/%2e%2e/things/1", bearer(f.reader), 400, "invalid", false},
		// The rule for {id} would match "1/secret"; an API that decodes %2F sees /v1/things/1/secret.
		{"encoded slash", "GET", "/v1/things/1%2Fsecret", bearer(f.reader), 400, "invalid", false},
		{"encoded slash, lower case", "GET", "/v1/things/1%2fsecret", bearer(f.reader), 400, "invalid", false},
		{"IP outside the key's ranges", "GET", "/v1/things/1", map[string]string{"X-API-Key": f.restricted, "X-Forwarded-For": "198.51.100.1"}, 403, "forbidden", false},
		{"IP inside them", "GET", "/v1/things/1", map[string]string{"X-API-Key": f.restricted, "X-Forwarded-For": "198.51.100.1, 203.0.113.9"}, 200, "", false},
		{"IP spoofed left of the proxy's entry", "GET", "/v1/things/1", map[string]string{"X-API-Key": f.restricted, "X-Forwarded-For": "203.0.113.9, 198.51.100.1"}, 403, "forbidden", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.ask(c.method, c.uri, c.client)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if c.code == "" {
				if r.header.Get("X-Keyplane-Key-Id") == "" || r.header.Get("X-Keyplane-Account-Id") == "" || r.header.Get("X-Keyplane-Scopes") != "things:read" {
					t.Fatalf("identity headers: %v", r.header)
				}
				return
			}
			if got := problemCode(t, r); got != c.code {
				t.Fatalf("code %q, want %q: %s", got, c.code, r.body)
			}
			if r.header.Get("X-Keyplane-Key-Id") != "" {
				t.Fatal("a refusal carried identity headers")
			}
			if got := r.header.Get("WWW-Authenticate") != ""; got != c.wwwAuthorize {
				t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}

	// The rule's cost is charged: 6 per minute admits one POST (5) and one GET.
	if r := f.ask("POST", "/v1/things", map[string]string{"X-API-Key": f.limited}); r.status != 200 || r.header.Get("X-RateLimit-Remaining") != "1" || r.header.Get("RateLimit-Policy") != `"default";q=6;w=60` {
		t.Fatalf("first POST: %d %v", r.status, r.header)
	}
	if r := f.ask("POST", "/v1/things", map[string]string{"X-API-Key": f.limited}); r.status != 429 || problemCode(t, r) != "rate_limited" ||
		r.header.Get("Retry-After") == "" || r.header.Get("RateLimit") == "" {
		t.Fatalf("second POST: %d %v %s", r.status, r.header, r.body)
	}
	if r := f.ask("GET", "/v1/things/1", map[string]string{"X-API-Key": f.limited}); r.status != 200 || r.header.Get("X-Keyplane-Scopes") != "things:*" {
		t.Fatalf("a GET that fits: %d %v", r.status, r.header)
	}
	if r := f.ask("GET", "/v1/things/1", map[string]string{"X-API-Key": f.quota}); r.status != 200 {
		t.Fatalf("quota: first: %d", r.status)
	}
	if r := f.ask("GET", "/v1/things/1", map[string]string{"X-API-Key": f.quota}); r.status != 429 || problemCode(t, r) != "quota_exceeded" || r.header.Get("Retry-After") == "" {
		t.Fatalf("quota: second: %d %v", r.status, r.header)
	}
}

// Proxies describe the original request in different headers.
func TestForwardAuthRequestDescriptions(t *testing.T) {
	f := newForwardAuth(t, admit.GateConfig{}, httpapi.ForwardAuthConfig{})
	tok := f.verify
	for _, c := range []struct {
		name         string
		method, path string
		headers      map[string]string
		status       int
	}{
		{"nginx: X-Original-*", "GET", "/v1/forward-auth", map[string]string{"X-Original-Method": "POST", "X-Original-URI": "/v1/things"}, 403},
		{"nginx: method of the call when none is sent", "GET", "/v1/forward-auth", map[string]string{"X-Original-URI": "/v1/things/7"}, 200},
		{"Traefik/Caddy: X-Forwarded-*", "GET", "/v1/forward-auth", map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/v1/things/7"}, 200},
		// nginx's auth_request passes the client's headers on: a client's
		// X-Forwarded-* must not describe another request than nginx's X-Original-*.
		{"nginx: a client's X-Forwarded-Uri", "GET", "/v1/forward-auth", map[string]string{"X-Original-Method": "POST", "X-Original-URI": "/v1/things",
			"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/v1/things/7"}, 400},
		{"nginx: a client's X-Forwarded-Method", "GET", "/v1/forward-auth", map[string]string{"X-Original-Method": "POST", "X-Original-URI": "/v1/things",
			"X-Forwarded-Method": "GET"}, 400},
		{"Caddy: a client's X-Original-URI", "GET", "/v1/forward-auth", map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/v1/things",
			"X-Original-Method": "GET", "X-Original-URI": "/v1/things/7"}, 400},
		{"both, saying the same", "GET", "/v1/forward-auth", map[string]string{"X-Original-Method": "GET", "X-Original-URI": "/v1/things/7",
			"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/v1/things/7"}, 200},
		{"Envoy: the path after ours", "GET", "/v1/forward-auth/v1/things/7?a=b", nil, 200},
		{"Envoy: the method of the call", "POST", "/v1/forward-auth/v1/things", nil, 403},
		{"Envoy: a client's X-Forwarded-Method is ignored", "POST", "/v1/forward-auth/v1/things", map[string]string{"X-Forwarded-Method": "GET"}, 403},
		{"no URI", "GET", "/v1/forward-auth", nil, 400},
		{"not a request URI", "GET", "/v1/forward-auth", map[string]string{"X-Forwarded-Uri": "things"}, 400},
		{"not a method", "GET", "/v1/forward-auth", map[string]string{"X-Forwarded-Method": "get it", "X-Forwarded-Uri": "/v1/things/7"}, 400},
		{"bad mode", "GET", "/v1/forward-auth?mode=apache", map[string]string{"X-Forwarded-Uri": "/v1/things/7"}, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{"X-Keyplane-Token": tok, "X-API-Key": f.reader}
			for k, v := range c.headers {
				h[k] = v
			}
			if r := f.call(c.method, c.path, h); r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
		})
	}
}

// Forward-auth is not an open oracle: only proxies keyplane trusts may ask.
func TestForwardAuthCallers(t *testing.T) {
	f := newForwardAuth(t, admit.GateConfig{}, httpapi.ForwardAuthConfig{})
	ask := map[string]string{"X-Forwarded-Uri": "/v1/things/1", "X-API-Key": f.reader}
	with := func(extra map[string]string) map[string]string {
		h := map[string]string{}
		for k, v := range ask {
			h[k] = v
		}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	for _, c := range []struct {
		name    string
		headers map[string]string
		status  int
	}{
		{"no token", ask, 401},
		{"a bad token", with(map[string]string{"X-Keyplane-Token": "kpt_000000000000000000000000000000000000"}), 401},
		{"the client's key as the token", with(map[string]string{"X-Keyplane-Token": f.reader}), 401},
		{"the operator token in Authorization", with(map[string]string{"Authorization": "Bearer " + f.admin}), 401},
		{"a verify token", with(map[string]string{"X-Keyplane-Token": f.verify}), 200},
		{"an admin token", with(map[string]string{"X-Keyplane-Token": f.admin}), 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.call("GET", "/v1/forward-auth", c.headers)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if c.status == 401 && problemCode(t, r) != "unauthorized" {
				t.Fatalf("body %s", r.body)
			}
		})
	}

	// A trusted peer needs no token, and its X-Forwarded-For is read.
	trusted := newForwardAuth(t, admit.GateConfig{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, httpapi.ForwardAuthConfig{})
	if r := trusted.call("GET", "/v1/forward-auth", map[string]string{"X-Forwarded-Uri": "/v1/things/1", "X-API-Key": trusted.reader}); r.status != 200 {
		t.Fatalf("trusted peer: %d %s", r.status, r.body)
	}
	// 127.0.0.9 is a trusted hop, so the client is the address left of it.
	if r := trusted.call("GET", "/v1/forward-auth", map[string]string{"X-Forwarded-Uri": "/v1/things/1", "X-API-Key": trusted.restricted,
		"X-Forwarded-For": "203.0.113.5, 127.0.0.9"}); r.status != 200 {
		t.Fatalf("client behind two trusted hops: %d %s", r.status, r.body)
	}
	if r := trusted.call("GET", "/v1/forward-auth", map[string]string{"X-Forwarded-Uri": "/v1/things/1", "X-API-Key": trusted.restricted,
		"X-Real-IP": "203.0.113.5"}); r.status != 200 {
		t.Fatalf("X-Real-IP: %d %s", r.status, r.body)
	}
}

// nginx's auth_request passes only 401 and 403 on: everything else becomes a
// 500, so in nginx mode limits and other refusals are mapped.
func TestForwardAuthNginxMode(t *testing.T) {
	for _, c := range []struct {
		name        string
		cfg         httpapi.ForwardAuthConfig
		query       string
		wantLimited int
	}{
		{"?mode=nginx", httpapi.ForwardAuthConfig{}, "?mode=nginx", 403},
		{"server default", httpapi.ForwardAuthConfig{Mode: httpapi.ModeNginx}, "", 403},
		{"configured status", httpapi.ForwardAuthConfig{Mode: httpapi.ModeNginx, NginxLimitedStatus: 401}, "", 401},
		{"?mode=standard overrides the default", httpapi.ForwardAuthConfig{Mode: httpapi.ModeNginx}, "?mode=standard", 429},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newForwardAuth(t, admit.GateConfig{}, c.cfg)
			ask := func(method, uri, key string) response {
				return f.call("GET", "/v1/forward-auth"+c.query, map[string]string{"X-Keyplane-Token": f.verify, "X-Original-Method": method, "X-Original-URI": uri, "X-API-Key": key})
			}
			ask("POST", "/v1/things", f.limited)
			r := ask("POST", "/v1/things", f.limited)
			if r.status != c.wantLimited || problemCode(t, r) != "rate_limited" || r.header.Get("Retry-After") == "" {
				t.Fatalf("limited: %d %v %s", r.status, r.header, r.body)
			}
			if c.wantLimited == 429 {
				return
			}
			for _, tc := range []struct {
				method, uri, key string
				status           int
			}{
				{"GET", "/v1/things/1", f.reader, 200},
				{"GET", "/v1/things/1", "", 401},
				{"POST", "/v1/things", f.reader, 403},
				{"GET", "/v1/open/../things/1", f.reader, 403}, // a 400 elsewhere
			} {
				if r := ask(tc.method, tc.uri, tc.key); r.status != tc.status {
					t.Errorf("%s %s: %d, want %d: %s", tc.method, tc.uri, r.status, tc.status, r.body)
				}
			}
		})
	}
}

func TestForwardAuthUnmatchedNotFound(t *testing.T) {
	rules, err := routes.Parse("r.yaml", []byte("unmatched: not_found\nroutes:\n  - match: GET /a\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessWith(t, teststore.New(t), func(c *httpapi.Config) {
		c.Gate = admit.NewGate(admit.GateConfig{Service: c.Service, Rules: routes.Static(rules)})
	})
	f := &forwardAuth{harness: h}
	key := h.key(h.account(), nil)["key"].(string)
	if r := f.ask("GET", "/b", map[string]string{"X-API-Key": key}); r.status != 404 || problemCode(t, r) != "not_found" {
		t.Fatalf("unmatched: %d %s", r.status, r.body)
	}
	if r := f.ask("GET", "/a", map[string]string{"X-API-Key": key}); r.status != 200 || !strings.Contains(r.header.Get("X-Keyplane-Key-Id"), "key_") {
		t.Fatalf("matched: %d %v", r.status, r.header)
	}
	// Without a rules file, any valid key may call any path.
	plain := newHarness(t)
	pf := &forwardAuth{harness: plain}
	pkey := plain.key(plain.account(), nil)["key"].(string)
	if r := pf.ask("DELETE", "/anything/at/all", map[string]string{"X-API-Key": pkey}); r.status != 200 {
		t.Fatalf("no rules: %d %s", r.status, r.body)
	}
}
