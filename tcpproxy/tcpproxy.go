package tcpproxy

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proxy forwards TCP connections until Down; Up brings it back on the same
// address. Hang makes it a server that is stuck rather than gone.
type Proxy struct {
	target, addr string
	mu           sync.Mutex
	ln           net.Listener
	clients      []net.Conn // accepted connections
	servers      []net.Conn // their connections to target
	hang         bool
	dropFD       int      // the socket of Unreachable, -1 when none
	filler       net.Conn // the connection that fills its queue
}

// Start listens on a free loopback port and forwards to target.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{target: target, dropFD: -1}
	p.listen(t, "127.0.0.1:0")
	t.Cleanup(p.Down)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.addr }

func (p *Proxy) listen(t testing.TB, addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go p.accept(ln)
}

func (p *Proxy) accept(ln net.Listener) {
	for {
		client, err := ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		hang := p.hang
		if hang {
			p.clients = append(p.clients, client) // held open, never answered
		}
		p.mu.Unlock()
		if hang {
			continue
		}
		server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.clients, p.servers = append(p.clients, client), append(p.servers, server)
		p.mu.Unlock()
		go p.pipe(client, server)
		go p.pipe(server, client)
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	io.Copy(dst, src)
	p.mu.Lock()
	hang := p.hang
	p.mu.Unlock()
	if hang {
		return // the target side was cut; the client side stays open, unanswered
	}
	dst.Close()
	src.Close()
}

// Down refuses new connections and breaks the open ones.
func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	p.closeAll()
	p.closeDrop()
}

func (p *Proxy) closeDrop() {
	if p.dropFD >= 0 {
		p.filler.Close()
		syscall.Close(p.dropFD)
		p.dropFD, p.filler = -1, nil
	}
}

func (p *Proxy) closeAll() {
	for _, c := range append(p.clients, p.servers...) {
		c.Close()
	}
	p.clients, p.servers, p.hang = nil, nil, false
}

// Hang stops answering: open connections stay open but nothing reaches the
// target or comes back, and new ones are accepted and never answered, as
// with a server that is stuck (or a network that drops packets) rather than
// gone. Up or Down ends it.
func (p *Proxy) Hang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hang = true
	for _, c := range p.servers {
		c.Close()
	}
	p.servers = nil
}

// Unreachable is Down, except that a dial hangs instead of being refused,
// as with a host that is off or a network that drops packets: the address
// is held by a socket whose accept queue is full, so the kernel ignores
// every new connection request. Up ends it.
func (p *Proxy) Unreachable(t testing.TB) {
	p.Down()
	ap, err := netip.ParseAddrPort(p.addr)
	if err != nil || !ap.Addr().Is4() {
		t.Fatalf("tcpproxy: Unreachable needs an IPv4 address, have %s", p.addr)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	// A backlog of 0 queues one connection; the filler takes that place.
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	filler, err := net.DialTimeout("tcp", p.addr, time.Second)
	if err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	p.mu.Lock()
	p.dropFD, p.filler = fd, filler
	p.mu.Unlock()
}

// Up forwards again: after Down or Unreachable it listens again on the same
// address; after Hang it breaks the unanswered connections and forwards new
// ones.
func (p *Proxy) Up(t testing.TB) {
	p.mu.Lock()
	if p.hang {
		p.closeAll()
		p.mu.Unlock()
		return
	}
	p.closeDrop()
	p.mu.Unlock()
	p.listen(t, p.addr)
}
