package keyplane

import "time"

// DefaultPlanName is the plan that exists from the start: no rate limits or
// quota, 25 active keys, every scope.
const DefaultPlanName = "default"

// Plan is a tier of service that accounts name: the defaults their keys
// inherit and the bounds their accounts live within.
type Plan struct {
	Name string
	// RateLimits apply to keys that have none of their own; nil is unlimited.
	RateLimits []RateLimitPolicy
	// Quota applies to keys that have none of their own; nil is none.
	Quota *Quota
	// MaxKeys caps each account's active keys.
	MaxKeys int
	// AllowedScopes bounds what any account on the plan may grant.
	AllowedScopes []string
	// KeyPolicy bounds the expiry of keys created or rolled on accounts of
	// the plan; nil is none.
	KeyPolicy *KeyPolicy
	CreatedAt time.Time
	UpdatedAt time.Time
}

// KeyPolicy is what a plan requires of its accounts' keys.
type KeyPolicy struct {
	// RequireExpiry refuses keys without an expiry.
	RequireExpiry bool `json:"require_expiry"`
	// MaxLifetimeDays, when positive, caps how far past its creation (or
	// roll) a key may expire.
	MaxLifetimeDays int `json:"max_lifetime_days,omitempty"`
}

// MaxLifetime is the policy's cap as a duration; 0 is none.
func (p *KeyPolicy) MaxLifetime() time.Duration {
	if p == nil || p.MaxLifetimeDays <= 0 {
		return 0
	}
	return time.Duration(p.MaxLifetimeDays) * 24 * time.Hour
}
