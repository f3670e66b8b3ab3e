package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Server is a redis-server of the test's own on a free port, keeping nothing
// on disk, for tests that stop and start Redis: an outage must never be made
// by stopping the server other tests share.
type Server struct {
	port int
	dir  string
	cmd  *exec.Cmd
}

// StartServer starts a private server; the test's cleanup stops it. Without
// redis-server it skips, except in CI, where it fails.
func StartServer(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redistest: redis-server is required in CI")
		}
		t.Skip("redistest: no redis-server on PATH")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{port: ln.Addr().(*net.TCPAddr).Port, dir: t.TempDir()}
	ln.Close()
	t.Cleanup(s.stop)
	s.Start(t)
	return s
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

// Start starts the server on its port and waits until it answers.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--logfile", "")
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("redistest: start redis-server: %v", err)
	}
	opt, _ := goredis.ParseURL(s.URL())
	c := goredis.NewClient(opt)
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: redis-server on port %d does not answer: %v", s.port, err)
		}
	}
}

// Stop kills the server: its clients lose their connections at once.
func (s *Server) Stop(t testing.TB) { s.stop() }

func (s *Server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}
