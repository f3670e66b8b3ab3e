package keyplane

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
)

// Change names what cached verification records may no longer match: one key
// (by the hash verification looks it up by) or every key of an account.
type Change struct {
	KeyHash   [32]byte
	AccountID string // set for account changes; then KeyHash is zero
}

// KeyChanged is the change of one key.
func KeyChanged(hash [32]byte) Change { return Change{KeyHash: hash} }

// AccountChanged is the change of an account, which every one of its keys sees.
func AccountChanged(id string) Change { return Change{AccountID: id} }

// String encodes the change for a message bus: "key:<hex hash>" or "account:<id>".
func (c Change) String() string {
	if c.AccountID != "" {
		return "account:" + c.AccountID
	}
	return "key:" + hex.EncodeToString(c.KeyHash[:])
}

// ParseChange decodes what String encodes.
func ParseChange(s string) (Change, error) {
	if id, ok := strings.CutPrefix(s, "account:"); ok && id != "" {
		return AccountChanged(id), nil
	}
	if h, ok := strings.CutPrefix(s, "key:"); ok {
		var c Change
		if n, err := hex.Decode(c.KeyHash[:], []byte(h)); err == nil && n == len(c.KeyHash) && len(h) == 2*len(c.KeyHash) {
			return c, nil
		}
	}
	return Change{}, fmt.Errorf("not a change message: %.80q", s)
}

// ChangeListener is a cache of verification records: it is told of every
// change, and of moments when it may have missed some (a bus reconnected), when
// it must forget everything.
type ChangeListener interface {
	ApplyChange(Change)
	MissedChanges()
}

// ChangeBus carries changes from the instance that made them to every
// instance. Publish never fails the caller's write: the change is committed,
// and a cache that misses the message forgets the entry within its TTL; it
// logs what it could not send.
type ChangeBus interface {
	Publish(ctx context.Context, c Change)
	// Listen delivers changes to l until ctx ends, calling l.MissedChanges
	// whenever it had to reconnect. ready is closed once it is subscribed.
	Listen(ctx context.Context, l ChangeListener, ready chan<- struct{}) error
}

// RecordSource finds what verification needs about a key by its hash: the
// store, or a cache in front of it.
type RecordSource interface {
	VerifyRecord(ctx context.Context, hash [32]byte) (*VerifyRecord, error)
}
