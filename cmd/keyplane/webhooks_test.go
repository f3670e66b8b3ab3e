package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyplane/keyplane/postgres/postgrestest"
	"github.com/keyplane/keyplane/webhooks/verify"
)

// countingReceiver counts deliveries by webhook-id and checks each
// signature with the endpoint's secret.
type countingReceiver struct {
	mu       sync.Mutex
	secret   string
	byID     map[string]int
	badSigs  int
	requests int
	srv      *http.Server
}

func newCountingReceiver() *countingReceiver {
	return &countingReceiver{byID: map[string]int{}}
}

func (c *countingReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	if c.secret != "" && verify.Request(c.secret, r.Header, body, time.Now()) != nil {
		c.badSigs++
	}
	c.byID[r.Header.Get("webhook-id")]++
	w.WriteHeader(http.StatusNoContent)
}

// serve starts answering on addr (a port chosen before, while it was down).
func (c *countingReceiver) serve(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.srv = &http.Server{Handler: c}
	go c.srv.Serve(ln)
	t.Cleanup(func() { c.srv.Close() })
}

// counts returns the distinct ids received and the deliveries beyond one an id.
func (c *countingReceiver) counts() (distinct, duplicates, badSigs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.byID {
		distinct++
		duplicates += n - 1
	}
	return distinct, duplicates, c.badSigs
}

// waitForDistinct waits until n distinct messages arrived, at most within.
func (c *countingReceiver) waitForDistinct(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		distinct, _, _ := c.counts()
		if distinct >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages arrived within %s", distinct, n, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeAddr is a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// publish sends n operator events to the account, numbered from first.
func publish(t *testing.T, s *server, token, account string, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		s.call(t, token, "POST", "/v1/accounts/"+account+"/events", map[string]any{
			"type": "invoice.paid", "data": map[string]any{"n": i}, "idempotency_key": fmt.Sprintf("invoice-%d", i)}, 202)
	}
}

var webhookTestFlags = []string{"--webhooks-allow-private", "--webhook-timeout", "2s", "--webhook-poll-interval", "200ms",
	"--webhook-retry-schedule", strings.TrimSuffix(strings.Repeat("1s,", 20), ",")}

// TestWebhooksSurviveSIGKILL: 500 messages pending with the receiver down,
// the server killed with SIGKILL, the receiver back, the server restarted:
// every message arrives.
func TestWebhooksSurviveSIGKILL(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "keyplane.db")
	args := append([]string{"--database", db}, webhookTestFlags...)
	first := startServer(t, args...)
	token := first.token(t)
	if info, err := os.Stat(db + ".secrets-key"); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("secrets key beside the database: %v, %v", info, err)
	}
	receiverAddr := freeAddr(t)
	acc := first.call(t, token, "POST", "/v1/accounts", map[string]any{"name": "Acme"}, 201)["id"].(string)
	endpoint := first.call(t, token, "POST", "/v1/accounts/"+acc+"/webhooks", map[string]any{"url": "http://" + receiverAddr + "/hooks"}, 201)
	rcv := newCountingReceiver()
	rcv.secret = endpoint["secret"].(string)

	start := time.Now()
	publish(t, first, token, acc, 0, 500)
	t.Logf("500 events published in %s, the receiver down", time.Since(start).Round(time.Millisecond))
	time.Sleep(time.Second) // some attempts fail meanwhile
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.cmd.Wait()

	rcv.serve(t, receiverAddr)
	restart := time.Now()
	startServer(t, args...)
	rcv.waitForDistinct(t, 500, 45*time.Second)
	time.Sleep(500 * time.Millisecond) // late duplicates, if any, would come now
	distinct, duplicates, bad := rcv.counts()
	t.Logf("after SIGKILL and restart: %d of 500 messages arrived within %s, %d duplicate deliveries, %d bad signatures",
		distinct, time.Since(restart).Round(time.Millisecond), duplicates, bad)
	if distinct != 500 || bad != 0 {
		t.Fatalf("%d distinct messages, %d bad signatures", distinct, bad)
	}
}

// TestWebhooksTwoInstancesPostgres: two instances on one PostgreSQL
// database share the outbox; 1,000 events arrive, each once.
func TestWebhooksTwoInstancesPostgres(t *testing.T) {
	dbURL := postgrestest.NewDatabase(t)
	keyFile := filepath.Join(t.TempDir(), "secrets.key")
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--database", dbURL, "--secrets-key-file", keyFile}, webhookTestFlags...)
	a := startServer(t, args...)
	token := a.token(t)
	b := startServer(t, args...)

	rcv := newCountingReceiver()
	addr := freeAddr(t)
	rcv.serve(t, addr)
	acc := a.call(t, token, "POST", "/v1/accounts", map[string]any{"name": "Acme"}, 201)["id"].(string)
	endpoint := a.call(t, token, "POST", "/v1/accounts/"+acc+"/webhooks", map[string]any{"url": "http://" + addr + "/hooks"}, 201)
	rcv.mu.Lock()
	rcv.secret = endpoint["secret"].(string)
	rcv.mu.Unlock()

	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { publish(t, a, token, acc, 0, 500) })
	wg.Go(func() { publish(t, b, token, acc, 500, 500) })
	wg.Wait()
	rcv.waitForDistinct(t, 1000, 45*time.Second)
	elapsed := time.Since(start)
	time.Sleep(time.Second)
	distinct, duplicates, bad := rcv.counts()
	t.Logf("two instances: %d of 1000 messages delivered in %s, %d duplicate deliveries, %d bad signatures",
		distinct, elapsed.Round(time.Millisecond), duplicates, bad)
	if distinct != 1000 || duplicates != 0 || bad != 0 {
		t.Fatalf("%d distinct, %d duplicates, %d bad signatures", distinct, duplicates, bad)
	}
}
