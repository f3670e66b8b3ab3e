package httpapi

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

type accountOutput struct {
	Body AccountBody
}

type AccountPath struct {
	ID string `path:"id" maxLength:"64" doc:"Account id"`
}

type createAccountInput struct {
	Body struct {
		Name          string   `json:"name" maxLength:"400" doc:"1 to 100 characters"`
		Plan          string   `json:"plan,omitempty" doc:"Plan name; default \"default\""`
		AllowedScopes []string `json:"allowed_scopes,omitempty" doc:"Scopes the account's keys may be granted; wildcards resource:* and * allowed"`
		Status        string   `json:"status,omitempty" enum:"active,suspended" doc:"Default active"`
	}
}

type updateAccountInput struct {
	AccountPath
	Body struct {
		Name          Optional[string]   `json:"name,omitempty" maxLength:"400"`
		Plan          Optional[string]   `json:"plan,omitempty"`
		AllowedScopes Optional[[]string] `json:"allowed_scopes,omitempty" doc:"Narrowing takes effect on existing keys at their next verification"`
		Status        Optional[string]   `json:"status,omitempty" enum:"active,suspended" doc:"suspended stops every key of the account"`
	}
}

type listAccountsInput struct {
	PageQuery
}

type listAccountsOutput struct {
	Body List[AccountBody]
}

func (s *Server) accountRoutes() {
	tags := []string{"Accounts"}
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "createAccount", Method: http.MethodPost, Path: "/v1/accounts", Summary: "Create an account", Tags: tags, DefaultStatus: http.StatusCreated},
		func(ctx context.Context, in *createAccountInput) (*accountOutput, error) {
			a, err := s.svc.CreateAccount(ctx, service.AccountInput{Name: in.Body.Name, Plan: in.Body.Plan, AllowedScopes: in.Body.AllowedScopes, Status: keyplane.AccountStatus(in.Body.Status)})
			if err != nil {
				return nil, err
			}
			return &accountOutput{Body: accountBody(a)}, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "listAccounts", Method: http.MethodGet, Path: "/v1/accounts", Summary: "List accounts, newest first", Tags: tags},
		func(ctx context.Context, in *listAccountsInput) (*listAccountsOutput, error) {
			accounts, next, err := s.svc.ListAccounts(ctx, in.page())
			if err != nil {
				return nil, err
			}
			out := &listAccountsOutput{Body: List[AccountBody]{Data: make([]AccountBody, len(accounts)), NextCursor: next}}
			for i, a := range accounts {
				out.Body.Data[i] = accountBody(a)
			}
			return out, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "getAccount", Method: http.MethodGet, Path: "/v1/accounts/{id}", Summary: "Get an account", Tags: tags, Errors: []int{http.StatusNotFound}},
		func(ctx context.Context, in *AccountPath) (*accountOutput, error) {
			a, err := s.svc.Account(ctx, in.ID)
			if err != nil {
				return nil, err
			}
			return &accountOutput{Body: accountBody(a)}, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "updateAccount", Method: http.MethodPatch, Path: "/v1/accounts/{id}", Summary: "Update an account; suspend or reactivate it", Tags: tags, Errors: []int{http.StatusNotFound}},
		func(ctx context.Context, in *updateAccountInput) (*accountOutput, error) {
			b := in.Body
			up := service.AccountUpdate{Name: ptrIf(b.Name), Plan: ptrIf(b.Plan), AllowedScopes: ptrIf(b.AllowedScopes)}
			if b.Status.Set {
				st := keyplane.AccountStatus(b.Status.Value)
				up.Status = &st
			}
			a, err := s.svc.UpdateAccount(ctx, in.ID, up)
			if err != nil {
				return nil, err
			}
			return &accountOutput{Body: accountBody(a)}, nil
		})
}

// ptrIf returns a pointer to the value of a field that was sent, else nil.
func ptrIf[T any](o Optional[T]) *T {
	if !o.Set {
		return nil
	}
	return &o.Value
}
