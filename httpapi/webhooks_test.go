package httpapi_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane/httpapi"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/teststore"
	"github.com/keyplane/keyplane/webhooks"
)

// newWebhookHarness is a harness whose service has a secrets key and
// admits loopback endpoints, as tests need.
func newWebhookHarness(t *testing.T) *harness {
	key := make([]byte, 32)
	rand.Read(key)
	box, err := webhooks.NewSecretBox(key)
	if err != nil {
		t.Fatal(err)
	}
	return newHarnessWith(t, teststore.New(t), func(cfg *httpapi.Config) {
		svc, err := service.New(cfg.Store, service.Config{WebhookSecrets: box, WebhooksAllowPrivate: true})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Service = svc
	})
}

// fieldOf returns the first field a problem names.
func fieldOf(t *testing.T, r response) string {
	t.Helper()
	var p struct {
		Errors []struct{ Field string } `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil || len(p.Errors) == 0 {
		t.Fatalf("problem without fields: %s", r.body)
	}
	return p.Errors[0].Field
}

func TestWebhookEndpointsAPI(t *testing.T) {
	h := newWebhookHarness(t)
	acc := h.account()
	created := h.want(h.admin_("POST", "/v1/accounts/"+acc+"/webhooks", map[string]any{
		"url": "https://hooks.example.com/keyplane", "events": []string{"key.revoked", "key.*", "invoice.paid"}, "description": "Ops"}), 201)
	id, _ := created["id"].(string)
	secret, _ := created["secret"].(string)
	if !strings.HasPrefix(id, "whk_") || !strings.HasPrefix(secret, "whsec_") || created["account_id"] != acc || created["enabled"] != true {
		t.Fatalf("created %v", created)
	}
	got := h.want(h.admin_("GET", "/v1/webhooks/"+id, nil), 200)
	if _, ok := got["secret"]; ok || got["url"] != "https://hooks.example.com/keyplane" {
		t.Fatalf("read back %v", got)
	}
	list := h.want(h.admin_("GET", "/v1/accounts/"+acc+"/webhooks", nil), 200)
	if data := list["data"].([]any); len(data) != 1 || data[0].(map[string]any)["id"] != id {
		t.Fatalf("list %v", list)
	}
	patched := h.want(h.admin_("PATCH", "/v1/webhooks/"+id, map[string]any{"events": []string{}, "enabled": false}), 200)
	if len(patched["events"].([]any)) != 0 || patched["enabled"] != false {
		t.Fatalf("patched %v", patched)
	}
	rotated := h.want(h.admin_("POST", "/v1/webhooks/"+id+"/rotate-secret", map[string]any{"overlap_seconds": 3600}), 200)
	if s, _ := rotated["secret"].(string); !strings.HasPrefix(s, "whsec_") || s == secret {
		t.Fatalf("rotated %v", rotated)
	}
	h.want(h.admin_("POST", "/v1/webhooks/"+id+"/rotate-secret", nil), 200) // default overlap
	r := h.admin_("POST", "/v1/webhooks/"+id+"/test", nil)
	if r.status != 409 {
		t.Fatalf("test of a disabled endpoint: %d %s", r.status, r.body)
	}
	h.want(h.admin_("PATCH", "/v1/webhooks/"+id, map[string]any{"enabled": true}), 200)
	test := h.want(h.admin_("POST", "/v1/webhooks/"+id+"/test", nil), 202)
	msgs := h.want(h.admin_("GET", "/v1/webhooks/"+id+"/messages", nil), 200)
	data := msgs["data"].([]any)
	if len(data) != 1 || data[0].(map[string]any)["id"] != test["id"] || data[0].(map[string]any)["status"] != "pending" ||
		data[0].(map[string]any)["type"] != "webhook.test" {
		t.Fatalf("messages %s", msgs)
	}
	r = h.admin_("POST", "/v1/webhooks/"+id+"/recover", map[string]any{"since": time.Now().Add(-time.Hour)})
	if r.status != 202 {
		t.Fatalf("recover: %d %s", r.status, r.body)
	}
	h.want(h.admin_("POST", fmt.Sprintf("/v1/messages/%s/retry", test["id"]), nil), 202)

	// The operator's own endpoints.
	op := h.want(h.admin_("POST", "/v1/webhooks", map[string]any{"url": "https://ops.example.com/hooks"}), 201)
	if _, ok := op["account_id"]; ok {
		t.Fatalf("operator endpoint %v", op)
	}
	ops := h.want(h.admin_("GET", "/v1/webhooks", nil), 200)
	if data := ops["data"].([]any); len(data) != 1 || data[0].(map[string]any)["id"] != op["id"] {
		t.Fatalf("operator list %v", ops)
	}
	if r := h.admin_("DELETE", "/v1/webhooks/"+id, nil); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	h.want(h.admin_("GET", "/v1/webhooks/"+id, nil), 404)
	if r := h.do(h.verify, "GET", "/v1/webhooks/"+op["id"].(string), nil); r.status != 403 {
		t.Fatalf("a verify token read an endpoint: %d", r.status)
	}
}

func TestWebhookBadInput(t *testing.T) {
	h := newWebhookHarness(t)
	acc := h.account()
	path := "/v1/accounts/" + acc + "/webhooks"
	for _, tc := range []struct {
		name  string
		body  string
		field string
	}{
		{"malformed URL", `{"url": "not a url"}`, "url"},
		{"ftp", `{"url": "ftp://hooks.example.com/"}`, "url"},
		{"credentials", `{"url": "https://u:p@hooks.example.com/"}`, "url"},
		{"unknown keyplane event", `{"url": "https://hooks.example.com/", "events": ["key.revokd"]}`, "events[0]"},
		{"bad event shape", `{"url": "https://hooks.example.com/", "events": ["key.ok", "Invoice Paid"]}`, "events[0]"},
		{"bad prefix", `{"url": "https://hooks.example.com/", "events": ["*"]}`, "events[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.admin_("POST", path, tc.body)
			if r.status != 400 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if f := fieldOf(t, r); f != tc.field && !(tc.name == "bad event shape" && f == "events[1]") {
				t.Fatalf("field %q, want %q", f, tc.field)
			}
		})
	}
	r := h.admin_("POST", path, `{"url": "https://hooks.example.com/", "extra": 1}`)
	if r.status != 400 && r.status != 422 {
		t.Fatalf("unknown field: %d", r.status)
	}
	// Private addresses need --webhooks-allow-private: a server without it.
	strict := newHarness(t)
	sacc := strict.account()
	key := make([]byte, 32)
	rand.Read(key)
	box, _ := webhooks.NewSecretBox(key)
	svc, _ := service.New(strict.store, service.Config{WebhookSecrets: box})
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Service: svc, Store: strict.store, Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(srv.Close)
	strict.url = srv.URL
	for _, url := range []string{"https://127.0.0.1/hook", "https://10.0.0.8/hook", "http://hooks.example.com/", "https://localhost/"} {
		r := strict.admin_("POST", "/v1/accounts/"+sacc+"/webhooks", map[string]any{"url": url})
		if r.status != 400 || fieldOf(t, r) != "url" {
			t.Errorf("%s: %d %s", url, r.status, r.body)
		}
	}
	// A server without a secrets key refuses webhooks clearly.
	if r := newHarness(t).admin_("POST", "/v1/webhooks", map[string]any{"url": "https://hooks.example.com/"}); r.status != 503 ||
		!strings.Contains(string(r.body), "--secrets-key-file") {
		t.Fatalf("without a secrets key: %d %s", r.status, r.body)
	}
	r = h.admin_("POST", "/v1/webhooks/whk_01jzzzzzzzzzzzzzzzzzzzzzzz/rotate-secret", map[string]any{"overlap_seconds": 604801})
	if r.status != 400 && r.status != 422 {
		t.Fatalf("overlap over 7 days: %d", r.status)
	}
}

func TestWebhookCapAndIsolation(t *testing.T) {
	h := newWebhookHarness(t)
	acc, other := h.account(), h.account()
	var first string
	for i := range 20 {
		r := h.want(h.admin_("POST", "/v1/accounts/"+acc+"/webhooks", map[string]any{"url": fmt.Sprintf("https://hooks.example.com/%d", i)}), 201)
		if i == 0 {
			first = r["id"].(string)
		}
	}
	r := h.admin_("POST", "/v1/accounts/"+acc+"/webhooks", map[string]any{"url": "https://hooks.example.com/21"})
	if r.status != 400 {
		t.Fatalf("the 21st endpoint: %d %s", r.status, r.body)
	}
	h.want(h.admin_("POST", "/v1/accounts/"+other+"/webhooks", map[string]any{"url": "https://hooks.example.com/x"}), 201)
	h.want(h.admin_("GET", "/v1/accounts/acc_01jzzzzzzzzzzzzzzzzzzzzzzz/webhooks", nil), 404)
	h.want(h.admin_("GET", "/v1/webhooks/whk_01jzzzzzzzzzzzzzzzzzzzzzzz", nil), 404)
	h.want(h.admin_("GET", "/v1/webhooks/kp_live_notanid/messages", nil), 404)
	h.want(h.admin_("POST", "/v1/messages/msg_01jzzzzzzzzzzzzzzzzzzzzzzz/retry", nil), 404)
	h.want(h.admin_("GET", "/v1/webhooks/"+first+"/messages", nil), 200)
}

func TestPublishEvents(t *testing.T) {
	h := newWebhookHarness(t)
	acc := h.account()
	path := "/v1/accounts/" + acc + "/events"
	h.want(h.admin_("POST", "/v1/accounts/"+acc+"/webhooks", map[string]any{"url": "https://hooks.example.com/", "events": []string{"invoice.*"}}), 201)
	first := h.want(h.admin_("POST", path, map[string]any{"type": "invoice.paid", "data": map[string]any{"invoice": "in_1", "amount": 4200},
		"idempotency_key": "in_1-paid"}), 202)
	id, _ := first["id"].(string)
	if !strings.HasPrefix(id, "msg_") {
		t.Fatalf("published %v", first)
	}
	// The same publication again: the same message, nothing new.
	again := h.want(h.admin_("POST", path, `{"type": "invoice.paid", "data": {"invoice":"in_1",  "amount":4200}, "idempotency_key": "in_1-paid"}`), 202)
	if again["id"] != id || again["duplicate"] != true {
		t.Fatalf("repeat %v", again)
	}
	r := h.admin_("POST", path, map[string]any{"type": "invoice.paid", "data": map[string]any{"invoice": "in_2"}, "idempotency_key": "in_1-paid"})
	if r.status != 409 || fieldOf(t, r) != "idempotency_key" {
		t.Fatalf("reuse with other data: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"keyplane's prefix", map[string]any{"type": "key.revoked", "data": map[string]any{}}, "type"},
		{"usage prefix", map[string]any{"type": "usage.daily", "data": map[string]any{}}, "type"},
		{"one segment", map[string]any{"type": "invoice", "data": map[string]any{}}, "type"},
		{"upper case", map[string]any{"type": "Invoice.Paid", "data": map[string]any{}}, "type"},
		{"data over 64 KiB", map[string]any{"type": "invoice.paid", "data": map[string]any{"blob": strings.Repeat("a", 65<<10)}}, "data"},
	} {
		r := h.admin_("POST", path, tc.body)
		if r.status != 400 {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
			continue
		}
		if f := fieldOf(t, r); f != tc.field && f != "body."+tc.field {
			t.Errorf("%s: field %q, want %q", tc.name, f, tc.field)
		}
	}
	r = h.admin_("POST", path, `{"type": "invoice.paid", "data": [1, 2]}`)
	if r.status != 400 && r.status != 422 {
		t.Fatalf("data not an object: %d %s", r.status, r.body)
	}
	h.want(h.admin_("POST", "/v1/accounts/acc_01jzzzzzzzzzzzzzzzzzzzzzzz/events", map[string]any{"type": "invoice.paid", "data": map[string]any{}}), 404)
	// Concurrent publications with one key: one message.
	var wg sync.WaitGroup
	ids := make(chan string, 8)
	for range 8 {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", h.url+path, bytes.NewReader([]byte(`{"type":"invoice.sent","data":{"n":1},"idempotency_key":"race"}`)))
			req.Header.Set("Authorization", "Bearer "+h.admin)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var out struct{ ID string }
			json.NewDecoder(resp.Body).Decode(&out)
			ids <- out.ID
		})
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	if len(seen) != 1 {
		t.Fatalf("concurrent publications with one idempotency key made %d messages", len(seen))
	}
}
