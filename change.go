package keyplane

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Change names what cached verification records may no longer match: one key
// (by the hash verification looks it up by), every key of an account or of a
// plan, or one operator token.
type Change struct {
	KeyHash   [32]byte
	Token     bool   // KeyHash is an operator token's hash
	AccountID string // set for account changes; then KeyHash is zero
	Plan      string // set for plan changes, which every key of the plan sees
}

// TokenChanged is the change of one operator token.
func TokenChanged(hash [32]byte) Change { return Change{KeyHash: hash, Token: true} }

// PlanChanged is the change of a plan.
func PlanChanged(name string) Change { return Change{Plan: name} }

// KeyChanged is the change of one key.
func KeyChanged(hash [32]byte) Change { return Change{KeyHash: hash} }

// AccountChanged is the change of an account, which every one of its keys sees.
func AccountChanged(id string) Change { return Change{AccountID: id} }

// String encodes the change for a message bus: "key:<hex hash>",
// "token:<hex hash>", "account:<id>" or "plan:<name>".
func (c Change) String() string {
	if c.Plan != "" {
		return "plan:" + c.Plan
	}
	if c.AccountID != "" {
		return "account:" + c.AccountID
	}
	if c.Token {
		return "token:" + hex.EncodeToString(c.KeyHash[:])
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
	h, ok := strings.CutPrefix(s, "key:")
	token := false
	if !ok {
		h, ok = strings.CutPrefix(s, "token:")
		token = ok
	}
	if ok {
		c := Change{Token: token}
		if n, err := hex.Decode(c.KeyHash[:], []byte(h)); err == nil && n == len(c.KeyHash) && len(h) == 2*len(c.KeyHash) {
			return c, nil
		}
	}
	return Change{}, fmt.Errorf("not a change message: %.80q", s)
}

// ChangeListener is a cache of verification records and tokens: it is told of
// every change, and, after its subscription was broken, of the moment from
// which it may have missed some. It must then catch up on what changed
// (see ChangeLog) and keep serving what it has: forgetting everything would
// turn a bus outage into a verification outage.
type ChangeListener interface {
	ApplyChange(Change)
	MissedChanges(since time.Time)
}

// ChangeLog lists what changed at or after a moment, from the rows' own
// update times: how a cache catches up on notifications a broken
// subscription lost.
type ChangeLog interface {
	ChangesSince(ctx context.Context, since time.Time) ([]Change, error)
}

// ChangeBus carries changes from the instance that made them to every
// instance. Publish never fails the caller's write: the change is committed,
// and a cache that misses the message catches up when its subscription is
// back, or forgets the entry within its TTL; it logs what it could not send.
type ChangeBus interface {
	Publish(ctx context.Context, c Change)
	// Listen delivers changes to l until ctx ends, calling l.MissedChanges
	// whenever it had to resubscribe. ready is closed once it is subscribed.
	Listen(ctx context.Context, l ChangeListener, ready chan<- struct{}) error
}

// CatchUpMargin is how far before a subscription was seen to break a cache
// catches up from. It covers a connection that died before the break was
// noticed (a Redis subscription is pinged every 15 s) and clock skew between
// the instance that stamped a row and this one.
const CatchUpMargin = 2 * time.Minute

// SubscriptionWatch applies, for a ChangeBus's Listen, the rule that keeps
// caches honest across reconnects: once a broken subscription is restored,
// the cache is told to catch up on everything since shortly before the break.
// It never clears the cache: what it holds keeps verifying meanwhile.
type SubscriptionWatch struct {
	Listener ChangeListener
	Ready    chan<- struct{} // closed at the first subscription
	Log      *slog.Logger
	Now      func() time.Time // the clock; nil is time.Now

	subscribed, broken bool
	brokeAt            time.Time
}

func (w *SubscriptionWatch) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// Subscribed is called each time the bus is (re)subscribed.
func (w *SubscriptionWatch) Subscribed() {
	if w.subscribed {
		since := w.brokeAt.Add(-CatchUpMargin)
		if w.brokeAt.IsZero() { // resubscribed without a break being seen
			since = w.now().Add(-CatchUpMargin)
		}
		w.Log.Info("change subscription restored; catching up on changes made meanwhile", "since", since.UTC().Format(time.RFC3339))
		w.Listener.MissedChanges(since)
	} else if w.Ready != nil {
		close(w.Ready)
	}
	w.subscribed, w.broken, w.brokeAt = true, false, time.Time{}
}

// Broke is called when the subscription fails; repeated failures before the
// next subscription count once, from the first.
func (w *SubscriptionWatch) Broke(err error) {
	if w.broken {
		return
	}
	w.Log.Warn("change subscription lost; cached keys keep verifying, and changes made meanwhile are caught up on once it is back", "error", err)
	w.broken, w.brokeAt = true, w.now()
}

// Broken reports whether the subscription is down.
func (w *SubscriptionWatch) Broken() bool { return w.broken }

// RecordSource finds what verification needs about a key by its hash: the
// store, or a cache in front of it.
type RecordSource interface {
	VerifyRecord(ctx context.Context, hash [32]byte) (*VerifyRecord, error)
}
