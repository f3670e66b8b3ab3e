package keyplane

import (
	"context"
	"encoding/base64"
	"time"
)

// Store is the source of truth. SQLite and PostgreSQL implement it, and the
// storetest suite holds both to the same behaviour.
//
// Implementations return *Error with ENOTFOUND for missing rows, ECONFLICT for
// uniqueness violations and EUNAVAILABLE when the database cannot be reached.
// Update callbacks run inside the store's transaction with the row locked, so a
// read-modify-write is atomic; an error from the callback aborts it.
// Every write appends, in its own transaction, the pending events of the
// AuditTrail its context carries (see WithAuditTrail), and writes the
// webhook events raised on it to the outbox.
type Store interface {
	CreateAccount(ctx context.Context, a *Account) error
	Account(ctx context.Context, id string) (*Account, error)
	ListAccounts(ctx context.Context, page Page) ([]*Account, string, error)
	UpdateAccount(ctx context.Context, id string, update func(*Account) error) (*Account, error)

	// CreateKey inserts k unless its account already has maxActive keys that
	// count toward the cap at now (ELIMIT), checked atomically with the insert.
	CreateKey(ctx context.Context, k *Key, maxActive int, now time.Time) error
	Key(ctx context.Context, id string) (*Key, error)
	ListKeys(ctx context.Context, filter KeyFilter) ([]*Key, string, error)
	UpdateKey(ctx context.Context, id string, update func(*Key) error) (*Key, error)
	// RollKey locks the old key, lets roll change it and build its successor,
	// and writes both in one transaction: there is no moment where neither works.
	RollKey(ctx context.Context, oldID string, roll func(old *Key) (*Key, error)) (old, successor *Key, err error)
	// VerifyRecord returns what verification needs about the key with this hash.
	VerifyRecord(ctx context.Context, hash [32]byte) (*VerifyRecord, error)

	// CreatePlan inserts p (ECONFLICT if the name is taken). Plans are listed
	// by name; the cursor is the last name of the page.
	CreatePlan(ctx context.Context, p *Plan) error
	Plan(ctx context.Context, name string) (*Plan, error)
	ListPlans(ctx context.Context, page Page) ([]*Plan, string, error)
	UpdatePlan(ctx context.Context, name string, update func(*Plan) error) (*Plan, error)

	CreateToken(ctx context.Context, t *Token) error
	TokenByHash(ctx context.Context, hash [32]byte) (*Token, error)
	// Token returns a token by id; ListTokens lists them newest first.
	Token(ctx context.Context, id string) (*Token, error)
	ListTokens(ctx context.Context, page Page) ([]*Token, string, error)
	// UpdateToken lets update change a token in a transaction with the row
	// locked; activeAdmins is the number of other usable unscoped admin
	// tokens at now, so the last one is not revoked by accident.
	UpdateToken(ctx context.Context, id string, now time.Time, update func(t *Token, activeAdmins int) error) (*Token, error)
	CountTokens(ctx context.Context) (int, error)

	// ChangesSince lists the keys, tokens, accounts and plans updated at or
	// after since (by their updated_at), for caches catching up.
	ChangeLog

	QuotaStore
	AuditStore
	UsageStore
	MemberStore
	WebhookStore

	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	Close() error
}

// Page asks for up to Limit items after the cursor returned by the previous page.
type Page struct {
	Limit  int
	Cursor string
}

// KeyFilter selects an account's keys; Status, when set, is evaluated at Now.
type KeyFilter struct {
	AccountID string
	Status    KeyStatus
	Now       time.Time
	Page
}

// VerifyRecord is a key with the account and plan facts that verification
// checks. It is what caches hold.
type VerifyRecord struct {
	Key                  Key
	AccountStatus        AccountStatus
	AccountAllowedScopes []string
	Plan                 string
	PlanRateLimits       []RateLimitPolicy
	PlanQuota            *Quota
	PlanAllowedScopes    []string
}

// RateLimits are the policies that apply: the key's own, else its plan's.
func (r *VerifyRecord) RateLimits() []RateLimitPolicy {
	if r.Key.RateLimits != nil {
		return r.Key.RateLimits
	}
	return r.PlanRateLimits
}

// EncodeCursor makes an opaque pagination cursor from the last id of a page.
func EncodeCursor(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(lastID))
}

// DecodeCursor returns the id a cursor stands for; "" for an empty cursor.
func DecodeCursor(cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) == 0 || len(b) > 64 || !idChars(b) {
		return "", Invalid("cursor", "is not a cursor returned by this API")
	}
	return string(b), nil
}

// idChars reports whether b has only the characters of ids and plan names:
// a cursor is one of them.
func idChars(b []byte) bool {
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
