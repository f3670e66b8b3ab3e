package service

import (
	"context"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
)

// CreatedToken is a new operator token with its plaintext, shown once.
type CreatedToken struct {
	*keyplane.Token
	Plaintext string
}

// CreateToken makes an operator token. It is called by the CLI (as the
// system actor) and by admins.
func (s *Service) CreateToken(ctx context.Context, name string, role keyplane.Role) (*CreatedToken, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if a, _ := actor(ctx); a.Kind == "token" && a.Role != keyplane.RoleAdmin {
		return nil, keyplane.Errorf(keyplane.EFORBIDDEN, "only admin tokens may create tokens")
	}
	var v keyplane.Validation
	name = validName(&v, "name", name)
	if !role.Valid() {
		v.Add("role", "%q: want admin or verify", role)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	plaintext := apikey.NewToken()
	t := &keyplane.Token{ID: newID("tok"), Name: name, Role: role, Hash: apikey.Hash(plaintext), CreatedAt: s.now()}
	ctx, _ = audited(ctx, s.event(ctx, keyplane.AuditTokenCreated, "", "", map[string]any{"token_id": t.ID, "name": t.Name, "role": t.Role}))
	if err := s.store.CreateToken(ctx, t); err != nil {
		return nil, err
	}
	return &CreatedToken{Token: t, Plaintext: plaintext}, nil
}

// EnsureFirstToken creates an admin token when none exists, so a new install
// can be used at once. It returns nil when tokens already exist.
func (s *Service) EnsureFirstToken(ctx context.Context) (*CreatedToken, error) {
	n, err := s.store.CountTokens(ctx)
	if err != nil || n > 0 {
		return nil, err
	}
	return s.CreateToken(keyplane.NewContextWithActor(ctx, SystemActor), "first admin token", keyplane.RoleAdmin)
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
	return keyplane.Actor{Kind: "token", ID: t.ID, Role: t.Role}, nil
}
