package postgres_test

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/postgres"
	"github.com/keyplane/keyplane/postgres/postgrestest"
)

// TestUnavailableWhileServerDown puts a TCP proxy between the store and the
// server and takes it down, as a database outage looks from the service,
// without stopping the server other tests use.
func TestUnavailableWhileServerDown(t *testing.T) {
	dbURL := postgrestest.NewDatabase(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, u.Host)
	u.Host = p.addr
	db, err := postgres.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a := newAccount(t, db, "acc_1")

	p.down()
	// The first calls meet pooled connections that broke, later ones a server
	// that refuses new connections: both are the database being unavailable.
	for i := range 3 {
		_, err := db.Account(ctx, a.ID)
		t.Logf("while down: %v", err)
		if code := keyplane.ErrorCode(err); code != keyplane.EUNAVAILABLE {
			t.Fatalf("Account %d while down: code %q (%v), want %q", i, code, err, keyplane.EUNAVAILABLE)
		}
	}
	if code := keyplane.ErrorCode(db.Ping(ctx)); code != keyplane.EUNAVAILABLE {
		t.Fatalf("Ping while down: code %q, want %q", code, keyplane.EUNAVAILABLE)
	}
	_, err = db.UpdateAccount(ctx, a.ID, func(*keyplane.Account) error { return nil })
	if code := keyplane.ErrorCode(err); code != keyplane.EUNAVAILABLE {
		t.Fatalf("UpdateAccount while down: code %q (%v), want %q", code, err, keyplane.EUNAVAILABLE)
	}

	p.up(t)
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("Ping once the server is back: %v", err)
	}
	if _, err := db.Account(ctx, a.ID); err != nil {
		t.Fatalf("Account once the server is back: %v", err)
	}
}

// proxy forwards TCP connections to target until it is taken down.
type proxy struct {
	target, addr string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	p := &proxy{target: target}
	p.listen(t, "127.0.0.1:0")
	t.Cleanup(p.down)
	return p
}

func (p *proxy) listen(t *testing.T, addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go p.accept(ln)
}

func (p *proxy) accept(ln net.Listener) {
	for {
		client, err := ln.Accept()
		if err != nil {
			return
		}
		server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		go pipe(client, server)
		go pipe(server, client)
	}
}

func pipe(dst, src net.Conn) {
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// down refuses new connections and breaks the open ones.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// up listens again on the same address.
func (p *proxy) up(t *testing.T) { p.listen(t, p.addr) }
