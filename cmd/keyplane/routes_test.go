package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// forwardAuthStatus asks the server's forward-auth about GET path with key.
func forwardAuthStatus(t *testing.T, s *server, token, key, path string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.addr+"/v1/forward-auth", nil)
	req.Header.Set("X-Keyplane-Token", token)
	req.Header.Set("X-Forwarded-Method", "GET")
	req.Header.Set("X-Forwarded-Uri", path)
	req.Header.Set("X-API-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitForLog waits until the server has logged want.
func waitForLog(t *testing.T, s *server, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(s.logs.String(), want) {
			return
		}
	}
	t.Fatalf("the server never logged %q:\n%s", want, s.logs.String())
}

// TestRoutesReloadOnSIGHUP: new rules take effect on SIGHUP, a bad file is
// reported with its line and the rules in force stay.
func TestRoutesReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "routes.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(rules, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("routes:\n  - match: GET /v1/things/{id}\n    scope: things:read\n")
	s := startServer(t, "--database", filepath.Join(dir, "k.db"), "--routes", rules)
	token := s.token(t)
	acc := s.call(t, token, "POST", "/v1/accounts", map[string]any{"name": "a", "allowed_scopes": []string{"things:*"}}, 201)["id"].(string)
	key := s.call(t, token, "POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "k", "scopes": []string{"things:read"}}, 201)["key"].(string)
	if got := forwardAuthStatus(t, s, token, key, "/v1/things/1"); got != 200 {
		t.Fatalf("before reload: %d", got)
	}
	if got := forwardAuthStatus(t, s, token, key, "/v1/other"); got != 403 {
		t.Fatalf("an unmatched path: %d, want the default deny", got)
	}

	write("routes:\n  - match: GET /v1/things/{id}\n    scope: things:write\n  - match: GET /v1/other\n")
	s.cmd.Process.Signal(syscall.SIGHUP)
	waitForLog(t, s, "route rules reloaded")
	if got := forwardAuthStatus(t, s, token, key, "/v1/things/1"); got != 403 {
		t.Fatalf("after reload, a scope the key lacks: %d", got)
	}
	if got := forwardAuthStatus(t, s, token, key, "/v1/other"); got != 200 {
		t.Fatalf("after reload, a new route: %d", got)
	}

	write("routes:\n  - match: GET /v1/things/{id}\n    scope: things:read\n  - match: GET /v1/things/{name}\n")
	s.cmd.Process.Signal(syscall.SIGHUP)
	waitForLog(t, s, "route rules not reloaded")
	if !strings.Contains(s.logs.String(), rules+":4: match") {
		t.Fatalf("the error does not name the line:\n%s", s.logs.String())
	}
	if got := forwardAuthStatus(t, s, token, key, "/v1/things/1"); got != 403 {
		t.Fatalf("a bad file replaced the rules: %d", got)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitTimeout(s.cmd, 10*time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

func TestServeRejectsBadRulesAndFlags(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("routes:\n  - match: GET /a\n    scopes: a:read\n"), 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--routes", bad}, bad + `:3: unknown field "scopes"`},
		{[]string{"--routes", filepath.Join(dir, "missing.yaml")}, "missing.yaml"},
		{[]string{"--forward-auth-mode", "apache"}, "--forward-auth-mode"},
		{[]string{"--nginx-limited-status", "429"}, "--nginx-limited-status"},
		{[]string{"--trusted-proxies", "10.0.0.0/8,nonsense"}, `"nonsense"`},
		{[]string{"--key-header", "X-Keyplane-Key"}, "--key-header"},
		{[]string{"--key-query", "a b"}, "--key-query"},
		{[]string{"--upstream", "ftp://x"}, "--upstream"},
		{[]string{"--upstream", "http://127.0.0.1:1", "--admin-addr", "nonsense"}, "nonsense"},
	} {
		args := append([]string{"serve", "--addr", "127.0.0.1:0", "--database", filepath.Join(dir, "k.db")}, c.args...)
		if code, _, errOut := runCLI(t, args...); code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, errOut, c.want)
		}
	}
}

// TestGatewayMode runs `serve --upstream`: the gateway on --addr, the API on
// --admin-addr, the route rules reloaded on SIGHUP.
func TestGatewayMode(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s key=%s scopes=%s apikey=%q", r.Method, r.URL.Path, r.Header.Get("X-Keyplane-Key-Id"), r.Header.Get("X-Keyplane-Scopes"), r.Header.Get("X-Api-Key"))
	}))
	defer upstream.Close()
	dir := t.TempDir()
	rules := filepath.Join(dir, "routes.yaml")
	os.WriteFile(rules, []byte("routes:\n  - match: GET /v1/things/{id}\n    scope: things:read\n"), 0o600)
	s := startServer(t, "--database", filepath.Join(dir, "k.db"), "--routes", rules, "--upstream", upstream.URL, "--admin-addr", "127.0.0.1:0")
	waitForLog(t, s, "gateway listening")
	m := regexp.MustCompile(`msg="gateway listening" addr=(\S+)`).FindStringSubmatch(s.logs.String())
	if m == nil || m[1] == s.addr {
		t.Fatalf("gateway address: %v\n%s", m, s.logs.String())
	}
	gw := "http://" + m[1]
	token := s.token(t)
	acc := s.call(t, token, "POST", "/v1/accounts", map[string]any{"name": "a", "allowed_scopes": []string{"things:*"}}, 201)["id"].(string)
	key := s.call(t, token, "POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "k", "scopes": []string{"things:read"}}, 201)["key"].(string)

	get := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", gw+path, nil)
		req.Header.Set("X-API-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get("/v1/things/1"); status != 200 || !strings.HasPrefix(body, "GET /v1/things/1 key=key_") || !strings.HasSuffix(body, `scopes=things:read apikey=""`) {
		t.Fatalf("through the gateway: %d %s", status, body)
	}
	if status, _ := get("/v1/accounts"); status != 403 {
		t.Fatalf("the admin API on the gateway's port: %d, want the rules' default deny", status)
	}

	os.WriteFile(rules, []byte("routes:\n  - match: GET /v1/things/{id}\n    scope: things:write\n"), 0o600)
	s.cmd.Process.Signal(syscall.SIGHUP)
	waitForLog(t, s, "route rules reloaded")
	if status, body := get("/v1/things/1"); status != 403 || !strings.Contains(body, "insufficient_scope") {
		t.Fatalf("after reload: %d %s", status, body)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	if err := waitTimeout(s.cmd, 10*time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, s.logs.String())
	}
}
