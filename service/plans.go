package service

import (
	"context"
	"time"

	"github.com/keyplane/keyplane"
)

// maxPlanKeys bounds a plan's cap on active keys per account.
const maxPlanKeys = 1_000_000

// PlanInput creates a plan. Nil RateLimits and Quota mean none; nil
// AllowedScopes means every scope; MaxKeys 0 means DefaultMaxActiveKeys.
type PlanInput struct {
	Name          string
	RateLimits    []keyplane.RateLimitPolicy
	Quota         *keyplane.Quota
	MaxKeys       int
	AllowedScopes []string
	KeyPolicy     *keyplane.KeyPolicy // nil is none
}

// PlanUpdate changes the fields that are set.
type PlanUpdate struct {
	RateLimits    Optional[[]keyplane.RateLimitPolicy]
	Quota         Optional[*keyplane.Quota]
	MaxKeys       Optional[int]
	AllowedScopes Optional[[]string]
	KeyPolicy     Optional[*keyplane.KeyPolicy]
}

// maxKeyLifetimeDays bounds a key policy's max_lifetime_days: ten years.
const maxKeyLifetimeDays = 3650

func validKeyPolicy(v *keyplane.Validation, kp *keyplane.KeyPolicy) *keyplane.KeyPolicy {
	if kp == nil {
		return nil
	}
	if kp.MaxLifetimeDays < 0 || kp.MaxLifetimeDays > maxKeyLifetimeDays {
		v.Add("key_policy.max_lifetime_days", "must be between 0 (no limit) and %d", maxKeyLifetimeDays)
	}
	out := *kp
	return &out
}

// keyExpiryWithinPolicy checks a key's expiry against its plan's key
// policy: a key must expire when the plan requires it, and within the
// plan's maximum lifetime counted from born (its creation or roll). A
// maximum lifetime implies an expiry.
func keyExpiryWithinPolicy(v *keyplane.Validation, plan *keyplane.Plan, expires *time.Time, born time.Time) {
	kp := plan.KeyPolicy
	if kp == nil {
		return
	}
	limit := kp.MaxLifetime()
	switch {
	case expires == nil && limit > 0:
		v.Add("expires_at", "is required: the %q plan's key policy lets keys live at most %d days; set an expiry before %s",
			plan.Name, kp.MaxLifetimeDays, born.Add(limit).UTC().Format(time.RFC3339))
	case expires == nil && kp.RequireExpiry:
		v.Add("expires_at", "is required: the %q plan's key policy requires every key to expire", plan.Name)
	case expires != nil && limit > 0 && expires.After(born.Add(limit)):
		v.Add("expires_at", "%s is too late: the %q plan's key policy lets keys live at most %d days, so at the latest %s",
			expires.UTC().Format(time.RFC3339), plan.Name, kp.MaxLifetimeDays, born.Add(limit).UTC().Format(time.RFC3339))
	}
}

func validMaxKeys(v *keyplane.Validation, n int) {
	if n < 1 || n > maxPlanKeys {
		v.Add("max_keys", "must be between 1 and %d", maxPlanKeys)
	}
}

// CreatePlan creates a plan. Operators only.
func (s *Service) CreatePlan(ctx context.Context, in PlanInput) (*keyplane.Plan, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if in.MaxKeys == 0 {
		in.MaxKeys = DefaultMaxActiveKeys
	}
	if in.AllowedScopes == nil {
		in.AllowedScopes = []string{"*"}
	}
	var v keyplane.Validation
	if !planPattern.MatchString(in.Name) {
		v.Add("name", "%q: want 1 to 63 lowercase letters, digits, - or _", in.Name)
	}
	p := &keyplane.Plan{
		Name:          in.Name,
		RateLimits:    validPolicies(&v, in.RateLimits),
		Quota:         in.Quota,
		MaxKeys:       in.MaxKeys,
		AllowedScopes: validScopes(&v, "allowed_scopes", in.AllowedScopes, nil),
		KeyPolicy:     validKeyPolicy(&v, in.KeyPolicy),
	}
	validQuota(&v, in.Quota)
	validMaxKeys(&v, in.MaxKeys)
	if err := v.Err(); err != nil {
		return nil, err
	}
	p.CreatedAt = s.now()
	p.UpdatedAt = p.CreatedAt
	ctx, _ = audited(ctx, s.event(ctx, keyplane.AuditPlanCreated, "", "", map[string]any{"name": p.Name, "max_keys": p.MaxKeys, "key_policy": p.KeyPolicy}))
	if err := s.store.CreatePlan(ctx, p); err != nil {
		if keyplane.ErrorCode(err) == keyplane.ECONFLICT {
			return nil, keyplane.Errorf(keyplane.ECONFLICT, "a plan named %q exists", in.Name)
		}
		return nil, err
	}
	// Accounts may name a plan before it exists; their cached keys learn of it now.
	s.changed(ctx, keyplane.PlanChanged(p.Name))
	return p, nil
}

// Plan returns a plan. Operators only.
func (s *Service) Plan(ctx context.Context, name string) (*keyplane.Plan, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if !planPattern.MatchString(name) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "plan not found")
	}
	return s.store.Plan(ctx, name)
}

// ListPlans lists plans by name. Operators only.
func (s *Service) ListPlans(ctx context.Context, page keyplane.Page) ([]*keyplane.Plan, string, error) {
	return listForOperator(ctx, page, s.store.ListPlans)
}

// UpdatePlan changes a plan; every instance applies it from the next
// request of each of its keys. Operators only.
func (s *Service) UpdatePlan(ctx context.Context, name string, up PlanUpdate) (*keyplane.Plan, error) {
	if _, err := s.Plan(ctx, name); err != nil {
		return nil, err
	}
	var v keyplane.Validation
	var scopes []string
	if up.RateLimits.Set {
		validPolicies(&v, up.RateLimits.Value)
	}
	if up.Quota.Set {
		validQuota(&v, up.Quota.Value)
	}
	if up.MaxKeys.Set {
		validMaxKeys(&v, up.MaxKeys.Value)
	}
	if up.AllowedScopes.Set {
		scopes = validScopes(&v, "allowed_scopes", up.AllowedScopes.Value, nil)
	}
	var policy *keyplane.KeyPolicy
	if up.KeyPolicy.Set {
		policy = validKeyPolicy(&v, up.KeyPolicy.Value)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	set := map[string]bool{"rate_limits": up.RateLimits.Set, "quota": up.Quota.Set, "max_keys": up.MaxKeys.Set, "allowed_scopes": up.AllowedScopes.Set, "key_policy": up.KeyPolicy.Set}
	ctx, _ = audited(ctx, s.event(ctx, keyplane.AuditPlanUpdated, "", "", map[string]any{"name": name, "fields": changedFields(set)}))
	p, err := s.store.UpdatePlan(ctx, name, func(p *keyplane.Plan) error {
		if up.RateLimits.Set {
			p.RateLimits = up.RateLimits.Value
		}
		if up.Quota.Set {
			p.Quota = up.Quota.Value
		}
		if up.MaxKeys.Set {
			p.MaxKeys = up.MaxKeys.Value
		}
		if up.AllowedScopes.Set {
			p.AllowedScopes = scopes
		}
		if up.KeyPolicy.Set {
			p.KeyPolicy = policy
		}
		p.UpdatedAt = s.now()
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.changed(ctx, keyplane.PlanChanged(name))
	return p, nil
}

// checkPlanExists turns an unknown plan name into a validation error.
func (s *Service) checkPlanExists(ctx context.Context, v *keyplane.Validation, name string) error {
	if !planPattern.MatchString(name) {
		return nil // validPlan has said so
	}
	_, err := s.store.Plan(ctx, name)
	if keyplane.ErrorCode(err) == keyplane.ENOTFOUND {
		v.Add("plan", "no plan named %q: create it with POST /v1/plans", name)
		return nil
	}
	return err
}

// planOf returns an account's plan; an account whose plan was never created
// (only possible through the store) gets the defaults.
func (s *Service) planOf(ctx context.Context, a *keyplane.Account) (*keyplane.Plan, error) {
	p, err := s.store.Plan(ctx, a.Plan)
	if keyplane.ErrorCode(err) == keyplane.ENOTFOUND {
		return &keyplane.Plan{Name: a.Plan, MaxKeys: s.maxKeys}, nil
	}
	return p, err
}

// withinPlan checks that scopes lie within the plan's allowed scopes too.
func withinPlan(v *keyplane.Validation, field string, scopes []string, plan *keyplane.Plan) {
	if plan.AllowedScopes == nil {
		return
	}
	for i, sc := range scopes {
		if !granted(plan.AllowedScopes, sc) {
			v.Add(field, "%q (scope %d) is outside the %q plan's allowed scopes %v", sc, i, plan.Name, plan.AllowedScopes)
		}
	}
}
