package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/admit"
	"github.com/keyplane/keyplane/gateway"
	"github.com/keyplane/keyplane/ratelimit"
	"github.com/keyplane/keyplane/routes"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/teststore"
)

const rules = `routes:
  - match: GET /v1/things/{id}
    scope: things:read
  - match: POST /v1/things
    scope: things:write
  - match: /v1/stream/
    scope: things:read
    cost: 0
  - match: GET /v1/reports/{id}
    scope: things:read
    upstream: %s
`

// recorder keeps the usage events the gateway reports.
type recorder struct {
	mu     sync.Mutex
	events []keyplane.UsageEvent
}

func (r *recorder) Record(ev keyplane.UsageEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) RecordVerification(k *keyplane.Key, endpoint string, at time.Time, code keyplane.VerifyCode) {
	r.Record(keyplane.UsageEvent{KeyID: k.ID, AccountID: k.AccountID, Endpoint: endpoint, Time: at, Code: code})
}

func (r *recorder) outcomes() []keyplane.UsageEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []keyplane.UsageEvent
	for _, ev := range r.events {
		if ev.Status != 0 {
			out = append(out, ev)
		}
	}
	return out
}

type env struct {
	t              *testing.T
	url            string // the gateway
	upstream       *httptest.Server
	reader, writer string // keys: things:read; things:* limited to 2 a minute
	usage          *recorder
}

// newEnv runs the gateway in front of upstream, with a second upstream
// (reports) for the route that names its own.
func newEnv(t *testing.T, upstream http.Handler, trusted ...netip.Prefix) *env {
	t.Helper()
	store := teststore.New(t)
	limiter := ratelimit.New()
	t.Cleanup(limiter.Close)
	usage := &recorder{}
	svc, err := service.New(store, service.Config{Limiter: limiter, Usage: usage})
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	reports := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "reports saw %s", r.URL.Path)
	}))
	t.Cleanup(reports.Close)
	rs, err := routes.Parse("rules.yaml", []byte(fmt.Sprintf(rules, reports.URL+"/base")))
	if err != nil {
		t.Fatal(err)
	}
	gate := admit.NewGate(admit.GateConfig{Service: svc, Rules: routes.Static(rs), KeyQuery: "api_key", TrustedProxies: trusted})
	upURL, _ := url.Parse(up.URL)
	gw := httptest.NewServer(gateway.New(gateway.Config{Gate: gate, Upstream: upURL, Usage: usage, Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(gw.Close)

	ctx := keyplane.NewContextWithActor(context.Background(), service.SystemActor)
	acc, err := svc.CreateAccount(ctx, service.AccountInput{Name: "a", AllowedScopes: []string{"things:*"}})
	if err != nil {
		t.Fatal(err)
	}
	key := func(in service.KeyInput) string {
		in.Name = "k"
		k, err := svc.CreateKey(ctx, acc.ID, in)
		if err != nil {
			t.Fatal(err)
		}
		return k.Plaintext
	}
	two := int64(2)
	return &env{t: t, url: gw.URL, usage: usage, upstream: up,
		reader: key(service.KeyInput{Scopes: []string{"things:read"}}),
		writer: key(service.KeyInput{Scopes: []string{"things:*"}, RateLimits: []keyplane.RateLimitPolicy{
			{Name: "default", Limit: &two, WindowSeconds: 60, Algorithm: keyplane.TokenBucket}}}),
	}
}

func (e *env) do(method, path string, body io.Reader, header map[string]string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

type echoed struct {
	Method string      `json:"method"`
	URI    string      `json:"uri"`
	Host   string      `json:"host"`
	Header http.Header `json:"header"`
}

// echo answers with what it received, and its own status from ?status=.
func echo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if s := r.URL.Query().Get("status"); s != "" {
		var code int
		fmt.Sscan(s, &code)
		w.WriteHeader(code)
	}
	json.NewEncoder(w).Encode(echoed{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header})
}

func TestGatewayAdmitsStripsAndAddsIdentity(t *testing.T) {
	e := newEnv(t, http.HandlerFunc(echo))
	resp, body := e.do("GET", "/v1/things/7?x=1&api_key=nope&y=2", nil, map[string]string{
		"X-API-Key":             e.reader,
		"Authorization":         "Basic dXBzdHJlYW06c2VjcmV0", // meant for the upstream: kept
		"X-Keyplane-Key-Id":     "key_forged",
		"X-Keyplane-Account-Id": "acc_forged",
		"X-Keyplane-Scopes":     "*",
		"X-Keyplane-Admin":      "true",
		"X-Forwarded-For":       "203.0.113.66", // from an untrusted client: dropped
	})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var got echoed
	json.Unmarshal(body, &got)
	h := got.Header
	if !strings.HasPrefix(h.Get("X-Keyplane-Key-Id"), "key_") || !strings.HasPrefix(h.Get("X-Keyplane-Account-Id"), "acc_") ||
		h.Get("X-Keyplane-Scopes") != "things:read" || len(h.Values("X-Keyplane-Key-Id")) != 1 || h.Get("X-Keyplane-Admin") != "" {
		t.Fatalf("identity headers upstream: %v", h)
	}
	if h.Get("X-Api-Key") != "" || h.Get("Authorization") != "Basic dXBzdHJlYW06c2VjcmV0" {
		t.Fatalf("credentials upstream: %v", h)
	}
	if got.URI != "/v1/things/7?x=1&y=2" {
		t.Fatalf("the key's query parameter reached the upstream: %s", got.URI)
	}
	if h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("X-Forwarded-Host") == "" {
		t.Fatalf("X-Forwarded-*: %v", h)
	}

	// A key in Authorization is removed; in the query parameter too.
	_, body = e.do("GET", "/v1/things/7", nil, map[string]string{"Authorization": "Bearer " + e.reader})
	got = echoed{}
	json.Unmarshal(body, &got)
	if got.Header.Get("Authorization") != "" || got.Header.Get("X-Keyplane-Key-Id") == "" {
		t.Fatalf("bearer key: upstream saw %v", got.Header)
	}
	resp, body = e.do("GET", "/v1/things/7?api_key="+e.reader, nil, nil)
	got = echoed{}
	json.Unmarshal(body, &got)
	if resp.StatusCode != 200 || got.URI != "/v1/things/7" {
		t.Fatalf("query key: %d, upstream saw %s", resp.StatusCode, got.URI)
	}

	// The rate-limit fields reach the client on admitted requests.
	resp, _ = e.do("POST", "/v1/things", strings.NewReader("{}"), map[string]string{"X-API-Key": e.writer})
	if resp.StatusCode != 200 || resp.Header.Get("RateLimit") != `"default";r=1;t=30` || resp.Header.Get("X-RateLimit-Limit") != "2" {
		t.Fatalf("admitted POST: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestGatewayRefusals(t *testing.T) {
	var hits sync.Map
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Store(r.URL.Path, true)
		echo(w, r)
	}))
	for _, c := range []struct {
		name, method, path string
		header             map[string]string
		status             int
		code               string
	}{
		{"no key", "GET", "/v1/things/1", nil, 401, "missing_key"},
		{"unknown key", "GET", "/v1/things/2", map[string]string{"X-API-Key": "kp_live_000000000000000000000000000000000000"}, 401, "not_found"},
		{"wrong scope", "POST", "/v1/things", map[string]string{"X-API-Key": e.reader}, 403, "insufficient_scope"},
		{"no route", "DELETE", "/v1/things/3", map[string]string{"X-API-Key": e.reader}, 403, "no_route"},
		{"dot segments", "GET", "/v1/stream/../things/4", map[string]string{"X-API-Key": e.reader}, 400, "invalid"},
		{"encoded slash", "GET", "/v1/things/5%2Fsecret", map[string]string{"X-API-Key": e.reader}, 400, "invalid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// A raw request: the client would clean /../ itself.
			resp, body := rawRequest(t, e.url, c.method, c.path, c.header)
			if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(body, `"code":"`+c.code+`"`) {
				t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
			}
		})
	}
	e.do("POST", "/v1/things", nil, map[string]string{"X-API-Key": e.writer})
	e.do("POST", "/v1/things", nil, map[string]string{"X-API-Key": e.writer})
	resp, body := e.do("POST", "/v1/things", nil, map[string]string{"X-API-Key": e.writer})
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("RateLimit-Policy") == "" || !strings.Contains(string(body), `"code":"rate_limited"`) {
		t.Fatalf("rate-limited: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	for _, p := range []string{"/v1/things/1", "/v1/things/2", "/v1/things/3", "/v1/things/4", "/v1/things/5/secret"} {
		if _, ok := hits.Load(p); ok {
			t.Errorf("a refused request reached the upstream: %s", p)
		}
	}
}

// rawRequest sends the request line as written, without the client
// cleaning the path.
func rawRequest(t *testing.T, base, method, path string, header map[string]string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n", method, path)
	for k, v := range header {
		fmt.Fprintf(conn, "%s: %s\r\n", k, v)
	}
	fmt.Fprint(conn, "Content-Length: 0\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestGatewayPerRouteUpstreamAndTrustedProxies(t *testing.T) {
	e := newEnv(t, http.HandlerFunc(echo), netip.MustParsePrefix("127.0.0.0/8"))
	resp, body := e.do("GET", "/v1/reports/9", nil, map[string]string{"X-API-Key": e.reader})
	if resp.StatusCode != 200 || string(body) != "reports saw /base/v1/reports/9" {
		t.Fatalf("route upstream: %d %s", resp.StatusCode, body)
	}
	// Behind a trusted proxy, the chain goes on.
	_, body = e.do("GET", "/v1/things/1", nil, map[string]string{"X-API-Key": e.reader, "X-Forwarded-For": "203.0.113.66"})
	var got echoed
	json.Unmarshal(body, &got)
	if got.Header.Get("X-Forwarded-For") != "203.0.113.66, 127.0.0.1" {
		t.Fatalf("X-Forwarded-For from a trusted proxy: %q", got.Header.Get("X-Forwarded-For"))
	}
}

func TestGatewayMetersUpstreamOutcomes(t *testing.T) {
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		echo(w, r)
	}))
	e.do("GET", "/v1/things/1?status=503", nil, map[string]string{"X-API-Key": e.reader})
	e.do("GET", "/v1/things/2", nil, map[string]string{"X-API-Key": e.reader})
	e.do("POST", "/v1/things", nil, map[string]string{"X-API-Key": e.reader}) // refused: no upstream outcome
	out := e.usage.outcomes()
	if len(out) != 2 {
		t.Fatalf("outcomes: %+v", out)
	}
	for i, want := range []int{503, 200} {
		ev := out[i]
		if ev.Status != want || ev.Code != keyplane.VerifyValid || ev.Endpoint != "GET /v1/things/{id}" || ev.Latency < 20*time.Millisecond || !strings.HasPrefix(ev.KeyID, "key_") {
			t.Errorf("outcome %d: %+v", i, ev)
		}
	}
	if n := len(e.usage.events) - len(out); n != 3 {
		t.Errorf("%d verifications metered, want 3", n)
	}
}

func TestGatewayUpstreamDown(t *testing.T) {
	e := newEnv(t, http.HandlerFunc(echo))
	e.upstream.Close()
	resp, body := e.do("GET", "/v1/things/1", nil, map[string]string{"X-API-Key": e.reader})
	if resp.StatusCode != 502 || resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(body), `"code":"bad_gateway"`) {
		t.Fatalf("upstream down: %d %s", resp.StatusCode, body)
	}
	if out := e.usage.outcomes(); len(out) != 1 || out[0].Status != 502 {
		t.Fatalf("outcomes: %+v", out)
	}
}

// A large upload reaches the upstream while the client is still sending:
// each chunk is sent only once the upstream has read the one before, so a
// gateway that buffered the body would never finish.
func TestGatewayStreamsRequestBodies(t *testing.T) {
	const chunk, chunks = 1 << 20, 64 // 64 MiB
	received := make(chan int, chunks)
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, chunk)
		total := 0
		for {
			n, err := io.ReadFull(r.Body, buf)
			total += n
			if n > 0 {
				received <- total
			}
			if err != nil {
				break
			}
			time.Sleep(time.Millisecond) // a slow reader
		}
		fmt.Fprint(w, total)
	}))
	pr, pw := io.Pipe()
	go func() {
		block := make([]byte, chunk)
		for i := range chunks {
			if _, err := pw.Write(block); err != nil {
				return
			}
			select {
			case got := <-received:
				if got != (i+1)*chunk {
					pw.CloseWithError(fmt.Errorf("upstream has %d bytes after chunk %d", got, i))
					return
				}
			case <-time.After(10 * time.Second):
				pw.CloseWithError(fmt.Errorf("chunk %d did not reach the upstream while the client was sending: the body is buffered", i))
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", e.url+"/v1/stream/upload", pr)
	req.Header.Set("X-API-Key", e.reader)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != fmt.Sprint(chunk*chunks) {
		t.Fatalf("upstream read %s bytes", body)
	}
}

// Server-sent events arrive one by one: the upstream sends the next only
// once the client has read the last.
func TestGatewayStreamsServerSentEvents(t *testing.T) {
	const events = 5
	read := make(chan struct{})
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range events {
			fmt.Fprintf(w, "data: event %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-read:
			case <-time.After(10 * time.Second):
				return // the client never saw it: buffered
			case <-r.Context().Done():
				return
			}
		}
	}))
	req, _ := http.NewRequest("GET", e.url+"/v1/stream/events", nil)
	req.Header.Set("X-API-Key", e.reader)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for i := range events {
		deadline := time.AfterFunc(5*time.Second, func() { resp.Body.Close() })
		var line string
		for sc.Scan() {
			if line = sc.Text(); line != "" {
				break
			}
		}
		deadline.Stop()
		if want := fmt.Sprintf("data: event %d", i); line != want {
			t.Fatalf("event %d: %q (%v)", i, line, sc.Err())
		}
		read <- struct{}{}
	}
}

func TestGatewayWebSocket(t *testing.T) {
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Keyplane-Key-Id") == "" || r.Header.Get("X-Api-Key") != "" {
			http.Error(w, "no identity", 400)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(e.url, "http") + "/v1/stream/ws"
	c, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {e.reader}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for i := range 3 {
		msg := fmt.Sprintf("hello %d", i)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || string(got) != "echo: "+msg {
			t.Fatalf("read %q, %v", got, err)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")

	_, resp, err := websocket.Dial(ctx, wsURL, nil)
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("a handshake without a key: %v %v", resp, err)
	}
}
