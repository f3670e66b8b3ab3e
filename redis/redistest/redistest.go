package redistest

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/keyplane/keyplane/tcpproxy"
	goredis "github.com/redis/go-redis/v9"
)

// DefaultURL is the local development server.
const DefaultURL = "redis://127.0.0.1:6379/0"

// URL returns $KEYPLANE_TEST_REDIS or DefaultURL once the server answers.
// Without a server it skips the test, except in CI (CI=true), where a missing
// server must fail the build rather than hide it.
func URL(t testing.TB) string {
	t.Helper()
	url := cmp.Or(os.Getenv("KEYPLANE_TEST_REDIS"), DefaultURL)
	opt, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatalf("redistest: KEYPLANE_TEST_REDIS: %v", err)
	}
	c := goredis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redistest: Redis at %s is required in CI: %v", opt.Addr, err)
		}
		t.Skipf("redistest: no Redis at %s (%v); set KEYPLANE_TEST_REDIS or start redis-server", opt.Addr, err)
	}
	return url
}

// Channel returns a channel name no other test uses.
func Channel(t testing.TB) string {
	var b [8]byte
	rand.Read(b[:])
	return "keyplane-test:" + t.Name() + ":" + hex.EncodeToString(b[:])
}

// KillSubscribers closes, on the server side, every pub/sub connection
// subscribed to channel: what a Redis restart or a network cut does to them.
func KillSubscribers(t testing.TB, url, channel string) {
	t.Helper()
	opt, _ := goredis.ParseURL(url)
	c := goredis.NewClient(opt)
	defer c.Close()
	ctx := context.Background()
	n, err := c.PubSubNumSub(ctx, channel).Result()
	if err != nil || n[channel] == 0 {
		t.Fatalf("no subscriber on %s: %v", channel, err)
	}
	if err := c.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
}

// DeleteKeys removes the keys matching pattern, for a test's cleanup.
func DeleteKeys(t testing.TB, url, pattern string) {
	opt, _ := goredis.ParseURL(url)
	c := goredis.NewClient(opt)
	defer c.Close()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		c.Del(ctx, iter.Val())
	}
}

// BehindProxy returns a URL that reaches the Redis at url through a proxy
// the test can take down.
func BehindProxy(t testing.TB, url string) (string, *tcpproxy.Proxy) {
	t.Helper()
	opt, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	p := tcpproxy.Start(t, opt.Addr)
	return "redis://" + p.Addr() + "/" + strconv.Itoa(opt.DB), p
}
