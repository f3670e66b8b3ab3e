package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane/postgres/postgrestest"
	"github.com/keyplane/keyplane/redis/redistest"
	"github.com/keyplane/keyplane/tcpproxy"
)

// outageFor is how long the database stays down: longer than the cache TTL
// (30 s), so every cached record's refresh fails during it.
const outageFor = 45 * time.Second

// TestDatabaseOutage stops a PostgreSQL of the test's own for 45 s under
// verify load on two instances, with changes over LISTEN/NOTIFY and over
// Redis. Every verification of a key the instances had seen must stay VALID
// throughout; /readyz reports unready and writes answer 503 meanwhile; after
// the restart writes work, a revocation reaches the other instance at once,
// and the usage counted during the outage is in the database. Then the
// change bus alone goes down for the second instance: a key revoked meanwhile
// is refused within 1 s of the bus's return (the cache TTL, 30 s, cannot
// explain that).
func TestDatabaseOutage(t *testing.T) {
	for _, bus := range []string{"postgres", "redis"} {
		t.Run(bus, func(t *testing.T) {
			t.Parallel()
			pg := postgrestest.StartServer(t)
			dbURL := pg.NewDatabase(t)
			u, _ := url.Parse(dbURL)
			proxy := tcpproxy.Start(t, u.Host) // the second instance reaches the database through it
			u.Host = proxy.Addr()
			args := []string{"--usage-flush-interval", "500ms"}
			var rd *redistest.Server
			if bus == "redis" {
				rd = redistest.StartServer(t)
				args = append(args, "--redis", rd.URL())
			}
			a := startServer(t, append([]string{"--database", dbURL}, args...)...)
			token := a.token(t)
			b := startServer(t, append([]string{"--database", u.String()}, args...)...)
			if got := a.status(t, token, "GET", "/readyz", nil); got != 200 {
				t.Fatalf("readyz before the outage: %d", got)
			}

			acc := a.call(t, token, "POST", "/v1/accounts", map[string]any{"name": "acme", "allowed_scopes": []string{"*"}}, 201)["id"].(string)
			var ids, keys []string
			for range 10 {
				k := a.call(t, token, "POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "k", "scopes": []string{"data:read"}}, 201)
				ids, keys = append(ids, k["id"].(string)), append(keys, k["key"].(string))
			}
			unseen := a.call(t, token, "POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "never verified"}, 201)["key"].(string)

			// Load on both instances from here to the end of the outage.
			var verified, refused atomic.Int64
			var firstRefusal atomic.Value
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for _, s := range []*server{a, b} {
				wg.Go(func() {
					client := &http.Client{Timeout: 10 * time.Second}
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						case <-time.After(20 * time.Millisecond):
						}
						status, out := s.verifyOnce(client, token, keys[i%len(keys)])
						if status == 200 && out == "VALID" {
							verified.Add(1)
							continue
						}
						refused.Add(1)
						firstRefusal.CompareAndSwap(nil, fmt.Sprintf("%s: %d %s", s.addr, status, out))
					}
				})
			}
			for _, s := range []*server{a, b} { // every key cached on both
				for _, k := range keys {
					if got := s.code(t, token, k); got != "VALID" {
						t.Fatalf("before the outage: %s", got)
					}
				}
			}

			pg.Stop(t)
			down := time.Now()
			for _, s := range []*server{a, b} {
				waitUntil(t, "readyz unready during the outage", 10*time.Second, func() bool { return s.status(t, token, "GET", "/readyz", nil) == 503 })
			}
			if got := a.status(t, token, "POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "during"}); got != 503 {
				t.Errorf("creating a key during the outage: %d, want 503", got)
			}
			if status, code := a.verifyOnce(http.DefaultClient, token, unseen); status != 503 {
				t.Errorf("a key this instance never saw, during the outage: %d %s, want 503 (fail closed)", status, code)
			}
			time.Sleep(outageFor - time.Since(down))
			pg.Start(t)
			up := time.Now()
			for _, s := range []*server{a, b} {
				waitUntil(t, "readyz ready after the outage", 10*time.Second, func() bool { return s.status(t, token, "GET", "/readyz", nil) == 200 })
			}
			time.Sleep(time.Second) // load goes on after the recovery too
			close(stop)
			wg.Wait()
			t.Logf("%s: database down %v: %d verifications VALID, %d not", bus, up.Sub(down).Round(time.Second), verified.Load(), refused.Load())
			if n := refused.Load(); n > 0 {
				t.Logf("logs of %s:\n%s\nlogs of %s:\n%s", a.addr, a.logs.String(), b.addr, b.logs.String())
				t.Fatalf("%d verifications of cached keys were not VALID during the outage; first: %v", n, firstRefusal.Load())
			}

			// Writes work again, and a change reaches the other instance at once.
			waitUntil(t, "a write after the outage", 10*time.Second, func() bool {
				return a.status(t, token, "POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "after"}) == 201
			})
			a.call(t, token, "POST", "/v1/keys/"+ids[0]+"/revoke", nil, 200)
			revoked := time.Now()
			waitUntil(t, "the revocation on the other instance", time.Second, func() bool { return b.code(t, token, keys[0]) == "REVOKED" })
			t.Logf("%s: revocation after recovery seen by the other instance in %v", bus, time.Since(revoked).Round(100*time.Microsecond))

			// Usage counted while the database was down reached it after.
			var total float64
			waitUntil(t, "usage flushed after the outage", 10*time.Second, func() bool {
				total = 0
				for _, id := range ids[1:] {
					u := a.call(t, token, "GET", "/v1/keys/"+id+"/usage?from="+down.Add(-time.Hour).UTC().Format(time.RFC3339), nil, 200)
					total += u["totals"].(map[string]any)["requests"].(float64)
				}
				return int64(total) >= verified.Load()*9/10-10 // keys[0] is left out: revoked above
			})

			// The bus alone down for B: a key revoked meanwhile is caught up on.
			if got := b.code(t, token, keys[1]); got != "VALID" {
				t.Fatalf("before the bus outage: %s", got)
			}
			loaded := time.Now()
			if rd != nil {
				rd.Stop(t)
			} else {
				proxy.Down()
			}
			time.Sleep(300 * time.Millisecond) // B notices
			a.call(t, token, "POST", "/v1/keys/"+ids[1]+"/revoke", nil, 200)
			if got := b.code(t, token, keys[1]); got != "VALID" {
				t.Fatalf("while its bus is down B should still serve its cached record: %s", got)
			}
			if rd != nil {
				rd.Start(t)
			} else {
				proxy.Up(t)
			}
			back := time.Now()
			waitUntil(t, "the revocation made while the bus was down", time.Second, func() bool { return b.code(t, token, keys[1]) == "REVOKED" })
			if time.Since(loaded) > 25*time.Second {
				t.Fatalf("the bus phase took %v: the cache TTL could explain the refusal", time.Since(loaded))
			}
			t.Logf("%s: a revocation made while the bus was down refused %v after the bus came back", bus, time.Since(back).Round(time.Millisecond))

			// The outage is in the log twice (start and end), not per request.
			for _, s := range []*server{a, b} {
				waitUntil(t, "the end of the outage logged", 5*time.Second, func() bool { return strings.Contains(s.logs.String(), "outage over") })
				logs := s.logs.String()
				if n := strings.Count(logs, "level=ERROR") + strings.Count(logs, "level=WARN"); n > 20 {
					t.Errorf("%d warnings and errors logged by %s, want a handful:\n%s", n, s.addr, logs)
				}
			}
		})
	}
}

// status sends a request and returns the answer's status code.
func (s *server) status(t *testing.T, token, method, path string, body any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+s.addr+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// verifyOnce verifies key and returns the status and the code (or the problem's detail).
func (s *server) verifyOnce(client *http.Client, token, key string) (int, string) {
	body, _ := json.Marshal(map[string]any{"key": key, "scope": "data:read"})
	req, _ := http.NewRequest("POST", "http://"+s.addr+"/v1/verify", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct{ Code, Detail string }
	json.Unmarshal(raw, &out)
	if resp.StatusCode != 200 {
		return resp.StatusCode, out.Detail
	}
	return 200, out.Code
}

// code verifies key and returns the code; the answer must be 200.
func (s *server) code(t *testing.T, token, key string) string {
	t.Helper()
	status, code := s.verifyOnce(http.DefaultClient, token, key)
	if status != 200 {
		t.Fatalf("verify on %s: %d %s", s.addr, status, code)
	}
	return code
}

// waitUntil polls cond until it holds, failing the test after limit.
func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
