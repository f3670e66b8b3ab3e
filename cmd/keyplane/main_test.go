package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
// serves, and exits cleanly on SIGTERM.
func TestServeBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "keyplane")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	db := filepath.Join(dir, "serve.db")
	start := func() (*exec.Cmd, string, string, *bytes.Buffer) {
		cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--database", db)
		stdout, _ := cmd.StdoutPipe()
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		addrCh := make(chan string, 1)
		var logs bytes.Buffer
		go func() {
			sc := bufio.NewScanner(stderr)
			re := regexp.MustCompile(`addr=(\S+)`)
			for sc.Scan() {
				logs.WriteString(sc.Text() + "\n")
				if m := re.FindStringSubmatch(sc.Text()); m != nil {
					addrCh <- m[1]
				}
			}
		}()
		var addr string
		select {
		case addr = <-addrCh:
		case <-time.After(20 * time.Second):
			t.Fatal("server did not start")
		}
		out, _ := io.ReadAll(io.LimitReader(stdoutReader{stdout}, 4096))
		return cmd, addr, string(out), &logs
	}

	cmd, addr, out, _ := start()
	token := regexp.MustCompile(`kpt_[0-9A-Za-z]{36}`).FindString(out)
	if token == "" {
		t.Fatalf("first run printed no admin token: %q", out)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/v1/accounts", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first token does not work: %v %v", err, resp)
	}
	resp.Body.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := waitTimeout(cmd, 10*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}

	cmd, _, out, _ = start()
	if strings.Contains(out, "kpt_") {
		t.Fatalf("second run printed a token again: %q", out)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := waitTimeout(cmd, 10*time.Second); err != nil {
		t.Fatalf("exit after SIGINT: %v", err)
	}
}

// stdoutReader reads what the server printed before it started listening:
// the token line is written before the listening log line.
type stdoutReader struct{ r io.Reader }

func (s stdoutReader) Read(p []byte) (int, error) {
	type result struct {
		n   int
		err error
	}
	ch := make(chan result, 1)
	go func() { n, err := s.r.Read(p); ch <- result{n, err} }()
	select {
	case r := <-ch:
		return r.n, r.err
	case <-time.After(300 * time.Millisecond):
		return 0, io.EOF
	}
}

func waitTimeout(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		return context.DeadlineExceeded
	}
}
