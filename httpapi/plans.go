package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

// PlanBody is a plan as the API shows it.
type PlanBody struct {
	Name          string                `json:"name" example:"free"`
	RateLimits    []RateLimitPolicyBody `json:"rate_limits" nullable:"true" doc:"Policies for keys without their own; null is unlimited"`
	Quota         *QuotaBody            `json:"quota" doc:"Quota for keys without their own; null is none"`
	MaxKeys       int                   `json:"max_keys" doc:"Active keys per account"`
	AllowedScopes []string              `json:"allowed_scopes" doc:"The most any account on the plan may grant"`
	KeyPolicy     *KeyPolicyBody        `json:"key_policy" doc:"What keys of accounts on the plan must keep to; null is nothing"`
	CreatedAt     time.Time             `json:"created_at"`
	UpdatedAt     time.Time             `json:"updated_at"`
}

func planBody(p *keyplane.Plan) PlanBody {
	return PlanBody{Name: p.Name, RateLimits: policiesToBody(p.RateLimits), Quota: quotaToBody(p.Quota), MaxKeys: p.MaxKeys,
		AllowedScopes: nonNil(p.AllowedScopes), KeyPolicy: keyPolicyToBody(p.KeyPolicy), CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
}

// KeyPolicyBody is a plan's key policy.
type KeyPolicyBody struct {
	RequireExpiry   bool `json:"require_expiry" doc:"Keys must have an expires_at"`
	MaxLifetimeDays int  `json:"max_lifetime_days,omitempty" minimum:"0" maximum:"3650" doc:"Keys must expire at most this many days after they are created or rolled (implies an expiry); 0 or absent is no limit"`
}

func keyPolicyToBody(kp *keyplane.KeyPolicy) *KeyPolicyBody {
	if kp == nil {
		return nil
	}
	return &KeyPolicyBody{RequireExpiry: kp.RequireExpiry, MaxLifetimeDays: kp.MaxLifetimeDays}
}

func keyPolicyFromBody(b *KeyPolicyBody) *keyplane.KeyPolicy {
	if b == nil {
		return nil
	}
	return &keyplane.KeyPolicy{RequireExpiry: b.RequireExpiry, MaxLifetimeDays: b.MaxLifetimeDays}
}

type planOutput struct {
	Body PlanBody
}

// PlanPath names a plan in the path.
type PlanPath struct {
	Name string `path:"name" maxLength:"63" doc:"Plan name"`
}

type createPlanInput struct {
	Body struct {
		Name          string                `json:"name" maxLength:"63" doc:"Lowercase letters, digits, - and _"`
		RateLimits    []RateLimitPolicyBody `json:"rate_limits,omitempty" doc:"At most 10; absent is unlimited"`
		Quota         *QuotaBody            `json:"quota,omitempty"`
		MaxKeys       int                   `json:"max_keys,omitempty" doc:"Default 25"`
		AllowedScopes []string              `json:"allowed_scopes,omitempty" doc:"Default [\"*\"]"`
		KeyPolicy     *KeyPolicyBody        `json:"key_policy,omitempty" doc:"Absent is none"`
	}
}

type updatePlanInput struct {
	PlanPath
	Body struct {
		RateLimits    Nullable[[]RateLimitPolicyBody] `json:"rate_limits,omitempty" doc:"null removes the limits"`
		Quota         Nullable[QuotaBody]             `json:"quota,omitempty" doc:"null removes the quota"`
		MaxKeys       Optional[int]                   `json:"max_keys,omitempty"`
		AllowedScopes Optional[[]string]              `json:"allowed_scopes,omitempty"`
		KeyPolicy     Nullable[KeyPolicyBody]         `json:"key_policy,omitempty" doc:"null removes the policy (existing keys keep their expiry)"`
	}
}

type listPlansOutput struct {
	Body List[PlanBody]
}

type listPlansInput struct {
	PageQuery
}

func (s *Server) planRoutes() {
	tags := []string{"Plans"}
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "createPlan", Method: http.MethodPost, Path: "/v1/plans", Summary: "Create a plan", Tags: tags, DefaultStatus: http.StatusCreated, Errors: []int{http.StatusConflict}},
		func(ctx context.Context, in *createPlanInput) (*planOutput, error) {
			b := in.Body
			p, err := s.svc.CreatePlan(ctx, service.PlanInput{Name: b.Name, RateLimits: policiesFromBody(b.RateLimits), Quota: quotaFromBody(b.Quota), MaxKeys: b.MaxKeys, AllowedScopes: b.AllowedScopes, KeyPolicy: keyPolicyFromBody(b.KeyPolicy)})
			if err != nil {
				return nil, err
			}
			return &planOutput{Body: planBody(p)}, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "listPlans", Method: http.MethodGet, Path: "/v1/plans", Summary: "List plans by name", Tags: tags},
		func(ctx context.Context, in *listPlansInput) (*listPlansOutput, error) {
			plans, next, err := s.svc.ListPlans(ctx, in.page())
			if err != nil {
				return nil, err
			}
			out := &listPlansOutput{Body: List[PlanBody]{Data: make([]PlanBody, len(plans)), NextCursor: next}}
			for i, p := range plans {
				out.Body.Data[i] = planBody(p)
			}
			return out, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "getPlan", Method: http.MethodGet, Path: "/v1/plans/{name}", Summary: "Get a plan", Tags: tags, Errors: []int{http.StatusNotFound}},
		func(ctx context.Context, in *PlanPath) (*planOutput, error) {
			p, err := s.svc.Plan(ctx, in.Name)
			if err != nil {
				return nil, err
			}
			return &planOutput{Body: planBody(p)}, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "updatePlan", Method: http.MethodPatch, Path: "/v1/plans/{name}", Summary: "Update a plan; it applies to every key of the plan from its next request", Tags: tags, Errors: []int{http.StatusNotFound}},
		func(ctx context.Context, in *updatePlanInput) (*planOutput, error) {
			b := in.Body
			up := service.PlanUpdate{MaxKeys: service.Optional[int](b.MaxKeys), AllowedScopes: service.Optional[[]string](b.AllowedScopes),
				RateLimits: patchPolicies(b.RateLimits), Quota: patchQuota(b.Quota)}
			if b.KeyPolicy.Set {
				up.KeyPolicy = service.Optional[*keyplane.KeyPolicy]{Set: true}
				if !b.KeyPolicy.Null {
					up.KeyPolicy.Value = keyPolicyFromBody(&b.KeyPolicy.Value)
				}
			}
			p, err := s.svc.UpdatePlan(ctx, in.Name, up)
			if err != nil {
				return nil, err
			}
			return &planOutput{Body: planBody(p)}, nil
		})
}
