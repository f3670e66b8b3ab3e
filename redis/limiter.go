package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/keyplane/keyplane"
	goredis "github.com/redis/go-redis/v9"
)

// DefaultKeyPrefix begins every key the limiter writes.
const DefaultKeyPrefix = "keyplane:rl:"

// Limiter is a keyplane.Limiter on Redis, shared by every instance: one
// round trip per verification, all of a key's policies checked and charged
// atomically by one script, state that expires by itself when idle. The
// algorithms are the in-process limiter's (package ratelimit); the
// limitertest suite holds both to the same answers.
type Limiter struct {
	client   *goredis.Client
	prefix   string
	fallback keyplane.Limiter // used while Redis is down, when failing open
	log      *slog.Logger
	// downUntil (Unix ns) skips Redis for a moment after a failure, so an
	// outage costs each verification nothing rather than a dial or a timeout.
	downUntil atomic.Int64
}

// limiterTimeout bounds a limiter round trip: verification waits on it.
const limiterTimeout = 250 * time.Millisecond

// breakerPause is how long after a failure the limiter stops asking Redis.
const breakerPause = time.Second

// LimiterConfig tunes a Limiter.
type LimiterConfig struct {
	// KeyPrefix begins every Redis key; tests and deployments sharing a
	// server use their own. Default DefaultKeyPrefix.
	KeyPrefix string
	// FailOpen, when Redis cannot be reached, limits with Fallback (the
	// instance's own limiter) instead of refusing: availability over
	// exactness. Without it verification answers 503 until Redis is back.
	FailOpen bool
	Fallback keyplane.Limiter
	// Timeout bounds each round trip; default 250 ms. Tests on a loaded
	// machine raise it so a slow answer is not mistaken for an outage.
	Timeout time.Duration
}

var _ keyplane.Limiter = (*Limiter)(nil)

// Limiter returns a limiter on the bus's Redis server, with a connection
// pool of its own: no retries and short timeouts, since every verification
// waits for it. Close closes the pool.
func (b *Bus) Limiter(cfg LimiterConfig) *Limiter {
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	opt := *b.client.Options()
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = limiterTimeout
	}
	// Each way a round trip can wait is bounded by timeout, and none is
	// repeated: no command retries, one dial attempt (go-redis dials up to
	// 5 times, 100 ms apart, by default: 405 ms for a refused connection,
	// 1.65 s for a dropped one), no wait for a pool slot beyond it. Dialer
	// is the bus's, built with the bus's 5 s dial timeout; nil builds one
	// with this one.
	opt.MaxRetries = -1
	opt.DialerRetries = 1
	opt.Dialer = nil
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = timeout, timeout, timeout, timeout
	l := &Limiter{client: goredis.NewClient(&opt), prefix: cfg.KeyPrefix, log: b.log}
	if cfg.FailOpen {
		l.fallback = cfg.Fallback
	}
	return l
}

// script checks every policy (KEYS[i]) at ARGV[1] (µs) for ARGV[2] units,
// and charges them only if all admit. Per policy, ARGV holds the algorithm
// ("t" token bucket, "s" sliding window), the limit, the window (µs) and the
// burst. It returns, per policy: allowed, remaining, reset (µs), retry (µs).
// Lua numbers are doubles: µs since 1970 stay exact (below 2^53).
var script = goredis.NewScript(`
local now, cost = tonumber(ARGV[1]), tonumber(ARGV[2])
local out, writes, refused = {}, {}, false
for i = 1, #KEYS do
  local b = 2 + (i - 1) * 4
  local algo, limit, window, burst = ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  if algo == "t" then
    local interval = math.ceil(window / limit)
    local capacity = interval * burst
    local tat = tonumber(redis.call("GET", KEYS[i]) or now)
    if tat < now then tat = now end
    local newtat = tat + interval * cost
    local allowAt = newtat - capacity
    if now < allowAt then
      refused = true
      out[#out + 1] = 0; out[#out + 1] = math.max(0, math.floor((now + capacity - tat) / interval))
      out[#out + 1] = tat - now; out[#out + 1] = allowAt - now
    else
      writes[i] = {"t", newtat, newtat - now}
      out[#out + 1] = 1; out[#out + 1] = math.floor((now + capacity - newtat) / interval)
      out[#out + 1] = newtat - now; out[#out + 1] = 0
    end
  else
    local start = now - (now % window)
    local st = redis.call("HMGET", KEYS[i], "s", "p", "c")
    local s, prev, cur = tonumber(st[1] or -1), tonumber(st[2] or 0), tonumber(st[3] or 0)
    -- An instance whose clock runs a little behind must not move the window
    -- back (and wipe its counts): it counts in the newer window.
    if s > start then start = s end
    if s ~= start then
      if s == start - window then prev, cur = cur, 0 else prev, cur = 0, 0 end
    end
    local used = cur
    local elapsed = math.max(0, now - start)
    if prev > 0 then used = used + math.ceil(prev * (window - elapsed) / window) end
    local reset = start + window - now
    if used + cost > limit then
      refused = true
      local retry = reset
      local room = limit - cur - cost
      if room >= 0 and prev > 0 then
        local e = math.ceil(window * (1 - room / prev))
        retry = math.max(1, math.min(e - elapsed, reset))
      end
      out[#out + 1] = 0; out[#out + 1] = math.max(0, limit - used); out[#out + 1] = reset; out[#out + 1] = retry
    else
      writes[i] = {"s", start, prev, cur + cost, start + 2 * window - now}
      out[#out + 1] = 1; out[#out + 1] = limit - used - cost; out[#out + 1] = reset; out[#out + 1] = 0
    end
  end
end
if not refused then
  for i, w in pairs(writes) do
    if w[1] == "t" then
      redis.call("SET", KEYS[i], w[2], "PX", math.max(1, math.ceil(w[3] / 1000)))
    else
      redis.call("HSET", KEYS[i], "s", w[2], "p", w[3], "c", w[4])
      redis.call("PEXPIRE", KEYS[i], math.max(1, math.ceil(w[5] / 1000)))
    end
  end
end
return out
`)

// Check applies the key's policies in Redis.
func (l *Limiter) Check(ctx context.Context, rec *keyplane.VerifyRecord, cost int64, now time.Time) (keyplane.LimitDecision, error) {
	policies := rec.RateLimits()
	if len(policies) == 0 {
		return keyplane.LimitDecision{Code: keyplane.VerifyValid}, nil // no allocation for unlimited keys
	}
	keys := make([]string, 0, len(policies))
	args := make([]any, 2, 2+4*len(policies))
	args[0], args[1] = now.UnixMicro(), cost
	var active []*keyplane.RateLimitPolicy
	for i := range policies {
		p := &policies[i]
		if p.Limit == nil {
			continue // unlimited
		}
		burst := p.Burst
		if burst == 0 {
			burst = *p.Limit
		}
		if *p.Limit <= 0 || burst <= 0 || p.Algorithm == keyplane.TokenBucket && cost > burst || p.Algorithm == keyplane.SlidingWindow && cost > *p.Limit {
			// Refused whatever the state: no need to ask.
			return refuse(p, *p.Limit, time.Duration(p.WindowSeconds)*time.Second, cost > burst), nil
		}
		algo := "t"
		if p.Algorithm == keyplane.SlidingWindow {
			algo = "s"
		}
		// The configuration is part of the name: a changed policy starts afresh.
		keys = append(keys, l.prefix+rec.Key.ID+":"+p.Name+":"+algo+":"+strconv.FormatInt(*p.Limit, 10)+":"+
			strconv.FormatInt(p.WindowSeconds, 10)+":"+strconv.FormatInt(burst, 10))
		args = append(args, algo, *p.Limit, p.WindowSeconds*1_000_000, burst)
		active = append(active, p)
	}
	if len(active) == 0 {
		return keyplane.LimitDecision{Code: keyplane.VerifyValid}, nil
	}
	var vals []int64
	var err error
	if wall := time.Now().UnixNano(); wall < l.downUntil.Load() {
		err = errBreakerOpen
	} else if vals, err = script.Run(ctx, l.client, keys, args...).Int64Slice(); err != nil && ctx.Err() == nil {
		if l.downUntil.Swap(wall+int64(breakerPause)) < wall-int64(breakerPause) {
			l.log.Warn("rate limiter: Redis unavailable", "fail_open", l.fallback != nil, "error", err)
		}
	}
	if err != nil {
		if l.fallback != nil {
			return l.fallback.Check(ctx, rec, cost, now)
		}
		return keyplane.LimitDecision{}, &keyplane.Error{Code: keyplane.EUNAVAILABLE, Message: "the rate limiter is unavailable", Err: err}
	}
	if len(vals) != 4*len(active) {
		return keyplane.LimitDecision{}, fmt.Errorf("redis: rate limit script returned %d values for %d policies", len(vals), len(active))
	}
	var tightest, refusedAt = -1, -1
	for i := range active {
		allowed, remaining, retry := vals[4*i] == 1, vals[4*i+1], vals[4*i+3]
		if !allowed {
			if refusedAt < 0 || retry > vals[4*refusedAt+3] {
				refusedAt = i
			}
		} else if tightest < 0 || remaining < vals[4*tightest+1] {
			tightest = i
		}
	}
	state := func(i int) *keyplane.RateLimitState {
		p := active[i]
		return &keyplane.RateLimitState{Policy: p.Name, Limit: *p.Limit, Remaining: vals[4*i+1],
			Reset: time.Duration(vals[4*i+2]) * time.Microsecond, Window: time.Duration(p.WindowSeconds) * time.Second}
	}
	if refusedAt >= 0 {
		return keyplane.LimitDecision{Code: keyplane.VerifyRateLimited, RateLimit: state(refusedAt),
			RetryAfter: time.Duration(vals[4*refusedAt+3]) * time.Microsecond}, nil
	}
	return keyplane.LimitDecision{Code: keyplane.VerifyValid, RateLimit: state(tightest)}, nil
}

var errBreakerOpen = errors.New("redis: not asked for a moment after a failure")

// Close closes the limiter's connections.
func (l *Limiter) Close() error { return l.client.Close() }

// refuse answers a request no state could admit (limit 0, or a cost above
// the burst).
func refuse(p *keyplane.RateLimitPolicy, limit int64, window time.Duration, never bool) keyplane.LimitDecision {
	retry := window
	if never {
		retry = time.Duration(math.MaxInt64)
	}
	return keyplane.LimitDecision{Code: keyplane.VerifyRateLimited, RetryAfter: retry,
		RateLimit: &keyplane.RateLimitState{Policy: p.Name, Limit: limit, Reset: window, Window: window}}
}
