package secretscan_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane/secretscan"
)

// keyServer serves GitHub's meta JSON from 127.0.0.1; publish replaces
// its keys (a rotation).
type keyServer struct {
	mu      sync.Mutex
	doc     []byte
	fetches atomic.Int32
	url     string
}

func newKeyServer(t *testing.T) *keyServer {
	ks := &keyServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.fetches.Add(1)
		ks.mu.Lock()
		defer ks.mu.Unlock()
		w.Write(ks.doc)
	}))
	t.Cleanup(srv.Close)
	ks.url = srv.URL
	return ks
}

func (ks *keyServer) publish(t *testing.T, keys map[string]*ecdsa.PrivateKey) {
	var list []map[string]any
	for id, k := range keys {
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, map[string]any{"key_identifier": id, "key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "is_current": true})
	}
	doc, _ := json.Marshal(map[string]any{"public_keys": list})
	ks.mu.Lock()
	ks.doc = doc
	ks.mu.Unlock()
}

func sign(k *ecdsa.PrivateKey, body []byte) string {
	d := sha256.Sum256(body)
	sig, _ := ecdsa.SignASN1(rand.Reader, k, d[:])
	return base64.StdEncoding.EncodeToString(sig)
}

// TestKeyRotation: keys are fetched once; an unknown identifier refetches,
// at most once per MinRefetch, so a rotated key verifies after it.
func TestKeyRotation(t *testing.T) {
	old, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	next, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := newKeyServer(t)
	srv.publish(t, map[string]*ecdsa.PrivateKey{"old": old})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	set := secretscan.NewKeySet(secretscan.KeysConfig{URL: srv.url, MinRefetch: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()
	body := []byte(`[]`)
	for range 3 {
		if err := set.Verify(ctx, "old", sign(old, body), body); err != nil {
			t.Fatal(err)
		}
	}
	srv.publish(t, map[string]*ecdsa.PrivateKey{"old": old, "next": next})
	// Within the minute: not refetched, refused.
	if err := set.Verify(ctx, "next", sign(next, body), body); !errors.Is(err, secretscan.ErrSignature) {
		t.Fatalf("unknown id within the interval: %v", err)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	now = now.Add(time.Minute)
	if err := set.Verify(ctx, "next", sign(next, body), body); err != nil {
		t.Fatalf("after the interval: %v", err)
	}
	if err := set.Verify(ctx, "next", sign(old, body), body); !errors.Is(err, secretscan.ErrSignature) {
		t.Fatalf("signed by the wrong key: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	// An unreachable keys URL is not a signature error.
	down := secretscan.NewKeySet(secretscan.KeysConfig{URL: "http://127.0.0.1:1/keys"})
	if err := down.Verify(ctx, "old", sign(old, body), body); err == nil || errors.Is(err, secretscan.ErrSignature) {
		t.Fatalf("unreachable: %v", err)
	}
}

func TestLimiter(t *testing.T) {
	l := secretscan.NewLimiter(2, time.Minute)
	now := time.Now()
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	b2 := netip.MustParseAddr("2001:db8::2") // same /64
	for i, want := range []bool{true, true, false} {
		if got := l.Allow(a, now); got != want {
			t.Fatalf("IPv4 request %d: allowed %v", i, got)
		}
	}
	for i, addr := range []netip.Addr{b, b2, b} {
		if got := l.Allow(addr, now); got != (i < 2) {
			t.Fatalf("IPv6 request %d (one /64 shares the limit): allowed %v", i, got)
		}
	}
	if !l.Allow(a, now.Add(time.Minute)) {
		t.Fatal("a new window allows again")
	}
}
