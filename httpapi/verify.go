package httpapi

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/keyplane/keyplane"
)

type verifyInput struct {
	Body struct {
		Key      string `json:"key" maxLength:"256" doc:"The API key to check"`
		Scope    string `json:"scope,omitempty" maxLength:"200" doc:"Required scope, e.g. enrichment:read"`
		IP       string `json:"ip,omitempty" maxLength:"64" doc:"The client's IP address, checked against the key's allowed ranges"`
		Endpoint string `json:"endpoint,omitempty" maxLength:"512" doc:"The endpoint called, for usage reports"`
		Cost     *int64 `json:"cost,omitempty" minimum:"0" maximum:"1000000" doc:"Units charged against the quota; default 1"`
	}
}

// VerifyResponse answers every verification with 200; Valid and Code say the outcome.
type VerifyResponse struct {
	Valid       bool           `json:"valid"`
	Code        string         `json:"code" enum:"VALID,NOT_FOUND,REVOKED,EXPIRED,DISABLED,FORBIDDEN,INSUFFICIENT_SCOPE,RATE_LIMITED,QUOTA_EXCEEDED"`
	KeyID       string         `json:"key_id,omitempty"`
	AccountID   string         `json:"account_id,omitempty"`
	Name        string         `json:"name,omitempty"`
	Environment string         `json:"environment,omitempty"`
	Scopes      []string       `json:"scopes,omitempty"`
	Metadata    JSONObject     `json:"metadata,omitempty"`
	ExpiresAt   *time.Time     `json:"expires_at,omitempty"`
	RateLimit   *RateLimitInfo `json:"ratelimit,omitempty"`
	Quota       *QuotaInfo     `json:"quota,omitempty"`
}

// RateLimitInfo is the state of the tightest rate-limit policy.
type RateLimitInfo struct {
	Limit        int64 `json:"limit"`
	Remaining    int64 `json:"remaining"`
	ResetSeconds int64 `json:"reset_seconds"`
}

// QuotaInfo is the state of the quota.
type QuotaInfo struct {
	Limit     int64     `json:"limit"`
	Remaining int64     `json:"remaining"`
	ResetsAt  time.Time `json:"resets_at"`
}

type verifyOutput struct {
	Body VerifyResponse
}

func (s *Server) verifyRoutes() {
	register(s, keyplane.RoleVerify, huma.Operation{OperationID: "verifyKey", Method: http.MethodPost, Path: "/v1/verify", Summary: "Verify a key: 200 for every outcome", Tags: []string{"Verification"}},
		func(ctx context.Context, in *verifyInput) (*verifyOutput, error) {
			req := keyplane.VerifyRequest{Key: in.Body.Key, Scope: in.Body.Scope, Endpoint: in.Body.Endpoint, Cost: 1}
			if in.Body.IP != "" {
				ip, err := netip.ParseAddr(in.Body.IP)
				if err != nil {
					return nil, keyplane.Invalid("ip", "%q is not an IPv4 or IPv6 address", in.Body.IP)
				}
				req.IP = ip
			}
			if in.Body.Cost != nil {
				req.Cost = *in.Body.Cost
			}
			res, err := s.svc.Verify(ctx, req)
			if err != nil {
				return nil, err
			}
			return &verifyOutput{Body: verifyResponse(res)}, nil
		})
}

func verifyResponse(res keyplane.VerifyResult) VerifyResponse {
	out := VerifyResponse{Valid: res.Valid, Code: string(res.Code)}
	if k := res.Key; k != nil {
		out.KeyID, out.AccountID, out.Name, out.Environment = k.ID, k.AccountID, k.Name, string(k.Environment)
		out.Scopes, out.Metadata, out.ExpiresAt = k.Scopes, JSONObject(k.MetadataJSON()), k.ExpiresAt
	}
	if rl := res.RateLimit; rl != nil {
		out.RateLimit = &RateLimitInfo{Limit: rl.Limit, Remaining: rl.Remaining, ResetSeconds: int64(rl.Reset.Seconds())}
	}
	if q := res.Quota; q != nil {
		out.Quota = &QuotaInfo{Limit: q.Limit, Remaining: q.Remaining, ResetsAt: q.ResetsAt}
	}
	return out
}
