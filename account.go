package keyplane

import "time"

// AccountStatus is whether an account's keys may be used.
type AccountStatus string

const (
	AccountActive    AccountStatus = "active"
	AccountSuspended AccountStatus = "suspended"
)

// Valid reports whether s is a known status.
func (s AccountStatus) Valid() bool { return s == AccountActive || s == AccountSuspended }

// Account is a customer of the operator; its members manage its keys.
type Account struct {
	ID            string
	Name          string
	Plan          string
	AllowedScopes []string // what its keys may be granted; wildcards allowed
	Status        AccountStatus
	CreatedAt     time.Time
	UpdatedAt     time.Time
}
