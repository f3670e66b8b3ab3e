package webhooks

import (
	"time"

	"github.com/keyplane/keyplane"
)

// KeyData is what an event says of a key: ids, name, hint and state; never
// its plaintext or hash.
type KeyData struct {
	ID          string     `json:"id"`
	AccountID   string     `json:"account_id"`
	Name        string     `json:"name"`
	Hint        string     `json:"hint"`
	Environment string     `json:"environment"`
	Status      string     `json:"status"`
	Scopes      []string   `json:"scopes"`
	Enabled     bool       `json:"enabled"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	// Rolls link a key to the one it replaced or was replaced by.
	RolledFromID string `json:"rolled_from_id,omitempty"`
	RolledToID   string `json:"rolled_to_id,omitempty"`
	// A key reported as leaked: when, by whom, where.
	LeakedAt   *time.Time `json:"leaked_at,omitempty"`
	LeakSource string     `json:"leak_source,omitempty"`
}

// KeyDataOf describes k at now.
func KeyDataOf(k *keyplane.Key, now time.Time) KeyData {
	scopes := k.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return KeyData{ID: k.ID, AccountID: k.AccountID, Name: k.Name, Hint: k.Hint, Environment: string(k.Environment),
		Status: string(k.Status(now)), Scopes: scopes, Enabled: k.Enabled, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt,
		RevokedAt: k.RevokedAt, RolledFromID: k.RolledFromID, RolledToID: k.RolledToID,
		LeakedAt: k.LeakedAt, LeakSource: k.LeakSource}
}

// KeyEvent is the event of type typ about k; extra fields go beside "key".
func KeyEvent(typ string, k *keyplane.Key, now time.Time, extra map[string]any) *keyplane.WebhookEvent {
	data := map[string]any{"key": KeyDataOf(k, now)}
	for name, v := range extra {
		data[name] = v
	}
	return MustEvent(typ, k.AccountID, now, data)
}
