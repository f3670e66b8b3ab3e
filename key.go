package keyplane

import (
	"encoding/json"
	"net/netip"
	"time"
)

// Environment separates production keys from test keys; it is part of the key text.
type Environment string

const (
	EnvLive Environment = "live"
	EnvTest Environment = "test"
)

// Valid reports whether e is a known environment.
func (e Environment) Valid() bool { return e == EnvLive || e == EnvTest }

// KeyStatus is derived from a key's fields and the current time; it is never stored.
type KeyStatus string

const (
	KeyActive   KeyStatus = "active"
	KeyDisabled KeyStatus = "disabled"
	KeyRolling  KeyStatus = "rolling" // rolled, still valid until its overlap ends
	KeyExpired  KeyStatus = "expired"
	KeyRevoked  KeyStatus = "revoked"
)

// Valid reports whether s is a known status.
func (s KeyStatus) Valid() bool {
	switch s {
	case KeyActive, KeyDisabled, KeyRolling, KeyExpired, KeyRevoked:
		return true
	}
	return false
}

// Key is an API key. Its plaintext is never stored: only its SHA-256 and a hint.
type Key struct {
	ID           string
	AccountID    string
	Name         string
	Environment  Environment
	Hash         [32]byte
	Hint         string
	Scopes       []string
	AllowedCIDRs []netip.Prefix    // empty means any address
	RateLimits   []RateLimitPolicy // nil means the plan's
	Quota        *Quota            // nil means the plan's
	Metadata     json.RawMessage   // a JSON object, returned by verify
	Enabled      bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
	ExpiresAt    *time.Time
	RevokedAt    *time.Time
	LastUsedAt   *time.Time // from the usage totals: the last verification, as of the last flush
	// TotalRequests is how many times the key was verified, as of the last
	// flush; the service fills it from the usage totals.
	TotalRequests int64
	RolledFromID  string // the key this one replaced
	RolledToID    string // the key that replaced this one
	// LeakedAt is when the key was first reported as leaked (by GitHub's
	// secret scanning or a report); nil if never. A second report changes
	// nothing.
	LeakedAt   *time.Time
	LeakSource string // who reported it: LeakSourceGitHub or LeakSourceReport
	LeakURL    string // where it was found, as the reporter said; may be empty
}

// Who reported a leaked key.
const (
	LeakSourceGitHub = "github"
	LeakSourceReport = "report"
)

// LeakAction is what happens to a key reported as leaked.
type LeakAction string

const (
	LeakRevoke  LeakAction = "revoke"  // revoke it now, for good (the default)
	LeakDisable LeakAction = "disable" // disable it; the owner may enable it again
	LeakNotify  LeakAction = "notify"  // only record it, audit it and raise key.leaked
)

// Valid reports whether a is a known action.
func (a LeakAction) Valid() bool { return a == LeakRevoke || a == LeakDisable || a == LeakNotify }

// Status derives the key's status at now. The order matters: a revoked key is
// revoked whatever else is true of it.
func (k *Key) Status(now time.Time) KeyStatus {
	switch {
	case k.RevokedAt != nil:
		return KeyRevoked
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return KeyExpired
	case !k.Enabled:
		return KeyDisabled
	case k.RolledToID != "":
		return KeyRolling
	}
	return KeyActive
}

// Algorithm is a rate-limiting algorithm.
type Algorithm string

const (
	TokenBucket   Algorithm = "token_bucket"
	SlidingWindow Algorithm = "sliding_window"
)

// RateLimitPolicy is one named limit on a key; all of a key's policies apply.
type RateLimitPolicy struct {
	Name          string    `json:"name"`
	Limit         *int64    `json:"limit"` // nil means unlimited
	WindowSeconds int64     `json:"window_seconds"`
	Burst         int64     `json:"burst,omitempty"`
	Algorithm     Algorithm `json:"algorithm"`
}
