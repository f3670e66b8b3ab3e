package gateway_test

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/admit"
	"github.com/keyplane/keyplane/cache"
	"github.com/keyplane/keyplane/coarseclock"
	"github.com/keyplane/keyplane/gateway"
	"github.com/keyplane/keyplane/ratelimit"
	"github.com/keyplane/keyplane/routes"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/teststore"
	"github.com/keyplane/keyplane/usage"
	"github.com/keyplane/keyplane/wrkbench"
)

// BenchmarkGateway compares gateway mode with a plain httputil.ReverseProxy
// in front of the same upstream, over loopback with the same client in the
// same run. The gateway does what `serve --upstream` does: route rule,
// cached verification with scope check, rate limit (an unlimited policy,
// checked) and usage metering, identity headers, key stripping. Compare the
// two ns/op (lower is better); the target is gateway ≥ 0.8 × plain in
// throughput (docs/benchmarks.md).
func BenchmarkGateway(b *testing.B) {
	plainURL, gatewayURL, key := gatewayFixture(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DialContext: (&net.Dialer{}).DialContext}}
	run := func(b *testing.B, base string) {
		b.ReportAllocs()
		b.SetParallelism(16) // enough requests in flight to keep the servers busy
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest("GET", base+"/v1/things/7", nil)
				req.Header.Set("X-API-Key", key)
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	}
	b.Run("plain", func(b *testing.B) { run(b, plainURL) })
	b.Run("gateway", func(b *testing.B) { run(b, gatewayURL) })
}

// BenchmarkGatewayWrk drives the servers of BenchmarkGateway with wrk, a
// separate load generator, and reports requests per second and their ratio.
// It runs once whatever b.N is: use -benchtime 1x. KEYPLANE_BENCH_SECONDS
// sets each wrk run's length (5), KEYPLANE_BENCH_ROUNDS the alternating runs (3).
func BenchmarkGatewayWrk(b *testing.B) {
	plainURL, gatewayURL, key := gatewayFixture(b)
	wrkbench.Compare(b, wrkbench.Side{Name: "plain", Args: []string{"-H", "X-API-Key: " + key, plainURL + "/v1/things/7"}},
		wrkbench.Side{Name: "gateway", Args: []string{"-H", "X-API-Key: " + key, gatewayURL + "/v1/things/7"}})
}

// gatewayFixture serves a small JSON upstream behind a plain ReverseProxy
// and behind the gateway, with a key the gateway admits.
func gatewayFixture(b *testing.B) (plainURL, gatewayURL, key string) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"7","name":"a thing"}`)
	}))
	b.Cleanup(upstream.Close)
	target, _ := url.Parse(upstream.URL)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns, transport.MaxIdleConnsPerHost = 1024, 256

	plain := httptest.NewServer(&httputil.ReverseProxy{Transport: transport, Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.SetXForwarded()
	}, ErrorLog: log.New(io.Discard, "", 0)}) // wrk's last requests are cut off
	b.Cleanup(plain.Close)

	store := teststore.New(b)
	clock := coarseclock.New(time.Millisecond)
	b.Cleanup(clock.Stop)
	records, err := cache.New(store, cache.Config{Clock: clock})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(records.Close)
	limiter := ratelimit.New()
	b.Cleanup(limiter.Close)
	meter := usage.New(store, usage.Config{Logger: slog.New(slog.DiscardHandler)})
	b.Cleanup(func() { meter.Close(context.Background()) })
	svc, err := service.New(store, service.Config{Now: clock.Now, Records: records, Cache: records, Limiter: limiter, Usage: meter})
	if err != nil {
		b.Fatal(err)
	}
	rs, err := routes.Parse("rules.yaml", []byte("routes:\n  - match: GET /v1/things/{id}\n    scope: things:read\n"))
	if err != nil {
		b.Fatal(err)
	}
	gate := admit.NewGate(admit.GateConfig{Service: svc, Rules: routes.Static(rs)})
	gw := httptest.NewServer(gateway.New(gateway.Config{Gate: gate, Upstream: target, Usage: meter, Transport: transport, Logger: slog.New(slog.DiscardHandler)}))
	b.Cleanup(gw.Close)

	ctx := keyplane.NewContextWithActor(context.Background(), service.SystemActor)
	acc, err := svc.CreateAccount(ctx, service.AccountInput{Name: "bench", AllowedScopes: []string{"things:*"}})
	if err != nil {
		b.Fatal(err)
	}
	k, err := svc.CreateKey(ctx, acc.ID, service.KeyInput{Name: "bench", Scopes: []string{"things:read"},
		RateLimits: []keyplane.RateLimitPolicy{{Name: "unlimited", WindowSeconds: 60, Algorithm: keyplane.TokenBucket}}})
	if err != nil {
		b.Fatal(err)
	}
	return plain.URL, gw.URL, k.Plaintext
}
