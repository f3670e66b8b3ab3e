package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gofrs/flock"
	_ "modernc.org/sqlite" // the lock holder opens the file as another SQLite user would
)

// holdWriteLockEnv makes the test binary, run again as a child, hold a write
// lock on a SQLite file until its standard input closes: another process
// using the database, as a backup script or a hand-run sqlite3 would.
const holdWriteLockEnv = "KEYPLANE_TEST_HOLD_SQLITE_WRITE_LOCK"

// holdWriteLock is the child's side; it never returns.
func holdWriteLock(path string) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err == nil {
		db.SetMaxOpenConns(1)
		_, err = db.Exec("BEGIN IMMEDIATE; UPDATE accounts SET name = name")
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	fmt.Println("locked")
	bufio.NewReader(os.Stdin).ReadString('\n') // until the test lets go
	db.Exec("ROLLBACK")
	os.Exit(0)
}

// TestOneServePerSQLiteFile: a second server on the same file would never
// hear of the first one's revocations, so it refuses to start, saying why;
// once the first is gone (even by SIGKILL) a server starts again.
func TestOneServePerSQLiteFile(t *testing.T) {
	db := filepath.Join(t.TempDir(), "one.db")
	first := startServer(t, "--database", db)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a second server that starts never exits
	defer cancel()
	out, err := exec.CommandContext(ctx, binary(t), "serve", "--addr", "127.0.0.1:0", "--database", db).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another keyplane serve is already using") {
		t.Fatalf("a second serve on the same file: %v\n%s", err, out)
	}
	// Another name of the same file is the same file.
	link := filepath.Join(t.TempDir(), "link.db")
	if err := os.Symlink(db, link); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, binary(t), "serve", "--addr", "127.0.0.1:0", "--database", link).CombinedOutput(); err == nil {
		t.Fatalf("a second serve through a symlink started:\n%s", out)
	}
	first.cmd.Process.Signal(syscall.SIGKILL)
	first.cmd.Wait()
	startServer(t, "--database", db)

	// Refused before it opens the file: a second server must not migrate a
	// database the first one is using.
	fresh := filepath.Join(t.TempDir(), "fresh.db")
	held := flock.New(fresh + ".lock")
	if ok, err := held.TryLock(); !ok || err != nil {
		t.Fatal(ok, err)
	}
	defer held.Unlock()
	if out, err := exec.CommandContext(ctx, binary(t), "serve", "--addr", "127.0.0.1:0", "--database", fresh).CombinedOutput(); err == nil {
		t.Fatalf("serve started on a locked file:\n%s", out)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Fatalf("the refused serve created or opened the database: %v", err)
	}
}

// TestSQLiteLockedByAnotherProcess: while another process holds the write
// lock, cached and new keys keep verifying (WAL lets reads run beside a
// writer), writes answer 503 after the busy timeout, the usage counted
// meanwhile is written once the lock is released, and writes work again.
func TestSQLiteLockedByAnotherProcess(t *testing.T) {
	db := filepath.Join(t.TempDir(), "locked.db")
	s := startServer(t, "--database", db, "--usage-flush-interval", "500ms")
	token := s.token(t)
	acc := s.call(t, token, "POST", "/v1/accounts", map[string]any{"name": "acme", "allowed_scopes": []string{"*"}}, 201)["id"].(string)
	var ids, keys []string
	for range 10 {
		k := s.call(t, token, "POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "k", "scopes": []string{"data:read"}}, 201)
		ids, keys = append(ids, k["id"].(string)), append(keys, k["key"].(string))
	}
	unseen := s.call(t, token, "POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "new", "scopes": []string{"data:read"}}, 201)["key"].(string)
	for _, k := range keys {
		if c := s.code(t, token, k); c != "VALID" {
			t.Fatal(c)
		}
	}

	holder := exec.Command(os.Args[0], "-test.run=^$")
	holder.Env = append(os.Environ(), holdWriteLockEnv+"="+db)
	release, _ := holder.StdinPipe()
	stdout, _ := holder.StdoutPipe()
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "locked\n" {
		t.Fatalf("the lock holder: %q", line)
	}

	var verified, refused atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if status, code := s.verifyOnce(http.DefaultClient, token, keys[i%len(keys)]); status == 200 && code == "VALID" {
				verified.Add(1)
			} else {
				refused.Add(1)
			}
		}
	})
	if c := s.code(t, token, unseen); c != "VALID" {
		t.Errorf("a key first seen while the file is locked: %s", c)
	}
	if got := s.status(t, token, "GET", "/readyz", nil); got != 200 {
		t.Errorf("readyz while only writes are blocked: %d, want 200 (verification works)", got)
	}
	start := time.Now()
	if got := s.status(t, token, "POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "blocked"}); got != 503 {
		t.Errorf("a write while the file is locked: %d, want 503", got)
	}
	t.Logf("a write while the file is locked: 503 after %v (the busy timeout)", time.Since(start).Round(100*time.Millisecond))
	release.Close()
	holder.Wait()
	waitUntil(t, "a write after the lock is released", 15*time.Second, func() bool {
		return s.status(t, token, "POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "after"}) == 201
	})
	close(stop)
	wg.Wait()
	if refused.Load() > 0 {
		t.Fatalf("%d verifications not VALID while the file was locked (%d VALID)", refused.Load(), verified.Load())
	}
	waitUntil(t, "usage counted during the lock written", 15*time.Second, func() bool {
		var total float64
		for _, id := range ids {
			total += s.call(t, token, "GET", "/v1/keys/"+id+"/usage", nil, 200)["totals"].(map[string]any)["requests"].(float64)
		}
		return int64(total) == verified.Load()+int64(len(keys))
	})
	t.Logf("SQLite locked by another process for %v: %d verifications VALID, 0 not", time.Since(start).Round(time.Second), verified.Load())
}
