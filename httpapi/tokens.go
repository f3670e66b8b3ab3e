package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

// TokenBody is an operator token as the API shows it: never its secret.
type TokenBody struct {
	ID        string     `json:"id" example:"tok_01j9z3k8m2n4p6q8r0s2t4v6w8"`
	Name      string     `json:"name"`
	Role      string     `json:"role" enum:"admin,verify"`
	AccountID string     `json:"account_id,omitempty" doc:"The one account the token acts for; absent for an operator-wide token"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Status    string     `json:"status" enum:"active,expired,revoked"`
}

func tokenBody(t *keyplane.Token, now time.Time) TokenBody {
	b := TokenBody{ID: t.ID, Name: t.Name, Role: string(t.Role), AccountID: t.AccountID, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt, Status: "active"}
	switch {
	case t.RevokedAt != nil:
		b.Status = "revoked"
	case !t.Usable(now):
		b.Status = "expired"
	}
	return b
}

type tokenOutput struct {
	Body TokenBody
}

type createdTokenOutput struct {
	Body struct {
		TokenBody
		Token string `json:"token" doc:"The token itself: shown in this response only"`
	}
}

// TokenPath names a token in the path.
type TokenPath struct {
	ID string `path:"id" maxLength:"64" doc:"Token id"`
}

type createTokenInput struct {
	Body struct {
		Name      string     `json:"name" maxLength:"200"`
		Role      string     `json:"role" doc:"admin (manage everything, or one account with account_id) or verify (verify keys, report usage, forward-auth)"`
		AccountID string     `json:"account_id,omitempty" doc:"Scope an admin token to this account: its keys, members, webhooks and usage; other accounts' ids are 404, operator-wide calls 403"`
		ExpiresAt *time.Time `json:"expires_at,omitempty" doc:"After this the token is refused"`
	}
}

type revokeTokenInput struct {
	TokenPath
	Body *struct {
		Force bool `json:"force,omitempty" doc:"Revoke even the last active operator-wide admin token"`
	}
}

type listTokensInput struct {
	PageQuery
}

type listTokensOutput struct {
	Body List[TokenBody]
}

func (s *Server) tokenRoutes() {
	tags := []string{"Tokens"}
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "createToken", Method: http.MethodPost, Path: "/v1/tokens", Summary: "Create an operator token; it is in this response only", Tags: tags, DefaultStatus: http.StatusCreated},
		func(ctx context.Context, in *createTokenInput) (*createdTokenOutput, error) {
			b := in.Body
			t, err := s.svc.CreateToken(ctx, service.TokenInput{Name: b.Name, Role: keyplane.Role(b.Role), AccountID: b.AccountID, ExpiresAt: b.ExpiresAt})
			if err != nil {
				return nil, err
			}
			out := &createdTokenOutput{}
			out.Body.TokenBody, out.Body.Token = tokenBody(t.Token, time.Now()), t.Plaintext
			return out, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "listTokens", Method: http.MethodGet, Path: "/v1/tokens", Summary: "List operator tokens, newest first (never their secrets)", Tags: tags},
		func(ctx context.Context, in *listTokensInput) (*listTokensOutput, error) {
			tokens, next, err := s.svc.ListTokens(ctx, in.page())
			if err != nil {
				return nil, err
			}
			now := time.Now()
			out := &listTokensOutput{Body: List[TokenBody]{Data: make([]TokenBody, len(tokens)), NextCursor: next}}
			for i, t := range tokens {
				out.Body.Data[i] = tokenBody(t, now)
			}
			return out, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "getToken", Method: http.MethodGet, Path: "/v1/tokens/{id}", Summary: "Get an operator token (never its secret)", Tags: tags, Errors: []int{http.StatusNotFound}},
		func(ctx context.Context, in *TokenPath) (*tokenOutput, error) {
			t, err := s.svc.Token(ctx, in.ID)
			if err != nil {
				return nil, err
			}
			return &tokenOutput{Body: tokenBody(t, time.Now())}, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "revokeToken", Method: http.MethodPost, Path: "/v1/tokens/{id}/revoke",
		Summary: "Revoke an operator token now, on every instance", Description: "The last active operator-wide admin token is revoked only with force: true (409 otherwise).", Tags: tags, Errors: []int{http.StatusNotFound, http.StatusConflict}},
		func(ctx context.Context, in *revokeTokenInput) (*tokenOutput, error) {
			force := in.Body != nil && in.Body.Force
			t, err := s.svc.RevokeToken(ctx, in.ID, force)
			if err != nil {
				return nil, err
			}
			return &tokenOutput{Body: tokenBody(t, time.Now())}, nil
		})
}
