package service

import (
	"context"

	"github.com/keyplane/keyplane"
)

// KeyQuota is the quota that applies to a key and its usage this period.
type KeyQuota struct {
	Quota keyplane.Quota
	// SubjectID is what the quota counts: the key's id, or its account's for a
	// shared quota.
	SubjectID string
	State     keyplane.QuotaState
}

// QuotaUsage returns the quota of a key the caller may see and what it used
// this period (on a shared quota, what all of the account's keys used).
func (s *Service) QuotaUsage(ctx context.Context, keyID string) (*KeyQuota, error) {
	q, subject, _, err := s.keyQuota(ctx, keyID)
	if err != nil {
		return nil, err
	}
	st, err := s.quotas.Usage(ctx, q, subject, s.clock())
	if err != nil {
		return nil, err
	}
	return &KeyQuota{Quota: *q, SubjectID: subject, State: st}, nil
}

// ResetQuota sets a key's usage this period to zero (on a shared quota, the
// account's). Operators only: a member must not lift their own quota.
func (s *Service) ResetQuota(ctx context.Context, keyID string) (*KeyQuota, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	q, subject, k, err := s.keyQuota(ctx, keyID)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	start, _ := q.PeriodAt(now)
	ctx, trail := audited(ctx, s.event(ctx, keyplane.AuditQuotaReset, k.AccountID, k.ID, map[string]any{
		"subject": subject, "shared": q.Shared, "period": q.Period, "period_start": start}))
	if err := s.quotas.Reset(ctx, q, subject, now); err != nil {
		return nil, err
	}
	if err := s.flushTrail(ctx, trail); err != nil {
		return nil, err
	}
	return s.QuotaUsage(ctx, keyID)
}

// keyQuota resolves the quota that applies to a key, read from the store so
// that a change just made is seen.
func (s *Service) keyQuota(ctx context.Context, keyID string) (*keyplane.Quota, string, *keyplane.Key, error) {
	k, err := s.Key(ctx, keyID)
	if err != nil {
		return nil, "", nil, err
	}
	if s.quotas == nil {
		return nil, "", nil, keyplane.Errorf(keyplane.EUNAVAILABLE, "quotas are not counted by this instance")
	}
	rec, err := s.store.VerifyRecord(ctx, k.Hash)
	if err != nil {
		return nil, "", nil, err
	}
	q, subject := rec.QuotaFor()
	if q == nil {
		return nil, "", nil, keyplane.Errorf(keyplane.ENOTFOUND, "key %q has no quota, and neither has its plan", keyID)
	}
	return q, subject, k, nil
}
