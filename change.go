package keyplane

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
)

// Change names what cached verification records may no longer match: one key
// (by the hash verification looks it up by) or every key of an account.
type Change struct {
	KeyHash   [32]byte
	AccountID string // set for account changes; then KeyHash is zero
	Plan      string // set for plan changes, which every key of the plan sees
}

// PlanChanged is the change of a plan.
func PlanChanged(name string) Change { return Change{Plan: name} }

// KeyChanged is the change of one key.
func KeyChanged(hash [32]byte) Change { return Change{KeyHash: hash} }

// AccountChanged is the change of an account, which every one of its keys sees.
func AccountChanged(id string) Change { return Change{AccountID: id} }

// String encodes the change for a message bus: "key:<hex hash>" or "account:<id>".
func (c Change) String() string {
	if c.Plan != "" {
		return "plan:" + c.Plan
	}
	if c.AccountID != "" {
		return "account:" + c.AccountID
	}
	return "key:" + hex.EncodeToString(c.KeyHash[:])
}

// ParseChange decodes what String encodes.
func ParseChange(s string) (Change, error) {
	if name, ok := strings.CutPrefix(s, "plan:"); ok && name != "" {
		return PlanChanged(name), nil
	}
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

// SubscriptionWatch applies, for a ChangeBus's Listen, the rule that keeps
// caches honest across reconnects: a cache forgets everything when the
// subscription breaks (changes may be lost from then on) and again when it is
// restored (changes may have been lost meanwhile).
type SubscriptionWatch struct {
	Listener ChangeListener
	Ready    chan<- struct{} // closed at the first subscription
	Log      *slog.Logger

	subscribed, broken bool
}

// Subscribed is called each time the bus is (re)subscribed.
func (w *SubscriptionWatch) Subscribed() {
	if w.subscribed {
		w.Listener.MissedChanges()
		w.Log.Info("change subscription restored; cache cleared")
	} else if w.Ready != nil {
		close(w.Ready)
	}
	w.subscribed, w.broken = true, false
}

// Broke is called when the subscription fails; repeated failures before the
// next subscription count once.
func (w *SubscriptionWatch) Broke(err error) {
	if w.broken {
		return
	}
	w.Log.Warn("change subscription lost; cache cleared, reconnecting", "error", err)
	w.Listener.MissedChanges()
	w.broken = true
}

// Broken reports whether the subscription is down.
func (w *SubscriptionWatch) Broken() bool { return w.broken }

// RecordSource finds what verification needs about a key by its hash: the
// store, or a cache in front of it.
type RecordSource interface {
	VerifyRecord(ctx context.Context, hash [32]byte) (*VerifyRecord, error)
}
