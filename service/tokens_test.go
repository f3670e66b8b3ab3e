package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

func (e *env) token(t *testing.T, in service.TokenInput) *service.CreatedToken {
	t.Helper()
	tok, err := e.svc.CreateToken(e.ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// as authenticates with a token's plaintext and returns a context acting as it.
func (e *env) as(t *testing.T, plaintext string) context.Context {
	t.Helper()
	a, err := e.svc.Authenticate(context.Background(), plaintext)
	if err != nil {
		t.Fatal(err)
	}
	return keyplane.NewContextWithActor(context.Background(), a)
}

func TestTokenLifecycle(t *testing.T) {
	e := newEnv(t)
	admin := e.token(t, service.TokenInput{Name: "ops", Role: keyplane.RoleAdmin})
	soon := e.clock.Now().Add(time.Hour)
	expiring := e.token(t, service.TokenInput{Name: "ci", Role: keyplane.RoleVerify, ExpiresAt: &soon})

	list, _, err := e.svc.ListTokens(e.ctx, keyplane.Page{})
	if err != nil || len(list) != 2 || list[0].ID != expiring.ID {
		t.Fatalf("ListTokens = %v, %v", list, err)
	}
	if _, err := e.svc.Authenticate(context.Background(), expiring.Plaintext); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	e.clock.Add(time.Hour)
	if _, err := e.svc.Authenticate(context.Background(), expiring.Plaintext); keyplane.ErrorCode(err) != keyplane.EUNAUTHORIZED {
		t.Fatalf("an expired token: %v, want unauthorized", err)
	}

	// The last usable operator-wide admin token is revoked only with force.
	if _, err := e.svc.RevokeToken(e.ctx, admin.ID, false); keyplane.ErrorCode(err) != keyplane.ECONFLICT {
		t.Fatalf("revoking the last admin token: %v, want conflict", err)
	}
	second := e.token(t, service.TokenInput{Name: "ops 2", Role: keyplane.RoleAdmin})
	revoked, err := e.svc.RevokeToken(e.ctx, admin.ID, false)
	if err != nil || revoked.RevokedAt == nil {
		t.Fatalf("revoke with another admin left: %v, %v", revoked, err)
	}
	if _, err := e.svc.Authenticate(context.Background(), admin.Plaintext); keyplane.ErrorCode(err) != keyplane.EUNAUTHORIZED {
		t.Fatalf("a revoked token: %v, want unauthorized", err)
	}
	if _, err := e.svc.RevokeToken(e.ctx, second.ID, true); err != nil {
		t.Fatalf("revoke the last with force: %v", err)
	}
	events, _, err := e.svc.ListAudit(e.ctx, service.AuditFilter{Type: keyplane.AuditTokenRevoked})
	if err != nil || len(events) != 2 {
		t.Fatalf("token.revoked events: %d, %v", len(events), err)
	}
}

func TestTokenInputValidation(t *testing.T) {
	e := newEnv(t)
	acc := e.account(t, "*")
	past := e.clock.Now().Add(-time.Second)
	for _, c := range []struct {
		name  string
		in    service.TokenInput
		field string
	}{
		{"unknown role", service.TokenInput{Name: "x", Role: "root"}, "role"},
		{"expiry in the past", service.TokenInput{Name: "x", Role: keyplane.RoleAdmin, ExpiresAt: &past}, "expires_at"},
		{"verify scoped to an account", service.TokenInput{Name: "x", Role: keyplane.RoleVerify, AccountID: acc.ID}, "account_id"},
		{"no such account", service.TokenInput{Name: "x", Role: keyplane.RoleAdmin, AccountID: "acc_01aaaaaaaaaaaaaaaaaaaaaaaa"}, "account_id"},
		{"empty name", service.TokenInput{Role: keyplane.RoleAdmin}, "name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.svc.CreateToken(e.ctx, c.in)
			var ke *keyplane.Error
			if !asError(err, &ke) || ke.Code != keyplane.EINVALID || len(ke.Fields) == 0 || ke.Fields[0].Field != c.field {
				t.Fatalf("%v, want invalid %s", err, c.field)
			}
		})
	}
}

// A token scoped to one account manages that account only: another
// account's key is not found, operator-wide calls are forbidden.
func TestAccountScopedToken(t *testing.T) {
	e := newEnv(t)
	mine, theirs := e.account(t, "*"), e.account(t, "*")
	theirKey := e.key(t, theirs.ID, service.KeyInput{})
	scoped := e.token(t, service.TokenInput{Name: "acme automation", Role: keyplane.RoleAdmin, AccountID: mine.ID})
	ctx := e.as(t, scoped.Plaintext)

	if _, err := e.svc.CreateKey(ctx, mine.ID, service.KeyInput{Name: "ok"}); err != nil {
		t.Fatalf("a key in its own account: %v", err)
	}
	if _, err := e.svc.Key(ctx, theirKey.ID); keyplane.ErrorCode(err) != keyplane.ENOTFOUND {
		t.Fatalf("another account's key: %v, want not found", err)
	}
	if _, err := e.svc.CreateKey(ctx, theirs.ID, service.KeyInput{Name: "x"}); keyplane.ErrorCode(err) != keyplane.ENOTFOUND {
		t.Fatalf("a key in another account: %v, want not found", err)
	}
	if _, err := e.svc.CreatePlan(ctx, service.PlanInput{Name: "mine"}); keyplane.ErrorCode(err) != keyplane.EFORBIDDEN {
		t.Fatalf("creating a plan: %v, want forbidden", err)
	}
	if _, _, err := e.svc.ListAccounts(ctx, keyplane.Page{}); keyplane.ErrorCode(err) != keyplane.EFORBIDDEN {
		t.Fatalf("listing accounts: %v, want forbidden", err)
	}
	if _, err := e.svc.CreateToken(ctx, service.TokenInput{Name: "more", Role: keyplane.RoleAdmin}); keyplane.ErrorCode(err) != keyplane.EFORBIDDEN {
		t.Fatalf("minting a token: %v, want forbidden", err)
	}
}
