package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/keyplane/keyplane/postgres/postgrestest"
	"github.com/keyplane/keyplane/redis/redistest"
)

// TestClusterPropagation starts two instances on one PostgreSQL database,
// changes keys through one and measures how long the other keeps accepting
// them: after a revocation, a zero-overlap roll and an account suspension,
// and after the end of a roll's overlap. Changes travel over Redis pub/sub
// and, without Redis, over LISTEN/NOTIFY. The cache TTL is set to 10 minutes,
// so only the change bus can explain a quick refusal.
//
// The target is p99 ≤ 100 ms; the test fails only past 1 s, a bound no
// scheduling hiccup under -race reaches but a broken bus (falling back to
// the TTL) cannot meet. It logs the measured figures.
func TestClusterPropagation(t *testing.T) {
	for _, bus := range []string{"redis", "postgres"} {
		t.Run(bus, func(t *testing.T) {
			args := clusterArgs(t, bus)
			a := startServer(t, args...)
			token := a.token(t)
			other := startServer(t, args...)
			measurePropagation(t, a, other, token)
		})
	}
}

func measurePropagation(t *testing.T, a, b *server, token string) {
	account := func() string {
		return a.call(t, token, "POST", "/v1/accounts", map[string]any{"name": "acme", "allowed_scopes": []string{"*"}}, 201)["id"].(string)
	}
	newKey := func(acc string) (id, plaintext string) {
		k := a.call(t, token, "POST", "/v1/accounts/"+acc+"/keys", map[string]any{"name": "k", "scopes": []string{"data:read"}}, 201)
		return k["id"].(string), k["key"].(string)
	}
	codeOnB := func(key string) string {
		return b.call(t, token, "POST", "/v1/verify", map[string]any{"key": key, "scope": "data:read"}, 200)["code"].(string)
	}
	// trial caches the key on B, makes the change on A and returns how long B
	// still said VALID after A answered.
	trial := func(key string, change func(), want string) time.Duration {
		if c := codeOnB(key); c != "VALID" {
			t.Fatalf("before the change: %s", c)
		}
		change()
		changed := time.Now()
		for {
			c := codeOnB(key)
			if c == want {
				return time.Since(changed)
			}
			if c != "VALID" {
				t.Fatalf("got %s, want VALID then %s", c, want)
			}
			if time.Since(changed) > time.Second {
				t.Fatalf("B still accepts the key 1 s after the change (want %s)", want)
			}
		}
	}

	acc := account()
	var revoke, roll, suspend []time.Duration
	for range 20 { // 20 keys per account: the cap is 25
		id, key := newKey(acc)
		revoke = append(revoke, trial(key, func() { a.call(t, token, "POST", "/v1/keys/"+id+"/revoke", nil, 200) }, "REVOKED"))
	}
	acc = account()
	for range 10 {
		id, key := newKey(acc)
		roll = append(roll, trial(key, func() {
			a.call(t, token, "POST", "/v1/keys/"+id+"/roll", map[string]any{"overlap_seconds": 0}, 201)
		}, "REVOKED"))
	}
	for range 10 {
		acc := account()
		_, key := newKey(acc)
		suspend = append(suspend, trial(key, func() {
			a.call(t, token, "PATCH", "/v1/accounts/"+acc, map[string]any{"status": "suspended"}, 200)
		}, "DISABLED"))
	}

	// A plan's change reaches B: narrowing its scopes refuses the keys of
	// every account on it.
	var plan []time.Duration
	for i := range 10 {
		name := fmt.Sprintf("tier%d", i)
		a.call(t, token, "POST", "/v1/plans", map[string]any{"name": name}, 201)
		acc := a.call(t, token, "POST", "/v1/accounts", map[string]any{"name": "acme", "plan": name, "allowed_scopes": []string{"*"}}, 201)["id"].(string)
		_, key := newKey(acc)
		plan = append(plan, trial(key, func() {
			a.call(t, token, "PATCH", "/v1/plans/"+name, map[string]any{"allowed_scopes": []string{"billing:*"}}, 200)
		}, "INSUFFICIENT_SCOPE"))
	}

	// A roll's overlap ends on B on time: B learns the new expiry from the
	// roll's notification and compares it with its own clock.
	acc = account()
	id, key := newKey(acc)
	codeOnB(key)
	prev := a.call(t, token, "POST", "/v1/keys/"+id+"/roll", map[string]any{"overlap_seconds": 1}, 201)["previous"].(map[string]any)
	expires, err := time.Parse(time.RFC3339Nano, prev["expires_at"].(string))
	if err != nil {
		t.Fatal(err)
	}
	for codeOnB(key) == "VALID" {
		if time.Since(expires) > time.Second {
			t.Fatal("B still accepts a rolled key 1 s after its overlap ended")
		}
	}
	overlapEnd := max(time.Since(expires), 0)
	if c := codeOnB(key); c != "EXPIRED" {
		t.Fatalf("after the overlap: %s", c)
	}

	all := slices.Concat(revoke, roll, suspend, plan)
	t.Logf("propagation to the other instance: revoke %s; roll %s; suspend %s; plan %s; all %s; overlap end seen %v after expires_at",
		summary(revoke), summary(roll), summary(suspend), summary(plan), summary(all), overlapEnd.Round(time.Microsecond))
}

// summary gives p50, p99 and max of durations.
func summary(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	pct := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", len(s), pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond))
}

// TestClusterTokenRevocation: an operator token revoked through one instance
// is refused by the other within milliseconds (over the change bus), though
// the other had it cached, and the revoking instance refuses it at once.
func TestClusterTokenRevocation(t *testing.T) {
	for _, bus := range []string{"redis", "postgres"} {
		t.Run(bus, func(t *testing.T) {
			args := clusterArgs(t, bus)
			a := startServer(t, args...)
			admin := a.token(t)
			other := startServer(t, args...)
			var took []time.Duration
			for range 5 {
				created := a.call(t, admin, "POST", "/v1/tokens", map[string]any{"name": "api", "role": "verify"}, 201)
				tok := created["token"].(string)
				if got := other.status(t, tok, "POST", "/v1/verify", map[string]any{"key": "kp_live_x"}); got != 200 {
					t.Fatalf("the new token on the other instance: %d", got)
				}
				a.call(t, admin, "POST", "/v1/tokens/"+created["id"].(string)+"/revoke", nil, 200)
				revoked := time.Now()
				if got := a.status(t, tok, "POST", "/v1/verify", map[string]any{"key": "kp_live_x"}); got != 401 {
					t.Fatalf("the revoking instance: %d, want 401 at once", got)
				}
				waitUntil(t, "the revoked token refused by the other instance", time.Second, func() bool {
					return other.status(t, tok, "POST", "/v1/verify", map[string]any{"key": "kp_live_x"}) == 401
				})
				took = append(took, time.Since(revoked))
			}
			t.Logf("token revocation seen by the other instance (%s): %s", bus, summary(took))
		})
	}
}

// clusterArgs are the flags of instances sharing a new PostgreSQL database
// and a change channel of their own, over Redis or LISTEN/NOTIFY (bus), with
// a cache TTL of 10 minutes: only the bus can explain a quick refusal.
func clusterArgs(t *testing.T, bus string) []string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	args := []string{"--database", postgrestest.NewDatabase(t), "--cache-ttl", "10m", "--change-channel", "keyplane_test_" + hex.EncodeToString(b[:])}
	if bus == "redis" {
		args = append(args, "--redis", redistest.URL(t))
	}
	return args
}
