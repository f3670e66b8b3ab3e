package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keyplane/keyplane/postgres/postgrestest"
)

// tryVerify verifies without failing the test: during a shutdown requests
// may be refused. It reports whether the server answered VALID.
func (s *server) tryVerify(client *http.Client, token, key string) bool {
	body, _ := json.Marshal(map[string]any{"key": key, "endpoint": "GET /load"})
	req, _ := http.NewRequest("POST", "http://"+s.addr+"/v1/verify", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return false
	}
	var out struct{ Code string }
	return json.Unmarshal(raw, &out) == nil && out.Code == "VALID"
}

// Usage counted in memory reaches the database on SIGTERM, even with a flush
// interval far longer than the run: every verification the server answered
// while load kept coming is in the usage after a restart.
func TestUsageSurvivesSIGTERMMidLoad(t *testing.T) {
	db := filepath.Join(t.TempDir(), "usage.db")
	s := startServer(t, "--database", db, "--usage-flush-interval", "1h")
	token := s.token(t)
	acc := s.call(t, token, "POST", "/v1/accounts", map[string]any{"name": "Acme"}, 201)["id"].(string)
	key := s.call(t, token, "POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "metered"}, 201)

	var answered atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			client := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				if s.tryVerify(client, token, key["key"].(string)) {
					answered.Add(1)
				}
			}
		})
	}
	for answered.Load() < 300 {
		time.Sleep(5 * time.Millisecond)
	}
	s.cmd.Process.Signal(syscall.SIGTERM) // while the load goes on
	if err := waitTimeout(s.cmd, 20*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, s.logs.String())
	}
	close(stop)
	wg.Wait()
	want := float64(answered.Load())

	s = startServer(t, "--database", db)
	usage := s.call(t, token, "GET", "/v1/keys/"+key["id"].(string)+"/usage?granularity=minute", nil, 200)
	if got := usage["totals"].(map[string]any)["requests"]; got != want {
		t.Fatalf("after SIGTERM mid-load: %v requests metered, %v answered", got, want)
	}
	if got := s.call(t, token, "GET", "/v1/keys/"+key["id"].(string), nil, 200)["total_requests"]; got != want {
		t.Fatalf("after SIGTERM mid-load: total_requests %v, %v answered", got, want)
	}
	t.Logf("%v verifications answered before and during the shutdown; all metered", want)
}

// Two instances on one PostgreSQL database meter into the same rows: N
// verifications spread over both read back as exactly N.
func TestUsageAcrossInstances(t *testing.T) {
	dbURL := postgrestest.NewDatabase(t)
	args := []string{"--database", dbURL, "--usage-flush-interval", "100ms"}
	a := startServer(t, args...)
	token := a.token(t)
	b := startServer(t, args...)
	acc := a.call(t, token, "POST", "/v1/accounts", map[string]any{"name": "Acme"}, 201)["id"].(string)
	key := a.call(t, token, "POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "k"}, 201)
	const n = 400
	var wg sync.WaitGroup
	for w := range 4 {
		s := []*server{a, b}[w%2]
		wg.Go(func() {
			for range n / 4 {
				if code := s.call(t, token, "POST", "/v1/verify", map[string]any{"key": key["key"], "endpoint": "GET /x"}, 200)["code"]; code != "VALID" {
					t.Errorf("verify: %v", code)
					return
				}
			}
		})
	}
	wg.Wait()
	// Within a few flush intervals both instances have written everything.
	var got any
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		rep := b.call(t, token, "GET", "/v1/accounts/"+acc+"/usage?granularity=minute", nil, 200)
		if got = rep["totals"].(map[string]any)["requests"]; got == float64(n) {
			break
		}
	}
	if got != float64(n) {
		t.Fatalf("%v requests metered across two instances, want %d", got, n)
	}
	// And no more arrive later: nothing was counted twice.
	time.Sleep(300 * time.Millisecond)
	if got := a.call(t, token, "GET", "/v1/keys/"+key["id"].(string), nil, 200)["total_requests"]; got != float64(n) {
		t.Fatalf("total_requests %v, want %d", got, n)
	}
}
