package postgrestest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a PostgreSQL server of the test's own (initdb in a temporary
// folder, a free port), for tests that stop and start the database: an
// outage must never be made by stopping the server other tests share.
type Server struct {
	dir, bin string
	port     int
	asUser   []string // runuser prefix when running as root, which PostgreSQL refuses
}

// StartServer initialises and starts a private server; the test's cleanup
// stops it and removes its files. Without PostgreSQL's binaries it skips,
// except in CI, where it fails.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("postgrestest: PostgreSQL's server binaries (initdb) are required in CI")
		}
		t.Skip("postgrestest: no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb)")
	}
	s := &Server{bin: filepath.Dir(bins[len(bins)-1])}
	dir, err := os.MkdirTemp("", "keyplane-pg-")
	if err != nil {
		t.Fatal(err)
	}
	s.dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		// initdb and postgres refuse root: the folder goes to the postgres user.
		if out, err := exec.Command("chown", "postgres:", dir).CombinedOutput(); err != nil {
			t.Fatalf("postgrestest: chown: %v: %s", err, out)
		}
		s.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	s.port = freePort(t)
	s.run(t, "initdb", "-D", s.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	t.Cleanup(func() { s.pgctl("stop", "-m", "immediate") })
	s.Start(t)
	return s
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// URL is the server's postgres database, as its superuser.
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// NewDatabase creates a database on the server and returns its URL.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE keyplane"); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/keyplane?sslmode=disable", s.port)
}

// Start starts the server on its port and waits until it accepts connections.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	opts := "-p " + strconv.Itoa(s.port) + " -k " + s.dir + " -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
	if out, err := s.pgctl("start", "-w", "-t", "60", "-l", filepath.Join(s.dir, "log"), "-o", opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		t.Fatalf("postgrestest: start: %v: %s\n%s", err, out, log)
	}
}

// Stop stops the server, as an operator's fast shutdown does: clients are
// disconnected and new connections refused.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if out, err := s.pgctl("stop", "-w", "-m", "fast"); err != nil {
		t.Fatalf("postgrestest: stop: %v: %s", err, out)
	}
}

func (s *Server) pgctl(args ...string) ([]byte, error) {
	return s.command("pg_ctl", append([]string{"-D", s.data()}, args...)...).CombinedOutput()
}

func (s *Server) run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := s.command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("postgrestest: %s: %v: %s", name, err, out)
	}
}

func (s *Server) command(name string, args ...string) *exec.Cmd {
	argv := append(append(append([]string{}, s.asUser...), filepath.Join(s.bin, name)), args...)
	return exec.Command(argv[0], argv[1:]...)
}

// freePort finds a loopback port nothing listens on.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
