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
	CreatedAt     time.Time
	UpdatedAt     time.Time
}
