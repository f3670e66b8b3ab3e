package redis_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/keyplane/keyplane/ratelimit/limitertest"
	"github.com/keyplane/keyplane/redis"
	"github.com/keyplane/keyplane/redis/redistest"
)

func TestLimiterConformance(t *testing.T) {
	url := redistest.URL(t)
	bus, err := redis.Open(context.Background(), url, redistest.Channel(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	prefix := "keyplane-test:" + redistest.Channel(t) + ":"
	t.Cleanup(func() { redistest.DeleteKeys(t, url, prefix+"*") })
	l := bus.Limiter(redis.LimiterConfig{KeyPrefix: prefix})
	defer l.Close()
	limitertest.Run(t, l)
}
