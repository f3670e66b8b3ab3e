package keyplanemw_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"
	"github.com/keyplane/keyplane/keyplanemw"
	"github.com/keyplane/keyplane/service"
)

// discard is a ResponseWriter that keeps nothing, so the benchmarks measure
// the middleware, not a recorder.
type discard struct{ h http.Header }

func (d discard) Header() http.Header                     { return d.h }
func (discard) Write(b []byte) (int, error)               { return len(b), nil }
func (discard) WriteHeader(int)                           {}
func newDiscard() discard                                 { return discard{h: http.Header{}} }
func benchHandler(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }

// The middleware's cost on a request whose key is cached: what it adds to
// every request of an unmetered key between two verifications.
func BenchmarkMiddlewareCached(b *testing.B) {
	kp := newKeyplane(b)
	k := kp.key(b, service.KeyInput{Scopes: []string{"things:read"}})
	mw, err := keyplanemw.New(keyplanemw.Config{ServerURL: kp.srv.URL, Token: kp.token, Logger: slog.New(slog.DiscardHandler),
		Scope: func(*http.Request) string { return "things:read" }})
	if err != nil {
		b.Fatal(err)
	}
	h := mw(http.HandlerFunc(benchHandler))
	req := httptest.NewRequest("GET", "/things/1", nil)
	req.Header.Set("X-API-Key", k.Plaintext)
	w := newDiscard()
	h.ServeHTTP(w, req) // warm the cache
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}

// The same handler without the middleware, for the difference.
func BenchmarkBareHandler(b *testing.B) {
	h := http.HandlerFunc(benchHandler)
	req := httptest.NewRequest("GET", "/things/1", nil)
	w := newDiscard()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}

// One verification round trip to a keyplane on loopback, by transport: what
// a request of a metered key (or a cache miss) waits for.
func BenchmarkVerifyRoundTrip(b *testing.B) {
	kp := newKeyplane(b)
	k := kp.key(b, service.KeyInput{})
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	b.Cleanup(h2c.CloseIdleConnections)
	for _, tc := range []struct {
		name string
		v    keyplanemw.Verifier
	}{
		{"http-json", keyplanemw.NewHTTPVerifier(kp.srv.URL, kp.token, nil)},
		{"connect", keyplanemw.NewConnectVerifier(kp.srv.URL, kp.token, nil)},
		{"grpc-h2c", keyplanemw.NewConnectVerifier(kp.srv.URL, kp.token, &http.Client{Transport: h2c}, connect.WithGRPC())},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := keyplanemw.VerifyRequest{Key: k.Plaintext, Scope: "things:read", Cost: 1}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tc.v.Verify(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
