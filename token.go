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
type Token struct {
	ID        string
	Name      string
	Role      Role
	Hash      [32]byte
	CreatedAt time.Time
}

// TokenSource finds an operator token by its hash: the store, or a cache in
// front of it. ENOTFOUND when no token has it.
type TokenSource interface {
	TokenByHash(ctx context.Context, hash [32]byte) (*Token, error)
}
