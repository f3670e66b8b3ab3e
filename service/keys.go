package service

import (
	"context"
	"encoding/json"
	"net/netip"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/webhooks"
)

// Optional is a field of an update that may be absent, or set (possibly to a
// zero value, such as null to clear an expiry).
type Optional[T any] struct {
	Set   bool
	Value T
}

// KeyInput creates a key. Nil RateLimits and Quota mean the plan's.
type KeyInput struct {
	Name         string
	Scopes       []string
	Environment  keyplane.Environment
	ExpiresAt    *time.Time
	AllowedCIDRs []string
	RateLimits   []keyplane.RateLimitPolicy
	Quota        *keyplane.Quota
	Metadata     json.RawMessage
	Enabled      *bool // default true
}

// KeyUpdate changes the fields that are set.
type KeyUpdate struct {
	Name         Optional[string]
	Scopes       Optional[[]string]
	AllowedCIDRs Optional[[]string]
	RateLimits   Optional[[]keyplane.RateLimitPolicy]
	Quota        Optional[*keyplane.Quota]
	ExpiresAt    Optional[*time.Time]
	Metadata     Optional[json.RawMessage]
	Enabled      Optional[bool]
}

// CreatedKey is a new key with its plaintext, which exists only here.
type CreatedKey struct {
	*keyplane.Key
	Plaintext string
}

// CreateKey issues a key for an account, within its allowed scopes and its cap
// on active keys.
func (s *Service) CreateKey(ctx context.Context, accountID string, in KeyInput) (*CreatedKey, error) {
	account, err := s.Account(ctx, accountID)
	if err != nil {
		return nil, err
	}
	if err := requireKeyManager(ctx); err != nil {
		return nil, err
	}
	if err := limitsByOperator(ctx, in.RateLimits != nil, in.Quota != nil); err != nil {
		return nil, err
	}
	plan, err := s.planOf(ctx, account)
	if err != nil {
		return nil, err
	}
	if in.Environment == "" {
		in.Environment = keyplane.EnvLive
	}
	now := s.now()
	var v keyplane.Validation
	k := &keyplane.Key{
		ID:           newID("key"),
		AccountID:    account.ID,
		Name:         validName(&v, "name", in.Name),
		Environment:  in.Environment,
		Scopes:       validScopes(&v, "scopes", in.Scopes, account.AllowedScopes),
		AllowedCIDRs: validCIDRs(&v, in.AllowedCIDRs),
		RateLimits:   validPolicies(&v, in.RateLimits),
		Quota:        in.Quota,
		Metadata:     validMetadata(&v, in.Metadata),
		ExpiresAt:    validExpiry(&v, in.ExpiresAt, now),
		Enabled:      in.Enabled == nil || *in.Enabled,
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	validQuota(&v, in.Quota)
	withinPlan(&v, "scopes", k.Scopes, plan)
	if in.ExpiresAt == nil || k.ExpiresAt != nil { // a past expiry has been refused already
		keyExpiryWithinPolicy(&v, plan, k.ExpiresAt, now)
	}
	if !in.Environment.Valid() {
		v.Add("environment", "%q: want live or test", in.Environment)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	plaintext := apikey.New(s.prefix, string(k.Environment))
	k.Hash, k.Hint = apikey.Hash(plaintext), apikey.Hint(plaintext)
	ctx, trail := audited(ctx, s.event(ctx, keyplane.AuditKeyCreated, k.AccountID, k.ID, map[string]any{
		"name": k.Name, "environment": k.Environment, "scopes": k.Scopes, "enabled": k.Enabled, "expires_at": k.ExpiresAt}))
	raise(trail, webhooks.KeyEvent(keyplane.EventKeyCreated, k, now, nil))
	if err := s.store.CreateKey(ctx, k, plan.MaxKeys, now); err != nil {
		return nil, err
	}
	s.changed(ctx, keyplane.KeyChanged(k.Hash)) // a cached "unknown" for this hash is now wrong
	s.wakeWebhooks()
	return &CreatedKey{Key: k, Plaintext: plaintext}, nil
}

// Key returns a key the caller may see.
func (s *Service) Key(ctx context.Context, id string) (*keyplane.Key, error) {
	a, err := actor(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireManager(a); err != nil {
		return nil, err
	}
	if !validID(id) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "key not found")
	}
	k, err := s.store.Key(ctx, id)
	if err != nil {
		return nil, err
	}
	if !a.CanSee(k.AccountID) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "key %q not found", id)
	}
	if err := s.withUsage(ctx, k); err != nil {
		return nil, err
	}
	return k, nil
}

// ListKeys lists an account's keys, newest first, optionally of one status.
func (s *Service) ListKeys(ctx context.Context, accountID string, status keyplane.KeyStatus, page keyplane.Page) ([]*keyplane.Key, string, error) {
	if _, err := s.Account(ctx, accountID); err != nil {
		return nil, "", err
	}
	limit, err := pageLimit(page.Limit)
	if err != nil {
		return nil, "", err
	}
	if status != "" && !status.Valid() {
		return nil, "", keyplane.Invalid("status", "%q: want active, disabled, rolling, expired or revoked", status)
	}
	page.Limit = limit
	keys, next, err := s.store.ListKeys(ctx, keyplane.KeyFilter{AccountID: accountID, Status: status, Now: s.now(), Page: page})
	if err != nil {
		return nil, "", err
	}
	if err := s.withUsage(ctx, keys...); err != nil {
		return nil, "", err
	}
	return keys, next, nil
}

// UpdateKey changes a key. Revoked and expired keys are final; a rolling key's
// expiry is the end of its overlap and cannot be moved.
func (s *Service) UpdateKey(ctx context.Context, id string, up KeyUpdate) (*keyplane.Key, error) {
	current, err := s.Key(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := requireKeyManager(ctx); err != nil {
		return nil, err
	}
	if err := limitsByOperator(ctx, up.RateLimits.Set, up.Quota.Set); err != nil {
		return nil, err
	}
	account, err := s.store.Account(ctx, current.AccountID)
	if err != nil {
		return nil, err
	}
	plan, err := s.planOf(ctx, account)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var v keyplane.Validation
	var name string
	var scopes []string
	var cidrs []netip.Prefix
	var metadata json.RawMessage
	var expires *time.Time
	if up.Name.Set {
		name = validName(&v, "name", up.Name.Value)
	}
	if up.Scopes.Set {
		scopes = validScopes(&v, "scopes", up.Scopes.Value, account.AllowedScopes)
		withinPlan(&v, "scopes", scopes, plan)
	}
	if up.AllowedCIDRs.Set {
		cidrs = validCIDRs(&v, up.AllowedCIDRs.Value)
	}
	if up.RateLimits.Set {
		validPolicies(&v, up.RateLimits.Value)
	}
	if up.Quota.Set {
		validQuota(&v, up.Quota.Value)
	}
	if up.Metadata.Set {
		metadata = validMetadata(&v, up.Metadata.Value)
	}
	if up.ExpiresAt.Set {
		expires = validExpiry(&v, up.ExpiresAt.Value, now)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	set := map[string]bool{"name": up.Name.Set, "scopes": up.Scopes.Set, "allowed_cidrs": up.AllowedCIDRs.Set, "rate_limits": up.RateLimits.Set,
		"quota": up.Quota.Set, "metadata": up.Metadata.Set, "expires_at": up.ExpiresAt.Set, "enabled": up.Enabled.Set}
	webhookFields := setFields(set) // recordKeyUpdate edits set
	ctx, trail := audited(ctx)
	return s.updateKey(ctx, id, func(k *keyplane.Key) error {
		wasEnabled := k.Enabled
		switch k.Status(now) {
		case keyplane.KeyRevoked:
			return keyplane.Errorf(keyplane.ECONFLICT, "key %q is revoked; revocation is final", id)
		case keyplane.KeyExpired:
			return keyplane.Errorf(keyplane.ECONFLICT, "key %q has expired", id)
		}
		if up.ExpiresAt.Set && k.RolledToID != "" {
			return keyplane.Errorf(keyplane.ECONFLICT, "key %q was rolled; its expiry is the end of the overlap window", id)
		}
		if up.ExpiresAt.Set {
			var v keyplane.Validation
			keyExpiryWithinPolicy(&v, plan, expires, k.CreatedAt)
			if err := v.Err(); err != nil {
				return err
			}
		}
		if up.Name.Set {
			k.Name = name
		}
		if up.Scopes.Set {
			k.Scopes = scopes
		}
		if up.AllowedCIDRs.Set {
			k.AllowedCIDRs = cidrs
		}
		if up.RateLimits.Set {
			k.RateLimits = up.RateLimits.Value
		}
		if up.Quota.Set {
			k.Quota = up.Quota.Value
		}
		if up.Metadata.Set {
			k.Metadata = metadata
		}
		if up.ExpiresAt.Set {
			k.ExpiresAt = expires
		}
		if up.Enabled.Set {
			k.Enabled = up.Enabled.Value
		}
		k.UpdatedAt = now
		s.recordKeyUpdate(ctx, trail, k, wasEnabled, set)
		raise(trail, webhooks.KeyEvent(keyplane.EventKeyUpdated, k, now, map[string]any{"fields": webhookFields}))
		return nil
	})
}

// setFields names the fields an update set, enabled included.
func setFields(set map[string]bool) []string {
	fields := []string{}
	for _, f := range []string{"name", "scopes", "allowed_cidrs", "rate_limits", "quota", "metadata", "expires_at", "enabled"} {
		if set[f] {
			fields = append(fields, f)
		}
	}
	return fields
}

// recordKeyUpdate records disabling or enabling a key as such, and any
// other field set as key.updated; an update that set nothing but an
// unchanged enabled flag is still a key.updated.
func (s *Service) recordKeyUpdate(ctx context.Context, trail *keyplane.AuditTrail, k *keyplane.Key, wasEnabled bool, set map[string]bool) {
	if k.Enabled != wasEnabled {
		typ := keyplane.AuditKeyEnabled
		if !k.Enabled {
			typ = keyplane.AuditKeyDisabled
		}
		trail.Add(s.event(ctx, typ, k.AccountID, k.ID, nil))
		set["enabled"] = false
		if len(changedFields(set)) == 0 {
			return
		}
	}
	trail.Add(s.event(ctx, keyplane.AuditKeyUpdated, k.AccountID, k.ID, map[string]any{"fields": changedFields(set)}))
}

// RevokeKey revokes a key now, for good. Revoking a revoked key changes nothing.
func (s *Service) RevokeKey(ctx context.Context, id string) (*keyplane.Key, error) {
	if _, err := s.Key(ctx, id); err != nil {
		return nil, err
	}
	if err := requireKeyManager(ctx); err != nil {
		return nil, err
	}
	now := s.now()
	ctx, trail := audited(ctx)
	return s.updateKey(ctx, id, func(k *keyplane.Key) error {
		if k.RevokedAt == nil {
			k.RevokedAt, k.UpdatedAt = &now, now
			trail.Add(s.event(ctx, keyplane.AuditKeyRevoked, k.AccountID, k.ID, nil))
			raise(trail, webhooks.KeyEvent(keyplane.EventKeyRevoked, k, now, nil))
		}
		return nil
	})
}

// RolledKey is the result of a roll: the successor with its plaintext, and
// the previous key as it now is.
type RolledKey struct {
	Key      *CreatedKey
	Previous *keyplane.Key
}

// RollKey replaces a key with a new one of the same configuration. The old key
// keeps working for overlap (0 revokes it now, at most 7 days), then expires.
func (s *Service) RollKey(ctx context.Context, id string, overlap time.Duration) (*RolledKey, error) {
	return s.RollKeyWith(ctx, id, RollInput{Overlap: overlap})
}

// RollInput is how to roll a key.
type RollInput struct {
	// Overlap is how long the old key keeps working: 0 revokes it now, at
	// most MaxRollOverlap.
	Overlap time.Duration
	// ExpiresAt is the successor's expiry; nil keeps the old key's.
	ExpiresAt *time.Time
}

// RollKeyWith is RollKey with a new expiry for the successor. On a plan with
// a key policy the successor's expiry must keep to it, counted from now.
func (s *Service) RollKeyWith(ctx context.Context, id string, in RollInput) (*RolledKey, error) {
	overlap := in.Overlap
	if overlap < 0 || overlap > MaxRollOverlap {
		return nil, keyplane.Invalid("overlap_seconds", "must be between 0 and %d (7 days)", int(MaxRollOverlap/time.Second))
	}
	current, err := s.Key(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := requireKeyManager(ctx); err != nil {
		return nil, err
	}
	account, err := s.store.Account(ctx, current.AccountID)
	if err != nil {
		return nil, err
	}
	plan, err := s.planOf(ctx, account)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var v keyplane.Validation
	expires := validExpiry(&v, in.ExpiresAt, now)
	if err := v.Err(); err != nil {
		return nil, err
	}
	var plaintext string
	ctx, trail := audited(ctx)
	old, next, err := s.store.RollKey(ctx, id, func(old *keyplane.Key) (*keyplane.Key, error) {
		switch st := old.Status(now); st {
		case keyplane.KeyRevoked, keyplane.KeyExpired:
			// A leaked key that was revoked for it may still be replaced, at
			// once: that is the way back for its owner.
			if st != keyplane.KeyRevoked || old.LeakedAt == nil || overlap != 0 {
				return nil, keyplane.Errorf(keyplane.ECONFLICT, "key %q is %s and cannot be rolled", id, st)
			}
		}
		if old.RolledToID != "" {
			return nil, keyplane.Errorf(keyplane.ECONFLICT, "key %q was already rolled to %q; roll that key instead", id, old.RolledToID)
		}
		plaintext = apikey.New(s.prefix, string(old.Environment))
		next := *old
		next.ID, next.Hash, next.Hint = newID("key"), apikey.Hash(plaintext), apikey.Hint(plaintext)
		next.CreatedAt, next.UpdatedAt, next.LastUsedAt = now, now, nil
		next.RolledFromID, next.RolledToID = old.ID, ""
		if in.ExpiresAt != nil {
			next.ExpiresAt = expires
		}
		var v keyplane.Validation
		keyExpiryWithinPolicy(&v, plan, next.ExpiresAt, now)
		if err := v.Err(); err != nil {
			return nil, err
		}
		// The successor of a leaked key is clean: not revoked, not leaked,
		// and enabled even if the leak disabled the old one.
		if old.LeakedAt != nil {
			next.RevokedAt, next.LeakedAt, next.LeakSource, next.LeakURL, next.Enabled = nil, nil, "", "", true
		}

		old.RolledToID, old.UpdatedAt = next.ID, now
		if overlap == 0 {
			if old.RevokedAt == nil {
				old.RevokedAt = &now
			}
		} else if end := now.Add(overlap); old.ExpiresAt == nil || end.Before(*old.ExpiresAt) {
			old.ExpiresAt = &end
		}
		trail.Add(s.event(ctx, keyplane.AuditKeyRolled, old.AccountID, old.ID, map[string]any{
			"successor_id": next.ID, "overlap_seconds": int64(overlap / time.Second), "expires_at": old.ExpiresAt}))
		raise(trail, webhooks.KeyEvent(keyplane.EventKeyRolled, old, now, map[string]any{
			"successor": webhooks.KeyDataOf(&next, now), "overlap_seconds": int64(overlap / time.Second)}))
		return &next, nil
	})
	if err != nil {
		return nil, err
	}
	s.changed(ctx, keyplane.KeyChanged(old.Hash), keyplane.KeyChanged(next.Hash))
	s.wakeWebhooks()
	return &RolledKey{Key: &CreatedKey{Key: next, Plaintext: plaintext}, Previous: old}, nil
}

// updateKey writes a change to a key and tells the caches.
func (s *Service) updateKey(ctx context.Context, id string, update func(*keyplane.Key) error) (*keyplane.Key, error) {
	k, err := s.store.UpdateKey(ctx, id, update)
	if err != nil {
		return nil, err
	}
	s.changed(ctx, keyplane.KeyChanged(k.Hash))
	s.wakeWebhooks()
	// Best effort: the change is committed, and failing it now for a
	// statistic would invite a retry of something already done.
	_ = s.withUsage(ctx, k)
	return k, nil
}

// limitsByOperator refuses members a key's own rate limits or quota: those
// override the plan's, which the operator sets, so a member could otherwise
// lift their account's limits.
func limitsByOperator(ctx context.Context, rateLimits, quota bool) error {
	a, err := actor(ctx)
	if err != nil {
		return err
	}
	if (a.Kind == "member" || a.AccountID != "") && (rateLimits || quota) {
		// An account's own token would lift its plan's limits as a member could.
		return keyplane.Errorf(keyplane.EFORBIDDEN, "only operators set a key's rate limits and quota; an account's keys follow its plan's")
	}
	return nil
}
