package redis_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/bustest"
	"github.com/keyplane/keyplane/redis"
	"github.com/keyplane/keyplane/redis/redistest"
	goredis "github.com/redis/go-redis/v9"
)

func TestBusConformance(t *testing.T) {
	url, channel := redistest.URL(t), redistest.Channel(t)
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	pub, err := redis.Open(ctx, url, channel, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := redis.Open(ctx, url, channel, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	opt, _ := goredis.ParseURL(url)
	raw := goredis.NewClient(opt)
	defer raw.Close()
	bustest.Run(t, bustest.Harness{
		Publisher:         pub,
		Subscriber:        sub,
		SendRaw:           func(t *testing.T, p string) { raw.Publish(ctx, channel, p) },
		BreakSubscription: func(t *testing.T) { redistest.KillSubscribers(t, url, channel) },
	})
}

func TestOpenUnreachable(t *testing.T) {
	_, err := redis.Open(context.Background(), "redis://127.0.0.1:1/0", "", nil)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("err = %v, want one naming the address", err)
	}
	if _, err := redis.Open(context.Background(), "http://nope", "", nil); err == nil {
		t.Fatal("a non-redis URL was accepted")
	}
}
