package service

import (
	"context"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
)

// CreatedToken is a new operator token with its plaintext, shown once.
type CreatedToken struct {
	*keyplane.Token
	Plaintext string
}

// TokenInput is what a new operator token is: its name, role, and
// optionally the one account it acts for and when it expires.
type TokenInput struct {
	Name      string
	Role      keyplane.Role
	AccountID string
	ExpiresAt *time.Time
}

// CreateToken makes an operator token. It is called by the CLI (as the
// system actor) and by admin tokens that are not scoped to an account.
func (s *Service) CreateToken(ctx context.Context, in TokenInput) (*CreatedToken, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	var v keyplane.Validation
	name := validName(&v, "name", in.Name)
	if !in.Role.Valid() {
		v.Add("role", "%q: want admin or verify", in.Role)
	}
	now := s.now()
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		v.Add("expires_at", "must be in the future")
	}
	if in.AccountID != "" && in.Role == keyplane.RoleVerify {
		v.Add("account_id", "verify tokens verify any account's keys; scope admin tokens to an account")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if in.AccountID != "" {
		if !validID(in.AccountID) {
			return nil, keyplane.Invalid("account_id", "no such account")
		}
		if _, err := s.store.Account(ctx, in.AccountID); keyplane.ErrorCode(err) == keyplane.ENOTFOUND {
			return nil, keyplane.Invalid("account_id", "no such account")
		} else if err != nil {
			return nil, err
		}
	}
	plaintext := apikey.NewToken()
	t := &keyplane.Token{ID: newID("tok"), Name: name, Role: in.Role, AccountID: in.AccountID, Hash: apikey.Hash(plaintext),
		CreatedAt: now, UpdatedAt: now, ExpiresAt: truncated(in.ExpiresAt)}
	details := map[string]any{"token_id": t.ID, "name": t.Name, "role": t.Role}
	if t.AccountID != "" {
		details["account_id"] = t.AccountID
	}
	ctx, _ = audited(ctx, s.event(ctx, keyplane.AuditTokenCreated, t.AccountID, "", details))
	if err := s.store.CreateToken(ctx, t); err != nil {
		return nil, err
	}
	s.changed(ctx, keyplane.TokenChanged(t.Hash))
	return &CreatedToken{Token: t, Plaintext: plaintext}, nil
}

// truncated is a copy of t at the precision both stores keep.
func truncated(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

// Token returns an operator token, never its secret.
func (s *Service) Token(ctx context.Context, id string) (*keyplane.Token, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if !validID(id) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "token not found")
	}
	return s.store.Token(ctx, id)
}

// ListTokens lists operator tokens, newest first.
func (s *Service) ListTokens(ctx context.Context, page keyplane.Page) ([]*keyplane.Token, string, error) {
	return listForOperator(ctx, page, s.store.ListTokens)
}

// RevokeToken revokes an operator token now, on this instance before it
// returns and on the others over the change bus. Revoking the last usable
// admin token that is not scoped to an account needs force: nobody could
// then manage the deployment except from the command line.
func (s *Service) RevokeToken(ctx context.Context, id string, force bool) (*keyplane.Token, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if !validID(id) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "token not found")
	}
	now := s.now()
	ctx, trail := audited(ctx)
	t, err := s.store.UpdateToken(ctx, id, now, func(t *keyplane.Token, otherAdmins int) error {
		if t.RevokedAt != nil {
			return nil // already revoked: nothing more to do
		}
		if t.Role == keyplane.RoleAdmin && t.AccountID == "" && t.Usable(now) && otherAdmins == 0 && !force {
			return keyplane.Errorf(keyplane.ECONFLICT, "this is the last admin token: revoking it leaves no way to manage keyplane but the command line; pass force to revoke it anyway")
		}
		t.RevokedAt, t.UpdatedAt = &now, now
		trail.Add(s.event(ctx, keyplane.AuditTokenRevoked, t.AccountID, "", map[string]any{"token_id": t.ID, "name": t.Name, "role": t.Role}))
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.changed(ctx, keyplane.TokenChanged(t.Hash))
	return t, nil
}

// EnsureFirstToken creates an admin token when none exists, so a new install
// can be used at once. It returns nil when tokens already exist.
func (s *Service) EnsureFirstToken(ctx context.Context) (*CreatedToken, error) {
	n, err := s.store.CountTokens(ctx)
	if err != nil || n > 0 {
		return nil, err
	}
	return s.CreateToken(keyplane.NewContextWithActor(ctx, SystemActor), TokenInput{Name: "first admin token", Role: keyplane.RoleAdmin})
}

// SystemActor is keyplane itself, acting from the command line.
var SystemActor = keyplane.Actor{Kind: "system", ID: "system"}

// Authenticate returns the actor for an operator bearer token.
func (s *Service) Authenticate(ctx context.Context, bearer string) (keyplane.Actor, error) {
	if !apikey.ParseToken(bearer) {
		return keyplane.Actor{}, keyplane.Errorf(keyplane.EUNAUTHORIZED, "invalid token")
	}
	// Through the cache when there is one: the verify path then reads no
	// database for its caller's token, and keeps working through an outage.
	t, err := s.tokens.TokenByHash(ctx, apikey.Hash(bearer))
	if keyplane.ErrorCode(err) == keyplane.ENOTFOUND {
		return keyplane.Actor{}, keyplane.Errorf(keyplane.EUNAUTHORIZED, "invalid token")
	} else if err != nil {
		return keyplane.Actor{}, err
	}
	if !t.Usable(s.clock()) {
		return keyplane.Actor{}, keyplane.Errorf(keyplane.EUNAUTHORIZED, "invalid token: revoked or expired")
	}
	return keyplane.Actor{Kind: "token", ID: t.ID, Role: t.Role, AccountID: t.AccountID}, nil
}
