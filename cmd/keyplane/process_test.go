package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// binary builds keyplane once per test run.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	buildOnce.Do(func() {
		dir, err := mkdirTemp()
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		binPath = filepath.Join(dir, "keyplane")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v\n%s", buildErr, binPath)
	}
	return binPath
}

// server is a running `keyplane serve` process.
type server struct {
	cmd       *exec.Cmd
	addr      string
	stdout    *syncBuffer
	logs      *syncBuffer
	tokenFile string // where the first admin token is written, if it makes one
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startServer runs `keyplane serve --addr 127.0.0.1:0 args…` and waits until
// it listens; the test's cleanup kills it.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "first-admin-token")
	cmd := exec.Command(binary(t), append([]string{"serve", "--addr", "127.0.0.1:0", "--first-token-file", tokenFile}, args...)...)
	stdout := &syncBuffer{}
	cmd.Stdout = stdout
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	s := &server{cmd: cmd, logs: &syncBuffer{}, stdout: stdout, tokenFile: tokenFile}
	addrCh := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`msg="keyplane listening" addr=(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.logs.Write([]byte(sc.Text() + "\n"))
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrCh <- m[1]
			}
		}
	}()
	select {
	case s.addr = <-addrCh:
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not start: %s", s.logs.String())
	}
	return s
}

// token is the first admin token the server wrote to its file.
func (s *server) token(t *testing.T) string {
	t.Helper()
	re := regexp.MustCompile(`^kpt_[0-9A-Za-z]{36}\n$`)
	b, err := os.ReadFile(s.tokenFile)
	if err != nil || !re.Match(b) {
		t.Fatalf("no first admin token in %s: %q, %v", s.tokenFile, b, err)
	}
	return strings.TrimSpace(string(b))
}

// call sends a JSON request and decodes the JSON answer.
func (s *server) call(t *testing.T, token, method, path string, body any, wantStatus int) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+s.addr+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, wantStatus, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil && !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		t.Fatalf("%s %s: %s", method, path, raw)
	}
	return out
}

func waitTimeout(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		return errTimeout
	}
}
