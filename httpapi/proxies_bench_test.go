package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/admit"
	"github.com/keyplane/keyplane/cache"
	"github.com/keyplane/keyplane/coarseclock"
	"github.com/keyplane/keyplane/httpapi"
	"github.com/keyplane/keyplane/ratelimit"
	"github.com/keyplane/keyplane/routes"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/teststore"
	"github.com/keyplane/keyplane/wrkbench"
)

// BenchmarkNginxWrk measures what asking keyplane costs nginx: wrk against
// nginx proxying to an upstream directly and against the same nginx asking
// /v1/forward-auth first (auth_request, testdata/nginx.conf: route rule,
// cached key, scope, rate limit checked), in the same run. It reports
// requests per second and their ratio, and runs once whatever b.N is: use
// -benchtime 1x. KEYPLANE_BENCH_SECONDS sets each wrk run's length (5),
// KEYPLANE_BENCH_ROUNDS the alternating runs (3).
func BenchmarkNginxWrk(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"7","name":"a thing"}`)
	}))
	b.Cleanup(upstream.Close)
	api, token, key := forwardAuthFixture(b)
	keyplaneSrv := httptest.NewServer(api)
	b.Cleanup(keyplaneSrv.Close)
	c := proxyConfig{Keyplane: strings.TrimPrefix(keyplaneSrv.URL, "http://"), Upstream: strings.TrimPrefix(upstream.URL, "http://"),
		Token: token, DirectListen: freeAddr(b)}
	authURL := runNginx(b, "nginx-bench.conf", c)
	directURL := "http://" + c.DirectListen

	wrkbench.Compare(b, wrkbench.Side{Name: "direct", Args: []string{"-H", "X-API-Key: " + key, directURL + "/v1/things/7"}},
		wrkbench.Side{Name: "auth_request", Args: []string{"-H", "X-API-Key: " + key, authURL + "/v1/things/7"}})
}

// forwardAuthFixture is the API with route rules, a cached key allowed the
// route's scope (and an unlimited rate-limit policy, checked on each
// request), and a verify token for the proxy.
func forwardAuthFixture(b *testing.B) (api http.Handler, token, key string) {
	store := teststore.New(b)
	clock := coarseclock.New(time.Millisecond)
	b.Cleanup(clock.Stop)
	records, err := cache.New(store, cache.Config{Logger: slog.New(slog.DiscardHandler), Clock: clock})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(records.Close)
	limiter := ratelimit.New()
	b.Cleanup(limiter.Close)
	svc, err := service.New(store, service.Config{Records: records, Cache: records, Now: clock.Now, Limiter: limiter})
	if err != nil {
		b.Fatal(err)
	}
	sys := keyplane.NewContextWithActor(context.Background(), service.SystemActor)
	tok, _ := svc.CreateToken(sys, service.TokenInput{Name: "nginx", Role: keyplane.RoleVerify})
	acc, _ := svc.CreateAccount(sys, service.AccountInput{Name: "a", AllowedScopes: []string{"things:*"}})
	k, err := svc.CreateKey(sys, acc.ID, service.KeyInput{Name: "k", Scopes: []string{"things:read"},
		RateLimits: []keyplane.RateLimitPolicy{{Name: "unlimited", WindowSeconds: 60, Algorithm: keyplane.TokenBucket}}})
	if err != nil {
		b.Fatal(err)
	}
	rs, err := routes.Parse("rules.yaml", []byte("routes:\n  - match: GET /v1/things/{id}\n    scope: things:read\n"))
	if err != nil {
		b.Fatal(err)
	}
	gate := admit.NewGate(admit.GateConfig{Service: svc, Rules: routes.Static(rs)})
	return httpapi.New(httpapi.Config{Service: svc, Store: store, Logger: slog.New(slog.DiscardHandler), Gate: gate}), tok.Plaintext, k.Plaintext
}
