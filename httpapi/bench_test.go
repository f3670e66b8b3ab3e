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
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/cache"
	"github.com/keyplane/keyplane/coarseclock"
	"github.com/keyplane/keyplane/httpapi"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/teststore"
	"github.com/keyplane/keyplane/wrkbench"
)

// BenchmarkVerifyHTTP compares POST /v1/verify (cached key, scope and IP
// checks, token authentication) with a bare net/http handler that decodes a
// similar JSON body and encodes a small JSON answer, both over loopback with
// the same client in the same run. DESIGN.md section 7 asks for ≥ 0.8 of the
// bare handler's throughput; compare the two ns/op (lower is better).
func BenchmarkVerifyHTTP(b *testing.B) {
	keyplaneURL, bareURL, token, body := verifyServers(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DialContext: (&net.Dialer{}).DialContext}}
	run := func(b *testing.B, url string, want string) {
		b.ReportAllocs()
		b.SetParallelism(16) // enough connections in flight to keep the server busy
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !bytes.Contains(got, []byte(want)) {
					b.Errorf("%d %s", resp.StatusCode, got)
					return
				}
			}
		})
	}
	b.Run("bare", func(b *testing.B) { run(b, bareURL, `"valid":true`) })
	b.Run("keyplane", func(b *testing.B) { run(b, keyplaneURL, `"code":"VALID"`) })
}

// BenchmarkVerifyWrk drives both servers of BenchmarkVerifyHTTP with wrk, a
// separate load generator (see wrkbench.Compare). It runs once whatever b.N
// is; use -benchtime 1x.
func BenchmarkVerifyWrk(b *testing.B) {
	keyplaneURL, bareURL, token, body := verifyServers(b)
	script := filepath.Join(b.TempDir(), "post.lua")
	lua := fmt.Sprintf("wrk.method = \"POST\"\nwrk.body = %q\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer %s\"\n", body, token)
	if err := os.WriteFile(script, []byte(lua), 0o600); err != nil {
		b.Fatal(err)
	}
	wrkbench.Compare(b, wrkbench.Side{Name: "bare", Args: []string{"-s", script, bareURL}},
		wrkbench.Side{Name: "verify", Args: []string{"-s", script, keyplaneURL}})
}

// bareJSONHandler is the baseline: decode a small JSON body, answer JSON.
func bareJSONHandler(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Key   string `json:"key"`
		Scope string `json:"scope"`
		IP    string `json:"ip"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"valid": true, "code": "VALID", "key_id": in.Key[:10]})
}

// verifyFixture is the API with a cached key (a scope and an IP range), a
// verify token and a request body that verifies it.
func verifyFixture(b *testing.B) (api http.Handler, token string, body []byte) {
	store := teststore.New(b)
	records, err := cache.New(store, cache.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(records.Close)
	clock := coarseclock.New(time.Millisecond)
	b.Cleanup(clock.Stop)
	svc, _ := service.New(store, service.Config{Records: records, Cache: records, Now: clock.Now})
	sys := keyplane.NewContextWithActor(context.Background(), service.SystemActor)
	tok, _ := svc.CreateToken(sys, service.TokenInput{Name: "bench", Role: keyplane.RoleVerify})
	acc, _ := svc.CreateAccount(sys, service.AccountInput{Name: "a", AllowedScopes: []string{"data:*"}})
	key, _ := svc.CreateKey(sys, acc.ID, service.KeyInput{Name: "k", Scopes: []string{"data:read"}, AllowedCIDRs: []string{"10.0.0.0/8"}})
	body, _ = json.Marshal(map[string]any{"key": key.Plaintext, "scope": "data:read", "ip": "10.1.2.3"})
	return httpapi.New(httpapi.Config{Service: svc, Store: store, Logger: slog.New(slog.DiscardHandler)}), tok.Plaintext, body
}

// verifyServers serves the fixture and the bare baseline on loopback.
func verifyServers(b *testing.B) (keyplaneURL, bareURL, token string, body []byte) {
	api, token, body := verifyFixture(b)
	keyplaneSrv := httptest.NewServer(api)
	b.Cleanup(keyplaneSrv.Close)
	bareSrv := httptest.NewServer(http.HandlerFunc(bareJSONHandler))
	b.Cleanup(bareSrv.Close)
	return keyplaneSrv.URL + "/v1/verify", bareSrv.URL, token, body
}

// BenchmarkVerifyHandler measures the handlers' own cost, without the
// network: ServeHTTP on a recorded request, for /v1/verify and the baseline.
func BenchmarkVerifyHandler(b *testing.B) {
	api, token, body := verifyFixture(b)
	for name, h := range map[string]http.Handler{"bare": http.HandlerFunc(bareJSONHandler), "keyplane": api} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("POST", "/v1/verify", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatal(rec.Code, rec.Body.String())
				}
			}
		})
	}
}
