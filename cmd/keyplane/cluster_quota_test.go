package main

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane/postgres/postgrestest"
)

// TestClusterQuota runs two instances on one PostgreSQL database and sends a
// key with a quota of 100 three times that, paced over 3 s and spread over
// both. Each instance learns the other's usage when it writes its own (every
// 100 ms here), so together they may overshoot by what they admit in about
// one interval; two instances that did not share counts would admit 200.
func TestClusterQuota(t *testing.T) {
	dbURL := postgrestest.NewDatabase(t)
	args := []string{"--database", dbURL, "--quota-flush-interval", "100ms"}
	a := startServer(t, args...)
	token := a.token(t)
	b := startServer(t, args...)
	acc := a.call(t, token, "POST", "/v1/accounts", map[string]any{"name": "acme"}, 201)["id"].(string)
	const limit = 100
	key := a.call(t, token, "POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "k",
		"quota": map[string]any{"limit": limit, "period": "day"}}, 201)["key"].(string)

	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	tick := time.NewTicker(10 * time.Millisecond) // 100 requests a second
	defer tick.Stop()
	for i := range 3 * limit {
		<-tick.C
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			switch code := s.call(t, token, "POST", "/v1/verify", map[string]any{"key": key}, 200)["code"]; code {
			case "VALID":
				admitted.Add(1)
			case "QUOTA_EXCEEDED":
				refused.Add(1)
			default:
				t.Errorf("verify: %v", code)
			}
		})
	}
	wg.Wait()
	got := admitted.Load()
	t.Logf("quota across two instances: limit %d, %d requests, admitted %d (overshoot %d, %.1f %%), refused %d",
		limit, 3*limit, got, got-limit, float64(got-limit)*100/limit, refused.Load())
	if got < limit || got > limit+limit/4 {
		t.Fatalf("admitted %d with a quota of %d: want at least the quota and at most a flush interval's worth more", got, limit)
	}
}
