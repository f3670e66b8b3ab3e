package keyplane

import (
	"context"
	"encoding/json"
	"net/netip"
	"time"
)

// VerifyCode is the outcome of a verification; the first failed check wins.
type VerifyCode string

const (
	VerifyValid             VerifyCode = "VALID"
	VerifyNotFound          VerifyCode = "NOT_FOUND"
	VerifyRevoked           VerifyCode = "REVOKED"
	VerifyExpired           VerifyCode = "EXPIRED"
	VerifyDisabled          VerifyCode = "DISABLED"
	VerifyForbidden         VerifyCode = "FORBIDDEN"
	VerifyInsufficientScope VerifyCode = "INSUFFICIENT_SCOPE"
	VerifyRateLimited       VerifyCode = "RATE_LIMITED"
	VerifyQuotaExceeded     VerifyCode = "QUOTA_EXCEEDED"
)

// VerifyRequest asks whether a key may be used. Scope and IP are optional; a
// zero IP means the caller did not say. Cost is what the request charges
// against rate limits and quotas: transports default it to 1; 0 charges
// nothing, so no limit refuses it, and the result still reports what is left.
type VerifyRequest struct {
	Key      string
	Scope    string
	IP       netip.Addr
	Endpoint string
	Cost     int64
}

// VerifyResult answers a VerifyRequest. For NOT_FOUND only Valid and Code are set.
type VerifyResult struct {
	Valid     bool
	Code      VerifyCode
	Key       *Key // nil for NOT_FOUND; shared with the cache, never modify
	RateLimit *RateLimitState
	// Quota is zero (Counted false) when the key has no quota. A value, not
	// a pointer: verification of a metered key then allocates nothing for it.
	Quota      QuotaState
	RetryAfter time.Duration
}

// RateLimitState is the tightest policy's state after a check (the refusing
// one, when refused).
type RateLimitState struct {
	Policy    string
	Limit     int64
	Remaining int64
	Reset     time.Duration // until the policy is fully available again
	Window    time.Duration
}

// QuotaState is the quota's state after a check.
type QuotaState struct {
	Limit       int64
	Used        int64
	Remaining   int64
	Period      QuotaPeriod
	PeriodStart time.Time
	ResetsAt    time.Time
}

// Counted reports whether there is a quota: a zero QuotaState means none.
func (s *QuotaState) Counted() bool { return s.Period != "" }

// Limiter enforces rate limits. Verification calls it last, only when every
// other check passed (a quota charge is refunded when it refuses).
type Limiter interface {
	Check(ctx context.Context, rec *VerifyRecord, cost int64, now time.Time) (LimitDecision, error)
}

// FailureThrottle refuses, for a while, a source address that keeps
// presenting bad keys, before any lookup.
type FailureThrottle interface {
	// Blocked returns how long ip is still refused; 0 when it is not.
	Blocked(ip netip.Addr, now time.Time) time.Duration
	// Failed records a verification from ip that found no usable key.
	Failed(ip netip.Addr, now time.Time)
}

// LimitDecision is a Limiter's answer; Code is VALID or RATE_LIMITED.
type LimitDecision struct {
	Code       VerifyCode
	RateLimit  *RateLimitState
	RetryAfter time.Duration
}

// metadataOrEmpty keeps verify responses well-formed for keys without metadata.
func metadataOrEmpty(m json.RawMessage) json.RawMessage {
	if len(m) == 0 {
		return json.RawMessage("{}")
	}
	return m
}

// MetadataJSON returns the key's metadata, "{}" when it has none.
func (k *Key) MetadataJSON() json.RawMessage { return metadataOrEmpty(k.Metadata) }
