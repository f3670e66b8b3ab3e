package ratelimit

import (
	"context"
	"math"
	"math/bits"
	"sync"
	"time"

	"github.com/keyplane/keyplane"
)

// Local is a keyplane.Limiter on in-process state.
type Local struct {
	keys sync.Map // key id → *keyState
	stop chan struct{}
	once sync.Once
}

var _ keyplane.Limiter = (*Local)(nil)

// New starts a limiter; Close stops its sweeper.
func New() *Local {
	l := &Local{stop: make(chan struct{})}
	go l.sweepEvery(time.Minute)
	return l
}

// Close stops the background sweep.
func (l *Local) Close() { l.once.Do(func() { close(l.stop) }) }

// keyState is one key's limiter state, one entry per policy, guarded by mu.
type keyState struct {
	mu       sync.Mutex
	policies [maxPolicies]policyState
	n        int
	// idleAfter is when the state is equal to a fresh one and can be dropped.
	idleAfter int64
	// dead marks a state the sweeper removed: a request that found it before
	// the removal must look again, or its charge would be lost.
	dead bool
}

const maxPolicies = 10

// policyState is the state of one policy, with the configuration it was
// built for: a changed policy starts afresh.
type policyState struct {
	config keyplane.RateLimitPolicy
	limit  int64
	// token_bucket: theoretical arrival time, ns.
	tat int64
	// sliding_window: start of the current fixed window and the two counts.
	windowStart int64
	prev, cur   int64
}

// Check applies every policy of the key at now for cost units: all of them
// admit the request and are charged, or none is.
func (l *Local) Check(_ context.Context, rec *keyplane.VerifyRecord, cost int64, now time.Time) (keyplane.LimitDecision, error) {
	policies := rec.RateLimits()
	if len(policies) == 0 || len(policies) > maxPolicies {
		return keyplane.LimitDecision{Code: keyplane.VerifyValid}, nil
	}
	st := l.lock(rec.Key.ID)
	defer st.mu.Unlock()
	// Microseconds, as the Redis limiter counts (its Lua numbers are doubles),
	// so both give the same answers.
	ts := now.UnixMicro()
	st.sync(policies)

	// First pass: would every policy admit the request? Nothing changes yet.
	var tightest, refused outcome
	for i := range st.n {
		p := &st.policies[i]
		if p.config.Limit == nil {
			continue // unlimited
		}
		o := p.apply(ts, cost, false)
		if !o.allowed {
			if refused.policy == nil || o.retryAfter > refused.retryAfter {
				refused = o
			}
		} else if tightest.policy == nil || o.remaining < tightest.remaining {
			tightest = o
		}
	}
	if refused.policy != nil {
		return keyplane.LimitDecision{Code: keyplane.VerifyRateLimited, RateLimit: refused.state(), RetryAfter: micros(refused.retryAfter)}, nil
	}
	// Second pass: all admit it, so charge them all.
	idle := ts
	for i := range st.n {
		p := &st.policies[i]
		if p.config.Limit != nil {
			p.apply(ts, cost, true)
		}
		idle = max(idle, p.idleAfter(ts))
	}
	st.idleAfter = idle
	d := keyplane.LimitDecision{Code: keyplane.VerifyValid}
	if tightest.policy != nil {
		d.RateLimit = tightest.state()
	}
	return d, nil
}

// lock returns the key's live state, locked.
func (l *Local) lock(keyID string) *keyState {
	for {
		v, ok := l.keys.Load(keyID)
		if !ok {
			v, _ = l.keys.LoadOrStore(keyID, &keyState{})
		}
		st := v.(*keyState)
		st.mu.Lock()
		if !st.dead {
			return st
		}
		st.mu.Unlock()
	}
}

// sync matches the state to the key's policies, keeping the state of those
// whose configuration did not change.
func (st *keyState) sync(policies []keyplane.RateLimitPolicy) {
	if st.n == len(policies) {
		same := true
		for i := range policies {
			if !samePolicy(st.policies[i].config, policies[i]) {
				same = false
				break
			}
		}
		if same {
			return
		}
	}
	var fresh [maxPolicies]policyState
	for i, p := range policies {
		fresh[i] = policyState{config: p}
		for j := range st.n {
			if samePolicy(st.policies[j].config, p) {
				fresh[i] = st.policies[j]
			}
		}
		if p.Limit != nil {
			fresh[i].limit = *p.Limit
		}
	}
	st.policies, st.n = fresh, len(policies)
}

func samePolicy(a, b keyplane.RateLimitPolicy) bool {
	return a.Name == b.Name && a.WindowSeconds == b.WindowSeconds && a.Burst == b.Burst && a.Algorithm == b.Algorithm &&
		(a.Limit == nil) == (b.Limit == nil) && (a.Limit == nil || *a.Limit == *b.Limit)
}

// outcome is one policy's answer.
type outcome struct {
	allowed    bool
	policy     *keyplane.RateLimitPolicy
	limit      int64
	remaining  int64
	reset      int64 // µs until the policy is fully available again
	retryAfter int64 // µs, when refused; math.MaxInt64 for never
}

func (o *outcome) state() *keyplane.RateLimitState {
	return &keyplane.RateLimitState{Policy: o.policy.Name, Limit: o.limit, Remaining: o.remaining,
		Reset: micros(o.reset), Window: time.Duration(o.policy.WindowSeconds) * time.Second}
}

func (p *policyState) window() int64 { return p.config.WindowSeconds * 1_000_000 } // µs

// micros converts µs to a Duration, keeping "never" as the longest duration.
func micros(v int64) time.Duration {
	if v > math.MaxInt64/1000 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(v) * time.Microsecond
}

// apply answers whether cost may pass at now and, when commit is set and it
// may, charges it. Without commit the state is left as it was.
func (p *policyState) apply(now, cost int64, commit bool) outcome {
	o := outcome{policy: &p.config, limit: p.limit}
	if p.config.Algorithm == keyplane.SlidingWindow {
		p.slidingWindow(now, cost, commit, &o)
	} else {
		p.tokenBucket(now, cost, commit, &o)
	}
	return o
}

// tokenBucket is GCRA. With emission interval T = window/limit and a burst
// of B (default: the limit), a request of cost c is admitted when the
// theoretical arrival time, advanced by c·T, is at most B·T ahead of now.
func (p *policyState) tokenBucket(now, cost int64, commit bool, o *outcome) {
	burst := p.config.Burst
	if burst == 0 {
		burst = p.limit
	}
	if p.limit <= 0 || burst <= 0 {
		o.retryAfter = p.window()
		o.reset = p.window()
		return
	}
	interval := ceilDiv(p.window(), p.limit) // µs per unit, rounded up: never over-admit
	capacity, overflow := mul(interval, burst)
	increment, overflow2 := mul(interval, cost)
	if overflow || overflow2 || cost > burst {
		o.retryAfter = math.MaxInt64 // this cost can never pass
		o.reset = p.window()
		return
	}
	tat := max(p.tat, now)
	newTAT := tat + increment
	allowAt := newTAT - capacity
	if now < allowAt {
		o.retryAfter = allowAt - now
		o.reset = tat - now
		o.remaining = max(0, (now+capacity-tat)/interval)
		return
	}
	if commit {
		p.tat = newTAT
	}
	o.allowed = true
	o.remaining = (now + capacity - newTAT) / interval
	o.reset = newTAT - now
}

// slidingWindow estimates the count over the last window as the current
// fixed window's count plus the previous one's, weighted by its overlap.
func (p *policyState) slidingWindow(now, cost int64, commit bool, o *outcome) {
	w := p.window()
	start := now - now%w
	prev, cur := p.prev, p.cur
	switch {
	case p.windowStart == start:
	case p.windowStart == start-w:
		prev, cur = p.cur, 0
	default:
		prev, cur = 0, 0
	}
	elapsed := now - start
	used := cur
	if prev > 0 {
		used += int64(math.Ceil(float64(prev) * float64(w-elapsed) / float64(w))) // round up: never over-admit
	}
	o.reset = start + w - now
	if used+cost > p.limit {
		o.remaining = max(0, p.limit-used)
		o.retryAfter = p.slidingRetry(start, prev, cur, now, cost)
		if cost > p.limit {
			o.retryAfter, o.remaining = math.MaxInt64, 0 // this cost can never pass
		}
		return
	}
	if commit {
		p.windowStart, p.prev, p.cur = start, prev, cur+cost
	}
	o.allowed = true
	o.remaining = p.limit - used - cost
}

// slidingRetry is how long until cost fits: when the previous window's
// weight has shrunk enough, or failing that, the next window.
func (p *policyState) slidingRetry(start, prev, cur, now, cost int64) int64 {
	w := p.window()
	untilNext := start + w - now
	room := p.limit - cur - cost
	if room < 0 || prev == 0 {
		return untilNext
	}
	// prev·(w-e)/w ≤ room  ⇔  e ≥ w·(1 - room/prev)
	e := int64(math.Ceil(float64(w) * (1 - float64(room)/float64(prev))))
	return max(1, min(e-(now-start), untilNext))
}

// idleAfter is when this policy's state is equal to a fresh one.
func (p *policyState) idleAfter(now int64) int64 {
	if p.config.Algorithm == keyplane.SlidingWindow {
		return p.windowStart + 2*p.window()
	}
	return max(p.tat, now)
}

func (l *Local) sweepEvery(d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case now := <-t.C:
			l.sweep(now.UnixMicro())
		}
	}
}

// sweep drops the state of keys that have been idle long enough to be fresh.
func (l *Local) sweep(now int64) {
	l.keys.Range(func(k, v any) bool {
		st := v.(*keyState)
		st.mu.Lock()
		if st.idleAfter < now {
			st.dead = true
			l.keys.CompareAndDelete(k, v)
		}
		st.mu.Unlock()
		return true
	})
}

// Len is how many keys have state, for tests and metrics.
func (l *Local) Len() int {
	n := 0
	l.keys.Range(func(any, any) bool { n++; return true })
	return n
}

// ceilDiv divides rounding up, without the overflow of (a+b-1)/b.
func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 {
		q++
	}
	return q
}

// mul multiplies non-negative a and b, reporting overflow of int64.
func mul(a, b int64) (int64, bool) {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	return int64(lo), hi != 0 || lo > math.MaxInt64
}
