package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyplane/keyplane/apikey"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestTokenCreatePrintsOnlyTheToken(t *testing.T) {
	db := filepath.Join(t.TempDir(), "k.db")
	if code, _, errOut := runCLI(t, "migrate", "--database", db); code != 0 {
		t.Fatal(errOut)
	}
	code, out, errOut := runCLI(t, "token", "create", "--name", "ci", "--role", "verify", "--database", db)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !apikey.ParseToken(strings.TrimSuffix(out, "\n")) || strings.Count(out, "\n") != 1 {
		t.Fatalf("stdout %q is not one token line", out)
	}
	for _, args := range [][]string{
		{"token", "create", "--name", "ci", "--role", "root", "--database", db},
		{"token", "create", "--role", "admin", "--database", db},
		{"token", "create", "--name", "", "--role", "admin", "--database", db},
	} {
		if code, out, errOut := runCLI(t, args...); code == 0 || out != "" || errOut == "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

func TestEnvironmentVariables(t *testing.T) {
	db := filepath.Join(t.TempDir(), "env.db")
	t.Setenv("KEYPLANE_DATABASE_URL", db)
	if code, _, errOut := runCLI(t, "migrate"); code != 0 {
		t.Fatalf("migrate: %s", errOut)
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("KEYPLANE_DATABASE_URL was not used: %v", err)
	}
	t.Setenv("KEYPLANE_LOG_LEVEL", "loud")
	if code, _, errOut := runCLI(t, "serve", "--addr", "127.0.0.1:0"); code == 0 || !strings.Contains(errOut, "log level") {
		t.Fatalf("bad KEYPLANE_LOG_LEVEL accepted: %d %s", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	if code, out, _ := runCLI(t, "version"); code != 0 || !strings.HasPrefix(out, "keyplane ") {
		t.Fatalf("version: %d %q", code, out)
	}
}

func TestUnreachablePostgres(t *testing.T) {
	code, _, errOut := runCLI(t, "migrate", "--database", "postgres://root:secret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2")
	if code == 0 || !strings.Contains(errOut, "127.0.0.1:1") || strings.Contains(errOut, "secret") {
		t.Fatalf("exit %d, stderr %q: want an error naming the host and hiding the password", code, errOut)
	}
}

// TestServeBinary runs the real binary: it prints the first admin token once,
// serves, and exits cleanly on SIGTERM and on SIGINT.
func TestServeBinary(t *testing.T) {
	db := filepath.Join(t.TempDir(), "serve.db")
	s := startServer(t, "--database", db)
	token := s.token(t)
	s.call(t, token, "GET", "/v1/accounts", nil, 200)
	s.cmd.Process.Signal(syscall.SIGTERM)
	if err := waitTimeout(s.cmd, 10*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, s.logs.String())
	}

	s = startServer(t, "--database", db)
	time.Sleep(300 * time.Millisecond) // let stdout be copied
	if strings.Contains(s.stdout.String(), "kpt_") {
		t.Fatalf("second run printed a token again: %q", s.stdout.String())
	}
	s.call(t, token, "GET", "/v1/accounts", nil, 200)
	s.cmd.Process.Signal(syscall.SIGINT)
	if err := waitTimeout(s.cmd, 10*time.Second); err != nil {
		t.Fatalf("exit after SIGINT: %v", err)
	}
}

var errTimeout = errors.New("timed out")

func mkdirTemp() (string, error) { return os.MkdirTemp("", "keyplane-test-bin-") }

func TestMain(m *testing.M) {
	if path := os.Getenv(holdWriteLockEnv); path != "" {
		holdWriteLock(path)
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://root:secret@db:5432/k?sslmode=disable":   "postgres://root:xxxxx@db:5432/k?…",
		"postgres://db/k?password=secret&sslpassword=secret": "postgres://db/k?…",
		"postgres://db/k": "postgres://db/k",
	} {
		if got := redactURL(in); got != want || strings.Contains(got, "secret") {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// The command line's conventions: help and usage errors exit 2, saying where
// the help is; --version; a command that reads a database refuses a SQLite
// file that is not there instead of creating an empty one; a URL of another
// database is an error, not a file name.
func TestCommandLineConventions(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "typo.db")
	for _, c := range []struct {
		name     string
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{"bare", nil, 2, "", "Available Commands"},
		{"--version", []string{"--version"}, 0, "keyplane ", ""},
		{"unknown flag", []string{"serve", "--bogus"}, 2, "", "see 'keyplane serve --help'"},
		{"unknown command", []string{"serv"}, 2, "", "see 'keyplane --help'"},
		{"audit verify on a missing file", []string{"audit", "verify", "--database", missing}, 2, "", "no such SQLite file"},
		{"token list on a missing file", []string{"token", "list", "--database", missing}, 1, "", "no such SQLite file"},
		{"member create on a missing file", []string{"member", "create", "--database", missing, "--account", "acc_x", "--email", "a@b.c", "--role", "owner"}, 1, "", "no such SQLite file"},
		{"another database's URL", []string{"token", "list", "--database", "mysql://root@127.0.0.1/k"}, 1, "", "unknown kind of database"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, c.args...)
			if code != c.code || !strings.Contains(out, c.inStdout) || !strings.Contains(errOut, c.inStderr) {
				t.Fatalf("exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", code, c.code, out, c.inStdout, errOut, c.inStderr)
			}
			if strings.Count(errOut, "keyplane:") > 1 {
				t.Fatalf("the error was printed more than once: %q", errOut)
			}
		})
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("a command created the mistyped database: %v", err)
	}
}

// The first admin token never reaches the log stream: with stdout not a
// terminal (as in a container) and JSON logs, it is in neither stdout nor
// stderr, but in a file beside the database that only its owner can read,
// whose path is logged. A second start makes no new token and no new file.
func TestFirstTokenNotInTheLogStream(t *testing.T) {
	db := filepath.Join(t.TempDir(), "first.db")
	cmd := exec.Command(binary(t), "serve", "--addr", "127.0.0.1:0", "--database", db, "--log-format", "json")
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitUntil(t, "the server to listen", 30*time.Second, func() bool { return strings.Contains(stderr.String(), "keyplane listening") })
	file := db + ".first-admin-token"
	info, err := os.Stat(file)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, %v", info, err)
	}
	b, _ := os.ReadFile(file)
	token := strings.TrimSpace(string(b))
	if !apikey.ParseToken(token) {
		t.Fatalf("token file holds %q", b)
	}
	for name, out := range map[string]string{"stdout": stdout.String(), "stderr": stderr.String()} {
		if strings.Contains(out, token) || strings.Contains(out, "kpt_") {
			t.Fatalf("the token reached %s:\n%s", name, out)
		}
	}
	if !strings.Contains(stderr.String(), `"path":"`+file+`"`) {
		t.Fatalf("the file's path is not logged:\n%s", stderr.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	os.Remove(file)
	again := startServer(t, "--database", db)
	if _, err := os.Stat(again.tokenFile); !os.IsNotExist(err) {
		t.Fatalf("a second start wrote a token again: %v", err)
	}
}
