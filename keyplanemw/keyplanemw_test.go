package keyplanemw_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/grpcapi"
	"github.com/keyplane/keyplane/httpapi"
	"github.com/keyplane/keyplane/keyplanemw"
	"github.com/keyplane/keyplane/quota"
	"github.com/keyplane/keyplane/ratelimit"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/tcpproxy"
	"github.com/keyplane/keyplane/teststore"
	"github.com/keyplane/keyplane/usage"
)

// keyplaneServer is a real keyplane (HTTP and gRPC API on one port) on
// 127.0.0.1, as keyplane serve runs it.
type keyplaneServer struct {
	srv   *httptest.Server
	svc   *service.Service
	meter *usage.Meter
	token string // role verify
	admin string
	sys   context.Context
}

func newKeyplane(t testing.TB) *keyplaneServer {
	t.Helper()
	store := teststore.New(t)
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
	log := slog.New(slog.DiscardHandler)
	mux := http.NewServeMux()
	grpcapi.New(grpcapi.Config{Service: svc, Logger: log}).Register(mux)
	mux.Handle("/", httpapi.New(httpapi.Config{Service: svc, Store: store, Version: "test", Logger: log}))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	sys := keyplane.NewContextWithActor(context.Background(), service.SystemActor)
	tok, err := svc.CreateToken(sys, service.TokenInput{Name: "middleware", Role: keyplane.RoleVerify})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := svc.CreateToken(sys, service.TokenInput{Name: "admin", Role: keyplane.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	return &keyplaneServer{srv: srv, svc: svc, meter: meter, token: tok.Plaintext, admin: admin.Plaintext, sys: sys}
}

// key creates an account allowed every scope and a key in it.
func (k *keyplaneServer) key(t testing.TB, in service.KeyInput) *service.CreatedKey {
	t.Helper()
	acc, err := k.svc.CreateAccount(k.sys, service.AccountInput{Name: "Acme", AllowedScopes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	if in.Name == "" {
		in.Name = "test"
	}
	created, err := k.svc.CreateKey(k.sys, acc.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	return created
}

// countingVerifier counts the requests that reach keyplane.
type countingVerifier struct {
	keyplanemw.Verifier
	calls atomic.Int64
}

func (c *countingVerifier) Verify(ctx context.Context, req keyplanemw.VerifyRequest) (*keyplanemw.Result, error) {
	c.calls.Add(1)
	return c.Verifier.Verify(ctx, req)
}

// api is the operator's handler: it answers with the identity it was given.
var api = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	id, ok := keyplanemw.FromContext(r.Context())
	if !ok {
		w.Header().Set("X-No-Identity", "1")
		w.WriteHeader(http.StatusAccepted)
		return
	}
	json.NewEncoder(w).Encode(id)
})

type answer struct {
	status int
	header http.Header
	body   string
}

func (a answer) identity(t *testing.T) keyplanemw.Identity {
	t.Helper()
	var id keyplanemw.Identity
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if err := json.Unmarshal([]byte(a.body), &id); err != nil {
		t.Fatalf("%s: %v", a.body, err)
	}
	return id
}

// problem checks a refusal: its status and problem details code.
func (a answer) problem(t *testing.T, status int, code string) {
	t.Helper()
	var p struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
	}
	if a.status != status || a.header.Get("Content-Type") != "application/problem+json" || json.Unmarshal([]byte(a.body), &p) != nil || p.Code != code || p.Status != status {
		t.Fatalf("got %d %s %s, want %d problem %s", a.status, a.header.Get("Content-Type"), a.body, status, code)
	}
}

// call sends one request through the middleware to the operator's API.
func call(t *testing.T, h http.Handler, method, path string, header ...string) answer {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest(method, srv.URL+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func mustNew(t *testing.T, cfg keyplanemw.Config) func(http.Handler) http.Handler {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	mw, err := keyplanemw.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return mw
}

func TestValidKeyAndIdentity(t *testing.T) {
	kp := newKeyplane(t)
	k := kp.key(t, service.KeyInput{Scopes: []string{"things:read"}, Metadata: json.RawMessage(`{"tier":"gold"}`)})
	h := mustNew(t, keyplanemw.Config{ServerURL: kp.srv.URL, Token: kp.token})(api)
	for _, header := range [][]string{{"X-API-Key", k.Plaintext}, {"Authorization", "Bearer " + k.Plaintext}} {
		id := call(t, h, "GET", "/things/1", header...).identity(t)
		if id.KeyID != k.ID || id.AccountID != k.AccountID || id.Name != "test" || id.Environment != "live" ||
			len(id.Scopes) != 1 || id.Scopes[0] != "things:read" || string(id.Metadata) != `{"tier":"gold"}` {
			t.Fatalf("identity %+v", id)
		}
	}
}

func TestRefusals(t *testing.T) {
	kp := newKeyplane(t)
	k := kp.key(t, service.KeyInput{Scopes: []string{"things:read"}})
	revoked := kp.key(t, service.KeyInput{})
	if _, err := kp.svc.RevokeKey(kp.sys, revoked.ID); err != nil {
		t.Fatal(err)
	}
	scope, err := keyplanemw.ScopeByRoute(map[string]string{"GET /things/{id}": "things:read", "POST /things": "things:write"})
	if err != nil {
		t.Fatal(err)
	}
	h := mustNew(t, keyplanemw.Config{ServerURL: kp.srv.URL, Token: kp.token, Scope: scope})(api)

	a := call(t, h, "GET", "/things/1")
	a.problem(t, 401, "missing_key")
	if a.header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without WWW-Authenticate")
	}
	call(t, h, "GET", "/things/1", "X-API-Key", "kp_live_nonsense").problem(t, 401, "not_found")
	call(t, h, "GET", "/things/1", "X-API-Key", strings.Repeat("k", 300)).problem(t, 401, "not_found")
	call(t, h, "GET", "/things/1", "X-API-Key", revoked.Plaintext).problem(t, 401, "revoked")
	call(t, h, "POST", "/things", "X-API-Key", k.Plaintext).problem(t, 403, "insufficient_scope")
	// A path written another way needs the scope of the route it leads to.
	call(t, h, "POST", "//things", "X-API-Key", k.Plaintext).problem(t, 403, "insufficient_scope")
	call(t, h, "POST", "/x/../things", "X-API-Key", k.Plaintext).problem(t, 403, "insufficient_scope")
	call(t, h, "GET", "/things/1", "X-API-Key", k.Plaintext).identity(t)
	call(t, h, "GET", "/elsewhere", "X-API-Key", k.Plaintext).identity(t) // no route, no scope

	restricted := kp.key(t, service.KeyInput{AllowedCIDRs: []string{"203.0.113.0/24"}})
	call(t, h, "GET", "/things/1", "X-API-Key", restricted.Plaintext).problem(t, 403, "forbidden") // the test client is 127.0.0.1

	if _, err := keyplanemw.ScopeByRoute(map[string]string{"GET /a/{": "x"}); err == nil {
		t.Fatal("a bad pattern was accepted")
	}
}

func TestRateLimited(t *testing.T) {
	kp := newKeyplane(t)
	limit := int64(2)
	k := kp.key(t, service.KeyInput{RateLimits: []keyplane.RateLimitPolicy{{Name: "default", Limit: &limit, WindowSeconds: 60, Algorithm: keyplane.TokenBucket}}})
	v := &countingVerifier{Verifier: keyplanemw.NewHTTPVerifier(kp.srv.URL, kp.token, nil)}
	h := mustNew(t, keyplanemw.Config{Verifier: v})(api)

	for i, remaining := range []string{"1", "0"} {
		a := call(t, h, "GET", "/things", "X-API-Key", k.Plaintext)
		a.identity(t)
		if a.header.Get("X-RateLimit-Remaining") != remaining || a.header.Get("X-RateLimit-Limit") != "2" ||
			a.header.Get("RateLimit-Policy") != `"default";q=2;w=60` || !strings.HasPrefix(a.header.Get("RateLimit"), `"default";r=`+remaining+";t=") {
			t.Fatalf("request %d: headers %v", i, a.header)
		}
	}
	a := call(t, h, "GET", "/things", "X-API-Key", k.Plaintext)
	a.problem(t, 429, "rate_limited")
	if ra := a.header.Get("Retry-After"); ra == "" || ra == "0" || a.header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("429 headers %v", a.header)
	}
	// A metered key is never answered from the cache: keyplane counted each request.
	if n := v.calls.Load(); n != 3 {
		t.Fatalf("%d verifications for 3 requests of a rate-limited key", n)
	}

	// A quota is metered too.
	q := kp.key(t, service.KeyInput{Quota: &keyplane.Quota{Limit: 1, Period: keyplane.QuotaDay}})
	call(t, h, "GET", "/things", "X-API-Key", q.Plaintext).identity(t)
	a = call(t, h, "GET", "/things", "X-API-Key", q.Plaintext)
	a.problem(t, 429, "quota_exceeded")
	if a.header.Get("Retry-After") == "" {
		t.Fatal("quota refusal without Retry-After")
	}
}

// settableClock is the middleware's clock in tests.
type settableClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *settableClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *settableClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestRevocationWithinTTL(t *testing.T) {
	kp := newKeyplane(t)
	k := kp.key(t, service.KeyInput{})
	clock := &settableClock{now: time.Now()}
	v := &countingVerifier{Verifier: keyplanemw.NewHTTPVerifier(kp.srv.URL, kp.token, nil)}
	h := mustNew(t, keyplanemw.Config{Verifier: v, CacheTTL: 10 * time.Second, Now: clock.Now})(api)

	for range 3 {
		call(t, h, "GET", "/", "X-API-Key", k.Plaintext).identity(t)
	}
	if n := v.calls.Load(); n != 1 {
		t.Fatalf("%d verifications for 3 requests of an unmetered key: the cache is not used", n)
	}
	if _, err := kp.svc.RevokeKey(kp.sys, k.ID); err != nil {
		t.Fatal(err)
	}
	// Within the TTL the cached answer stands (the documented bound) …
	clock.Advance(9 * time.Second)
	call(t, h, "GET", "/", "X-API-Key", k.Plaintext).identity(t)
	// … and at the TTL keyplane is asked again.
	clock.Advance(time.Second)
	call(t, h, "GET", "/", "X-API-Key", k.Plaintext).problem(t, 401, "revoked")
	// Refusals are not cached: every later request asks too.
	call(t, h, "GET", "/", "X-API-Key", k.Plaintext).problem(t, 401, "revoked")
	if n := v.calls.Load(); n != 3 {
		t.Fatalf("%d verifications, want 3", n)
	}

	// Without a cache, revocation is seen at once.
	k2 := kp.key(t, service.KeyInput{})
	h = mustNew(t, keyplanemw.Config{ServerURL: kp.srv.URL, Token: kp.token, CacheTTL: -1})(api)
	call(t, h, "GET", "/", "X-API-Key", k2.Plaintext).identity(t)
	kp.svc.RevokeKey(kp.sys, k2.ID)
	call(t, h, "GET", "/", "X-API-Key", k2.Plaintext).problem(t, 401, "revoked")
}

// A cached answer never outlives the key's expiry.
func TestCacheStopsAtExpiry(t *testing.T) {
	kp := newKeyplane(t)
	expires := time.Now().Add(time.Second)
	k := kp.key(t, service.KeyInput{ExpiresAt: &expires})
	h := mustNew(t, keyplanemw.Config{ServerURL: kp.srv.URL, Token: kp.token, CacheTTL: time.Hour})(api)
	call(t, h, "GET", "/", "X-API-Key", k.Plaintext).identity(t)
	time.Sleep(time.Until(expires) + 50*time.Millisecond)
	call(t, h, "GET", "/", "X-API-Key", k.Plaintext).problem(t, 401, "expired")
}

func TestKeyplaneDown(t *testing.T) {
	kp := newKeyplane(t)
	k := kp.key(t, service.KeyInput{})
	url := kp.srv.URL
	kp.srv.Close()

	a := call(t, mustNew(t, keyplanemw.Config{ServerURL: url, Token: kp.token})(api), "GET", "/", "X-API-Key", k.Plaintext)
	a.problem(t, 503, "unavailable")
	if a.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	a = call(t, mustNew(t, keyplanemw.Config{ServerURL: url, Token: kp.token, FailOpen: true})(api), "GET", "/", "X-API-Key", k.Plaintext)
	if a.status != http.StatusAccepted || a.header.Get("X-No-Identity") != "1" {
		t.Fatalf("fail-open: %d %v", a.status, a.header)
	}
}

// A token keyplane refuses is the operator's mistake, not the client's: 503.
func TestBadToken(t *testing.T) {
	kp := newKeyplane(t)
	k := kp.key(t, service.KeyInput{})
	call(t, mustNew(t, keyplanemw.Config{ServerURL: kp.srv.URL, Token: "kpt_wrong"})(api), "GET", "/", "X-API-Key", k.Plaintext).problem(t, 503, "unavailable")
	if _, err := keyplanemw.New(keyplanemw.Config{ServerURL: kp.srv.URL}); err == nil {
		t.Fatal("no token accepted")
	}
}

// The gRPC API as the transport: Connect protocol, and gRPC over h2c.
func TestConnectVerifier(t *testing.T) {
	kp := newKeyplane(t)
	limit := int64(1)
	k := kp.key(t, service.KeyInput{Scopes: []string{"things:read"}, Metadata: json.RawMessage(`{"tier":"gold"}`)})
	limited := kp.key(t, service.KeyInput{RateLimits: []keyplane.RateLimitPolicy{{Name: "default", Limit: &limit, WindowSeconds: 60, Algorithm: keyplane.SlidingWindow}}})
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(h2c.CloseIdleConnections)
	for name, v := range map[string]keyplanemw.Verifier{
		"connect": keyplanemw.NewConnectVerifier(kp.srv.URL, kp.token, nil),
		"grpc":    keyplanemw.NewConnectVerifier(kp.srv.URL, kp.token, &http.Client{Transport: h2c}, connect.WithGRPC()),
	} {
		t.Run(name, func(t *testing.T) {
			h := mustNew(t, keyplanemw.Config{Verifier: v, CacheTTL: -1, Scope: func(*http.Request) string { return "things:read" }})(api)
			id := call(t, h, "GET", "/", "X-API-Key", k.Plaintext).identity(t)
			if id.KeyID != k.ID || id.Environment != "live" || string(id.Metadata) != `{"tier":"gold"}` || id.Scopes[0] != "things:read" {
				t.Fatalf("identity %+v", id)
			}
			call(t, h, "GET", "/", "X-API-Key", "kp_live_nonsense").problem(t, 401, "not_found")
			call(t, h, "GET", "/", "X-API-Key", limited.Plaintext).problem(t, 403, "insufficient_scope")
		})
	}
	h := mustNew(t, keyplanemw.Config{Verifier: keyplanemw.NewConnectVerifier(kp.srv.URL, kp.token, nil)})(api)
	if a := call(t, h, "GET", "/", "X-API-Key", limited.Plaintext); a.header.Get("RateLimit-Policy") != `"default";q=1;w=60` {
		t.Fatalf("headers over gRPC: %v", a.header)
	}
	call(t, h, "GET", "/", "X-API-Key", limited.Plaintext).problem(t, 429, "rate_limited")
	call(t, mustNew(t, keyplanemw.Config{Verifier: keyplanemw.NewConnectVerifier(kp.srv.URL, "kpt_wrong", nil)})(api), "GET", "/", "X-API-Key", k.Plaintext).problem(t, 503, "unavailable")
}

type recordedUsage struct {
	mu     sync.Mutex
	events []keyplanemw.UsageEvent
}

func (r *recordedUsage) Report(ev keyplanemw.UsageEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func TestUsageEvents(t *testing.T) {
	kp := newKeyplane(t)
	k := kp.key(t, service.KeyInput{Scopes: []string{"a:read"}})
	events := &recordedUsage{}
	mux := http.NewServeMux()
	mux.Handle("GET /things/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	mux.Handle("POST /things", api)
	scope := func(r *http.Request) string {
		if r.Method == "POST" {
			return "a:write"
		}
		return ""
	}
	h := mustNew(t, keyplanemw.Config{ServerURL: kp.srv.URL, Token: kp.token, Usage: events, Scope: scope,
		Endpoint: func(r *http.Request) string { return r.Method + " /things" }})(mux)
	call(t, h, "GET", "/things/7", "X-API-Key", k.Plaintext)
	call(t, h, "GET", "/things/8", "X-API-Key", k.Plaintext) // answered from the cache
	call(t, h, "POST", "/things", "X-API-Key", k.Plaintext)
	call(t, h, "GET", "/things/8", "X-API-Key", "kp_live_nonsense") // no key id: not reported
	if len(events.events) != 3 {
		t.Fatalf("events %+v", events.events)
	}
	for i, want := range []struct {
		code, endpoint string
		status         int
		verified       bool
	}{{"VALID", "GET /things", 418, true}, {"VALID", "GET /things", 418, false}, {"INSUFFICIENT_SCOPE", "POST /things", 403, true}} {
		ev := events.events[i]
		if ev.KeyID != k.ID || ev.AccountID != k.AccountID || ev.Code != want.code || ev.Status != want.status || ev.Endpoint != want.endpoint ||
			ev.Verified != want.verified || ev.Latency < 0 || ev.Time.IsZero() {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
}

// The batcher's events reach keyplane's usage analytics through POST /v1/usage:
// the statuses of the requests keyplane verified, and their latencies.
func TestUsageBatcher(t *testing.T) {
	kp := newKeyplane(t)
	k := kp.key(t, service.KeyInput{})
	proxy := tcpproxy.Start(t, strings.TrimPrefix(kp.srv.URL, "http://"))
	batcher := keyplanemw.NewUsageBatcher("http://"+proxy.Addr(), kp.token, keyplanemw.UsageBatcherConfig{FlushInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { batcher.Close(context.Background()) })
	status := http.StatusOK
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		w.WriteHeader(status)
	})
	verifyEach := mustNew(t, keyplanemw.Config{ServerURL: kp.srv.URL, Token: kp.token, Usage: batcher, CacheTTL: -1})(handler)
	call(t, verifyEach, "GET", "/a", "X-API-Key", k.Plaintext)
	status = http.StatusServiceUnavailable
	call(t, verifyEach, "GET", "/a", "X-API-Key", k.Plaintext)
	call(t, verifyEach, "GET", "/a", "X-API-Key", "kp_live_nonsense")

	// keyplane unreachable: the events wait for the next flush.
	proxy.Down()
	if err := batcher.Flush(context.Background()); err == nil {
		t.Fatal("a flush to a keyplane that is down succeeded")
	}
	proxy.Up(t)
	if err := batcher.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := kp.meter.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", kp.srv.URL+"/v1/keys/"+k.ID+"/usage?granularity=minute", nil)
	req.Header.Set("Authorization", "Bearer "+kp.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep struct {
		Totals struct {
			Requests, Successes, Errors int
			Latency                     struct {
				Count int     `json:"count"`
				P50   float64 `json:"p50"`
			} `json:"latency_ms"`
		} `json:"totals"`
		TopEndpoints []struct {
			Endpoint string `json:"endpoint"`
		} `json:"top_endpoints"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	tot := rep.Totals
	if tot.Requests != 2 || tot.Successes != 1 || tot.Errors != 1 || tot.Latency.Count != 2 || tot.Latency.P50 < 2 ||
		len(rep.TopEndpoints) != 1 || rep.TopEndpoints[0].Endpoint != "GET" {
		t.Fatalf("usage %+v", rep)
	}
}
