package service

import (
	"context"

	"github.com/keyplane/keyplane"
)

// AccountInput creates an account.
type AccountInput struct {
	Name          string
	Plan          string
	AllowedScopes []string
	Status        keyplane.AccountStatus
}

// AccountUpdate changes the fields that are not nil.
type AccountUpdate struct {
	Name          *string
	Plan          *string
	AllowedScopes *[]string
	Status        *keyplane.AccountStatus
}

func validPlan(v *keyplane.Validation, plan string) {
	if !planPattern.MatchString(plan) {
		v.Add("plan", "%q: want 1 to 63 lowercase letters, digits, - or _", plan)
	}
}

func validAccountStatus(v *keyplane.Validation, st keyplane.AccountStatus) {
	if !st.Valid() {
		v.Add("status", "%q: want active or suspended", st)
	}
}

// CreateAccount creates an account. Operators only.
func (s *Service) CreateAccount(ctx context.Context, in AccountInput) (*keyplane.Account, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if in.Plan == "" {
		in.Plan = keyplane.DefaultPlanName
	}
	if in.Status == "" {
		in.Status = keyplane.AccountActive
	}
	var v keyplane.Validation
	name := validName(&v, "name", in.Name)
	validPlan(&v, in.Plan)
	scopes := validScopes(&v, "allowed_scopes", in.AllowedScopes, nil)
	validAccountStatus(&v, in.Status)
	if err := s.checkPlanExists(ctx, &v, in.Plan); err != nil {
		return nil, err
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	now := s.now()
	a := &keyplane.Account{ID: newID("acc"), Name: name, Plan: in.Plan, AllowedScopes: scopes, Status: in.Status, CreatedAt: now, UpdatedAt: now}
	ctx, _ = audited(ctx, s.event(ctx, keyplane.AuditAccountCreated, a.ID, "", map[string]any{
		"name": a.Name, "plan": a.Plan, "allowed_scopes": a.AllowedScopes, "status": a.Status}))
	if err := s.store.CreateAccount(ctx, a); err != nil {
		return nil, err
	}
	return a, nil
}

// Account returns an account the caller may see.
func (s *Service) Account(ctx context.Context, id string) (*keyplane.Account, error) {
	if err := authorizeAccount(ctx, id); err != nil {
		return nil, err
	}
	if !validID(id) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "account not found")
	}
	return s.store.Account(ctx, id)
}

// ListAccounts lists accounts, newest first. Operators only.
func (s *Service) ListAccounts(ctx context.Context, page keyplane.Page) ([]*keyplane.Account, string, error) {
	return listForOperator(ctx, page, s.store.ListAccounts)
}

// UpdateAccount changes an account; suspending it stops all its keys at once.
// Operators only.
func (s *Service) UpdateAccount(ctx context.Context, id string, up AccountUpdate) (*keyplane.Account, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if !validID(id) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "account not found")
	}
	var v keyplane.Validation
	var name string
	var scopes []string
	if up.Name != nil {
		name = validName(&v, "name", *up.Name)
	}
	if up.Plan != nil {
		validPlan(&v, *up.Plan)
	}
	if up.AllowedScopes != nil {
		scopes = validScopes(&v, "allowed_scopes", *up.AllowedScopes, nil)
	}
	if up.Status != nil {
		validAccountStatus(&v, *up.Status)
	}
	if up.Plan != nil {
		if err := s.checkPlanExists(ctx, &v, *up.Plan); err != nil {
			return nil, err
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	set := map[string]bool{"name": up.Name != nil, "plan": up.Plan != nil, "allowed_scopes": up.AllowedScopes != nil, "status": up.Status != nil}
	ctx, trail := audited(ctx)
	a, err := s.store.UpdateAccount(ctx, id, func(a *keyplane.Account) error {
		wasStatus := a.Status
		if up.Name != nil {
			a.Name = name
		}
		if up.Plan != nil {
			a.Plan = *up.Plan
		}
		if up.AllowedScopes != nil {
			a.AllowedScopes = scopes
		}
		if up.Status != nil {
			a.Status = *up.Status
		}
		a.UpdatedAt = s.now()
		s.recordAccountUpdate(ctx, trail, a, wasStatus, set)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.changed(ctx, keyplane.AccountChanged(a.ID))
	return a, nil
}

// recordAccountUpdate records a suspension or reactivation as such, and
// any other field set as account.updated; an update that set nothing but
// an unchanged status is still an account.updated.
func (s *Service) recordAccountUpdate(ctx context.Context, trail *keyplane.AuditTrail, a *keyplane.Account, wasStatus keyplane.AccountStatus, set map[string]bool) {
	if a.Status != wasStatus {
		typ := keyplane.AuditAccountReactivated
		if a.Status == keyplane.AccountSuspended {
			typ = keyplane.AuditAccountSuspended
		}
		trail.Add(s.event(ctx, typ, a.ID, "", map[string]any{"status": a.Status, "previous_status": wasStatus}))
		set["status"] = false
		if len(changedFields(set)) == 0 {
			return
		}
	}
	trail.Add(s.event(ctx, keyplane.AuditAccountUpdated, a.ID, "", map[string]any{"fields": changedFields(set), "name": a.Name, "plan": a.Plan}))
}
