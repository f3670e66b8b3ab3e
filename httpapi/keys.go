package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

type keyOutput struct {
	Body KeyBody
}

type KeyPath struct {
	ID string `path:"id" maxLength:"64" doc:"Key id"`
}

type createKeyInput struct {
	AccountPath
	Body struct {
		Name         string                `json:"name" maxLength:"400" doc:"1 to 100 characters"`
		Scopes       []string              `json:"scopes,omitempty" doc:"Within the account's allowed scopes"`
		Environment  string                `json:"environment,omitempty" enum:"live,test" doc:"Default live"`
		ExpiresAt    *time.Time            `json:"expires_at,omitempty" doc:"RFC 3339; absent means never"`
		AllowedCIDRs []string              `json:"allowed_cidrs,omitempty" doc:"IPv4/IPv6 ranges or addresses; empty means any"`
		RateLimits   []RateLimitPolicyBody `json:"rate_limits,omitempty" doc:"Overrides the plan's; at most 10"`
		Quota        *QuotaBody            `json:"quota,omitempty" doc:"Overrides the plan's"`
		Metadata     JSONObject            `json:"metadata,omitempty"`
		Enabled      *bool                 `json:"enabled,omitempty" doc:"Default true"`
	}
}

type updateKeyInput struct {
	KeyPath
	Body struct {
		Name         Optional[string]                `json:"name,omitempty" maxLength:"400"`
		Scopes       Optional[[]string]              `json:"scopes,omitempty"`
		AllowedCIDRs Optional[[]string]              `json:"allowed_cidrs,omitempty"`
		RateLimits   Nullable[[]RateLimitPolicyBody] `json:"rate_limits,omitempty" doc:"null returns to the plan's"`
		Quota        Nullable[QuotaBody]             `json:"quota,omitempty" doc:"null returns to the plan's"`
		ExpiresAt    Nullable[time.Time]             `json:"expires_at,omitempty" doc:"null removes the expiry"`
		Metadata     Optional[JSONObject]            `json:"metadata,omitempty" doc:"Replaces the metadata"`
		Enabled      Optional[bool]                  `json:"enabled,omitempty" doc:"false disables the key; true enables it again"`
	}
}

type listKeysInput struct {
	AccountPath
	Status string `query:"status" enum:"active,disabled,rolling,expired,revoked" doc:"Only keys of this status"`
	PageQuery
}

type listKeysOutput struct {
	Body List[KeyBody]
}

type rollKeyInput struct {
	KeyPath
	Body struct {
		OverlapSeconds int64      `json:"overlap_seconds" minimum:"0" maximum:"604800" doc:"How long the old key keeps working: 0 revokes it now, at most 604800 (7 days)"`
		ExpiresAt      *time.Time `json:"expires_at,omitempty" doc:"The new key's expiry; absent keeps the old key's. On a plan with a key_policy it must keep to the policy, counted from now"`
	}
}

type rollKeyOutput struct {
	Body struct {
		Key      KeyBody `json:"key" doc:"The new key, with its plaintext"`
		Previous struct {
			ID        string     `json:"id"`
			Status    string     `json:"status"`
			ExpiresAt *time.Time `json:"expires_at,omitempty" doc:"When the old key stops working"`
			RevokedAt *time.Time `json:"revoked_at,omitempty"`
		} `json:"previous"`
	}
}

func (s *Server) keyRoutes() {
	tags := []string{"Keys"}
	notFound := []int{http.StatusNotFound}
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "createKey", Method: http.MethodPost, Path: "/v1/accounts/{id}/keys", Summary: "Create a key; its plaintext is in this response only", Tags: tags, DefaultStatus: http.StatusCreated, Errors: []int{http.StatusNotFound, http.StatusConflict}},
		func(ctx context.Context, in *createKeyInput) (*keyOutput, error) {
			b := in.Body
			k, err := s.svc.CreateKey(ctx, in.ID, service.KeyInput{
				Name: b.Name, Scopes: b.Scopes, Environment: keyplane.Environment(b.Environment), ExpiresAt: b.ExpiresAt,
				AllowedCIDRs: b.AllowedCIDRs, RateLimits: policiesFromBody(b.RateLimits), Quota: quotaFromBody(b.Quota),
				Metadata: json.RawMessage(b.Metadata), Enabled: b.Enabled,
			})
			if err != nil {
				return nil, err
			}
			body := keyBody(k.Key, s.now())
			body.Key = k.Plaintext
			return &keyOutput{Body: body}, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "listKeys", Method: http.MethodGet, Path: "/v1/accounts/{id}/keys", Summary: "List an account's keys, newest first", Tags: tags, Errors: notFound},
		func(ctx context.Context, in *listKeysInput) (*listKeysOutput, error) {
			keys, next, err := s.svc.ListKeys(ctx, in.ID, keyplane.KeyStatus(in.Status), in.page())
			if err != nil {
				return nil, err
			}
			now := s.now()
			out := &listKeysOutput{Body: List[KeyBody]{Data: make([]KeyBody, len(keys)), NextCursor: next}}
			for i, k := range keys {
				out.Body.Data[i] = keyBody(k, now)
			}
			return out, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "getKey", Method: http.MethodGet, Path: "/v1/keys/{id}", Summary: "Get a key (never its plaintext)", Tags: tags, Errors: notFound},
		func(ctx context.Context, in *KeyPath) (*keyOutput, error) {
			k, err := s.svc.Key(ctx, in.ID)
			if err != nil {
				return nil, err
			}
			return &keyOutput{Body: keyBody(k, s.now())}, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "updateKey", Method: http.MethodPatch, Path: "/v1/keys/{id}", Summary: "Update a key; enable or disable it", Tags: tags, Errors: []int{http.StatusNotFound, http.StatusConflict}},
		func(ctx context.Context, in *updateKeyInput) (*keyOutput, error) {
			up, err := keyUpdate(in)
			if err != nil {
				return nil, err
			}
			k, err := s.svc.UpdateKey(ctx, in.ID, up)
			if err != nil {
				return nil, err
			}
			return &keyOutput{Body: keyBody(k, s.now())}, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "revokeKey", Method: http.MethodPost, Path: "/v1/keys/{id}/revoke", Summary: "Revoke a key now, for good", Tags: tags, Errors: notFound},
		func(ctx context.Context, in *KeyPath) (*keyOutput, error) {
			k, err := s.svc.RevokeKey(ctx, in.ID)
			if err != nil {
				return nil, err
			}
			return &keyOutput{Body: keyBody(k, s.now())}, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "rollKey", Method: http.MethodPost, Path: "/v1/keys/{id}/roll", Summary: "Replace a key with a new one of the same configuration", Tags: tags, DefaultStatus: http.StatusCreated, Errors: []int{http.StatusNotFound, http.StatusConflict}},
		func(ctx context.Context, in *rollKeyInput) (*rollKeyOutput, error) {
			r, err := s.svc.RollKeyWith(ctx, in.ID, service.RollInput{Overlap: time.Duration(in.Body.OverlapSeconds) * time.Second, ExpiresAt: in.Body.ExpiresAt})
			if err != nil {
				return nil, err
			}
			now := s.now()
			out := &rollKeyOutput{}
			out.Body.Key = keyBody(r.Key.Key, now)
			out.Body.Key.Key = r.Key.Plaintext
			p := &out.Body.Previous
			p.ID, p.Status, p.ExpiresAt, p.RevokedAt = r.Previous.ID, string(r.Previous.Status(now)), r.Previous.ExpiresAt, r.Previous.RevokedAt
			return out, nil
		})
}

// keyUpdate turns the PATCH body into a service update. Null is accepted only
// where it means something (back to the plan's, no expiry).
func keyUpdate(in *updateKeyInput) (service.KeyUpdate, error) {
	b := in.Body
	up := service.KeyUpdate{
		Name:         service.Optional[string](b.Name),
		Scopes:       service.Optional[[]string](b.Scopes),
		AllowedCIDRs: service.Optional[[]string](b.AllowedCIDRs),
		Metadata:     service.Optional[json.RawMessage]{Set: b.Metadata.Set, Value: json.RawMessage(b.Metadata.Value)},
		Enabled:      service.Optional[bool](b.Enabled),
	}
	up.RateLimits, up.Quota = patchPolicies(b.RateLimits), patchQuota(b.Quota)
	if b.ExpiresAt.Set {
		up.ExpiresAt.Set = true
		if !b.ExpiresAt.Null {
			up.ExpiresAt.Value = &b.ExpiresAt.Value
		}
	}
	return up, nil
}
