package portal_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/httpapi"
	"github.com/keyplane/keyplane/password"
	"github.com/keyplane/keyplane/portal"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/teststore"
	"github.com/keyplane/keyplane/usage"
)

// clock is a settable time source, so tests can age sessions.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// server is keyplane's HTTP API with the portal, on 127.0.0.1:0.
type server struct {
	t     *testing.T
	url   string
	svc   *service.Service
	store keyplane.Store
	clock *clock
	admin context.Context // acts as an admin operator
	token string          // an admin bearer token
	gate  string          // a verify-role bearer token
	meter *usage.Meter    // flushed when a test says so
	srv   *httptest.Server
	logs  *logBuffer // what the server logged
}

// logBuffer holds a server's log lines; its goroutines write while a test reads.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const pw = "a long enough password"

func newServer(t *testing.T) *server { return newServerWith(t, service.Config{}) }

// newServerWith starts a server whose service has cfg's portal and webhook settings.
func newServerWith(t *testing.T, cfg service.Config) *server {
	t.Helper()
	return newServerAt(t, cfg, "")
}

// newServerAt is newServerWith listening on addr ("" is 127.0.0.1:0).
func newServerAt(t *testing.T, cfg service.Config, addr string) *server {
	t.Helper()
	store := teststore.New(t)
	c := &clock{t: time.Now().UTC()}
	meter := usage.New(store, usage.Config{FlushInterval: time.Hour, Now: c.Now})
	t.Cleanup(func() { meter.Close(context.Background()) })
	svc, err := service.New(store, service.Config{Now: c.Now, Usage: meter, UsageReports: usage.NewReporter(store), Signup: cfg.Signup,
		PasswordParams: password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		WebhookSecrets: cfg.WebhookSecrets, WebhooksAllowPrivate: cfg.WebhooksAllowPrivate, WebhookWake: cfg.WebhookWake})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	p, err := portal.New(portal.Config{Service: svc, Logger: log, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(httpapi.New(httpapi.Config{Service: svc, Store: store, Logger: log, Version: "test", Now: c.Now, Portal: p, SessionCookie: p.CookieName()}))
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Start()
	t.Cleanup(srv.Close)
	admin := keyplane.NewContextWithActor(context.Background(), service.SystemActor)
	tok, err := svc.CreateToken(admin, service.TokenInput{Name: "admin", Role: keyplane.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	gate, err := svc.CreateToken(admin, service.TokenInput{Name: "gateway", Role: keyplane.RoleVerify})
	if err != nil {
		t.Fatal(err)
	}
	return &server{t: t, url: srv.URL, svc: svc, store: store, clock: c, admin: admin, token: tok.Plaintext, gate: gate.Plaintext, meter: meter, srv: srv, logs: logs}
}

func (s *server) account(scopes ...string) *keyplane.Account {
	s.t.Helper()
	a, err := s.svc.CreateAccount(s.admin, service.AccountInput{Name: "Acme Analytics", AllowedScopes: scopes})
	if err != nil {
		s.t.Fatal(err)
	}
	return a
}

var emailSeq struct {
	sync.Mutex
	n int
}

func (s *server) member(accountID string, role keyplane.MemberRole) *keyplane.Member {
	s.t.Helper()
	emailSeq.Lock()
	emailSeq.n++
	email := fmt.Sprintf("%s%d@example.com", role, emailSeq.n)
	emailSeq.Unlock()
	m, err := s.svc.CreateMember(s.admin, accountID, service.MemberInput{Email: email, Role: role, Password: pw})
	if err != nil {
		s.t.Fatal(err)
	}
	return m
}

func (s *server) key(accountID, name string) *service.CreatedKey {
	s.t.Helper()
	k, err := s.svc.CreateKey(s.admin, accountID, service.KeyInput{Name: name})
	if err != nil {
		s.t.Fatal(err)
	}
	return k
}

// browser is an HTTP client with its own cookies that does not follow
// redirects, so tests see each answer.
type browser struct {
	s      *server
	client *http.Client
}

func (s *server) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{s: s, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.s.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func (b *browser) get(path string) page {
	b.s.t.Helper()
	req, _ := http.NewRequest("GET", b.s.url+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) page {
	b.s.t.Helper()
	req, _ := http.NewRequest("POST", b.s.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// api calls the JSON API with the browser's cookies, and the CSRF header when csrf is set.
func (b *browser) api(method, path, body, csrf string) page {
	b.s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, b.s.url+path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	return b.do(req)
}

func (b *browser) signIn(m *keyplane.Member) {
	b.s.t.Helper()
	p := b.post("/portal/signin", url.Values{"email": {m.Email}, "password": {pw}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/portal/keys" {
		b.s.t.Fatalf("sign in: %d %s", p.status, p.body)
	}
}

var csrfPattern = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// csrf reads the session's token from a page, as a script on it would.
func (b *browser) csrf() string {
	b.s.t.Helper()
	p := b.get("/portal/keys")
	m := csrfPattern.FindStringSubmatch(p.body)
	if m == nil {
		b.s.t.Fatalf("no csrf-token meta on the keys page: %d %s", p.status, p.body)
	}
	return m[1]
}

func wantStatus(t *testing.T, p page, status int) {
	t.Helper()
	if p.status != status {
		t.Fatalf("status %d, want %d: %s", p.status, status, p.body)
	}
}

func wantBody(t *testing.T, p page, parts ...string) {
	t.Helper()
	for _, s := range parts {
		if !strings.Contains(p.body, s) {
			t.Fatalf("page lacks %q:\n%s", s, p.body)
		}
	}
}

func wantNotBody(t *testing.T, p page, parts ...string) {
	t.Helper()
	for _, s := range parts {
		if strings.Contains(p.body, s) {
			t.Fatalf("page has %q:\n%s", s, p.body)
		}
	}
}
