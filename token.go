package keyplane

import (
	"context"
	"time"
)

// Role is what an operator token may do.
type Role string

const (
	RoleAdmin  Role = "admin"  // everything
	RoleVerify Role = "verify" // verification only
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleVerify }

// Token is an operator's bearer token. Like keys, only its SHA-256 is stored.
// A token with an AccountID acts for that account only, as a portal member
// does: another account's ids are not found, and operator-wide calls
// (accounts, plans, tokens) are forbidden.
type Token struct {
	ID        string
	Name      string
	Role      Role
	AccountID string
	Hash      [32]byte
	CreatedAt time.Time
	UpdatedAt time.Time
	ExpiresAt *time.Time
	RevokedAt *time.Time
}

// Usable reports whether the token may authenticate at now.
func (t *Token) Usable(now time.Time) bool {
	return t.RevokedAt == nil && (t.ExpiresAt == nil || now.Before(*t.ExpiresAt))
}

// TokenSource finds an operator token by its hash: the store, or a cache in
// front of it. ENOTFOUND when no token has it.
type TokenSource interface {
	TokenByHash(ctx context.Context, hash [32]byte) (*Token, error)
}
