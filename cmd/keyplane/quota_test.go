package main

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Quota usage counted in memory reaches the database on SIGTERM, even with a
// flush interval far longer than the run, and the restarted server keeps
// counting from there.
func TestQuotaUsageSurvivesARestart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "quota.db")
	s := startServer(t, "--database", db, "--quota-flush-interval", "1h")
	token := s.token(t)
	acc := s.call(t, token, "POST", "/v1/accounts", map[string]any{"name": "Acme"}, 201)
	key := s.call(t, token, "POST", "/v1/accounts/"+acc["id"].(string)+"/keys",
		map[string]any{"name": "metered", "quota": map[string]any{"limit": 10, "period": "month"}}, 201)
	verify := func(s *server) string {
		return s.call(t, token, "POST", "/v1/verify", map[string]any{"key": key["key"]}, 200)["code"].(string)
	}
	for range 7 {
		if code := verify(s); code != "VALID" {
			t.Fatalf("verify: %s", code)
		}
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	if err := waitTimeout(s.cmd, 10*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, s.logs.String())
	}

	s = startServer(t, "--database", db)
	usage := s.call(t, token, "GET", "/v1/keys/"+key["id"].(string)+"/quota", nil, 200)
	if usage["used"] != 7.0 || usage["remaining"] != 3.0 {
		t.Fatalf("after the restart: %v", usage)
	}
	for i, want := range []string{"VALID", "VALID", "VALID", "QUOTA_EXCEEDED"} {
		if code := verify(s); code != want {
			t.Fatalf("verify %d after the restart: %s, want %s", i+1, code, want)
		}
	}
}
