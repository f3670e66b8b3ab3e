package httpapi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

// JSONObject is a JSON object kept as raw bytes, so numbers and key order
// survive untouched (a map[string]any would turn big integers into floats).
type JSONObject json.RawMessage

func (o JSONObject) MarshalJSON() ([]byte, error) {
	if len(o) == 0 {
		return []byte("{}"), nil
	}
	return o, nil
}

func (o *JSONObject) UnmarshalJSON(b []byte) error {
	*o = append((*o)[:0], b...)
	return nil
}

// Schema describes JSONObject as any JSON object.
func (JSONObject) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeObject, AdditionalProperties: true, Description: "A JSON object of at most 4 KiB, returned by verify"}
}

// Nullable is a PATCH field that may be absent (unchanged), null (cleared) or
// a value. Its schema is the value's, with null allowed.
type Nullable[T any] struct {
	Set   bool
	Null  bool
	Value T
}

func (n *Nullable[T]) UnmarshalJSON(b []byte) error {
	n.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		n.Null = true
		return nil
	}
	return json.Unmarshal(b, &n.Value)
}

// Schema inlines the value's schema and allows null.
func (n Nullable[T]) Schema(r huma.Registry) *huma.Schema {
	s := *r.Schema(reflect.TypeOf(n.Value), false, "")
	s.Nullable = true
	return &s
}

// Optional is a PATCH field that may be absent (unchanged) or a value; null
// is refused, because it would mean nothing.
type Optional[T any] struct {
	Set   bool
	Value T
}

func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		// This error type makes encoding/json add the field's name.
		return &json.UnmarshalTypeError{Value: "null", Type: reflect.TypeOf(o.Value)}
	}
	o.Set = true
	return json.Unmarshal(b, &o.Value)
}

// Schema is the value's schema, inlined, without null.
func (o Optional[T]) Schema(r huma.Registry) *huma.Schema {
	s := *r.Schema(reflect.TypeOf(o.Value), false, "")
	return &s
}

// AccountBody is an account as the API shows it.
type AccountBody struct {
	ID            string    `json:"id" example:"acc_01jd2x5y6z7a8b9c0d1e2f3g4h"`
	Name          string    `json:"name"`
	Plan          string    `json:"plan"`
	AllowedScopes []string  `json:"allowed_scopes"`
	Status        string    `json:"status" enum:"active,suspended"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func accountBody(a *keyplane.Account) AccountBody {
	return AccountBody{ID: a.ID, Name: a.Name, Plan: a.Plan, AllowedScopes: nonNil(a.AllowedScopes), Status: string(a.Status), CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}

// RateLimitPolicyBody is one named rate-limit policy.
type RateLimitPolicyBody struct {
	Name          string `json:"name" doc:"Unique among the key's policies" example:"default"`
	Limit         *int64 `json:"limit,omitempty" nullable:"true" doc:"Requests per window; null or absent means unlimited"`
	WindowSeconds int64  `json:"window_seconds" example:"60"`
	Burst         *int64 `json:"burst,omitempty" doc:"Token-bucket burst; defaults to the limit"`
	Algorithm     string `json:"algorithm" enum:"token_bucket,sliding_window"`
}

// QuotaBody caps requests (or cost units) per period.
type QuotaBody struct {
	Limit    int64  `json:"limit"`
	Period   string `json:"period" enum:"day,month" doc:"UTC days; months start on reset_day"`
	ResetDay int    `json:"reset_day,omitempty" doc:"Day of the month (1-28) monthly quotas reset on; default 1"`
	Shared   bool   `json:"shared,omitempty" doc:"Count all of the account's keys together"`
}

func policiesFromBody(in []RateLimitPolicyBody) []keyplane.RateLimitPolicy {
	if in == nil {
		return nil
	}
	out := make([]keyplane.RateLimitPolicy, len(in))
	for i, p := range in {
		out[i] = keyplane.RateLimitPolicy{Name: p.Name, Limit: p.Limit, WindowSeconds: p.WindowSeconds, Algorithm: keyplane.Algorithm(p.Algorithm)}
		if p.Burst != nil {
			out[i].Burst = *p.Burst
			if *p.Burst < 1 {
				out[i].Burst = -1 // the service names the field
			}
		}
	}
	return out
}

func policiesToBody(in []keyplane.RateLimitPolicy) []RateLimitPolicyBody {
	if in == nil {
		return nil
	}
	out := make([]RateLimitPolicyBody, len(in))
	for i, p := range in {
		out[i] = RateLimitPolicyBody{Name: p.Name, Limit: p.Limit, WindowSeconds: p.WindowSeconds, Algorithm: string(p.Algorithm)}
		if p.Burst > 0 {
			out[i].Burst = &p.Burst
		}
	}
	return out
}

func quotaFromBody(q *QuotaBody) *keyplane.Quota {
	if q == nil {
		return nil
	}
	return &keyplane.Quota{Limit: q.Limit, Period: keyplane.QuotaPeriod(q.Period), ResetDay: q.ResetDay, Shared: q.Shared}
}

func quotaToBody(q *keyplane.Quota) *QuotaBody {
	if q == nil {
		return nil
	}
	return &QuotaBody{Limit: q.Limit, Period: string(q.Period), ResetDay: q.ResetDay, Shared: q.Shared}
}

// KeyBody is a key as the API shows it. Key, the plaintext, is present only
// in the response that creates it.
type KeyBody struct {
	ID            string                `json:"id" example:"key_01jd2x5y6z7a8b9c0d1e2f3g4h"`
	Key           string                `json:"key,omitempty" doc:"The plaintext key: present only in the response that creates it; store it now"`
	AccountID     string                `json:"account_id"`
	Name          string                `json:"name"`
	Environment   string                `json:"environment" enum:"live,test"`
	Hint          string                `json:"hint" example:"kp_live_AbCd…wxyz"`
	Status        string                `json:"status" enum:"active,disabled,rolling,expired,revoked"`
	Scopes        []string              `json:"scopes"`
	AllowedCIDRs  []string              `json:"allowed_cidrs"`
	RateLimits    []RateLimitPolicyBody `json:"rate_limits" nullable:"true" doc:"null means the plan's"`
	Quota         *QuotaBody            `json:"quota" doc:"null means the plan's"`
	Metadata      JSONObject            `json:"metadata"`
	Enabled       bool                  `json:"enabled"`
	CreatedAt     time.Time             `json:"created_at"`
	UpdatedAt     time.Time             `json:"updated_at"`
	ExpiresAt     *time.Time            `json:"expires_at,omitempty"`
	RevokedAt     *time.Time            `json:"revoked_at,omitempty"`
	LastUsedAt    *time.Time            `json:"last_used_at,omitempty" doc:"The key's last verification, as of the last usage flush (within about a second)"`
	TotalRequests int64                 `json:"total_requests" doc:"Verifications of the key over its life, as of the last usage flush"`
	RolledFromID  string                `json:"rolled_from_id,omitempty"`
	RolledToID    string                `json:"rolled_to_id,omitempty"`
	LeakedAt      *time.Time            `json:"leaked_at,omitempty" doc:"When the key was first reported as leaked"`
	LeakSource    string                `json:"leak_source,omitempty" enum:"github,report" doc:"Who reported the leak: GitHub's secret scanning or POST /v1/keys/leaked"`
	LeakURL       string                `json:"leak_url,omitempty" doc:"Where the key was found, as reported"`
}

func keyBody(k *keyplane.Key, now time.Time) KeyBody {
	cidrs := make([]string, len(k.AllowedCIDRs))
	for i, p := range k.AllowedCIDRs {
		cidrs[i] = p.String()
	}
	return KeyBody{
		ID: k.ID, AccountID: k.AccountID, Name: k.Name, Environment: string(k.Environment), Hint: k.Hint,
		Status: string(k.Status(now)), Scopes: nonNil(k.Scopes), AllowedCIDRs: cidrs,
		RateLimits: policiesToBody(k.RateLimits), Quota: quotaToBody(k.Quota), Metadata: JSONObject(k.MetadataJSON()),
		Enabled: k.Enabled, CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt,
		LastUsedAt: k.LastUsedAt, TotalRequests: k.TotalRequests, RolledFromID: k.RolledFromID, RolledToID: k.RolledToID,
		LeakedAt: k.LeakedAt, LeakSource: k.LeakSource, LeakURL: k.LeakURL,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// PageQuery is the cursor pagination of list endpoints.
type PageQuery struct {
	Limit  int    `query:"limit" minimum:"1" maximum:"100" default:"20" doc:"Items per page"`
	Cursor string `query:"cursor" maxLength:"100" doc:"next_cursor of the previous page"`
}

func (q PageQuery) page() keyplane.Page { return keyplane.Page{Limit: q.Limit, Cursor: q.Cursor} }

// List is a page of items and the cursor of the next page ("" at the end).
type List[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"next_cursor" doc:"Pass as cursor to get the next page; empty on the last page"`
}

// patchPolicies turns a PATCH's rate_limits into a service update: null is
// nil (none of its own / unlimited), [] an explicit empty list.
func patchPolicies(n Nullable[[]RateLimitPolicyBody]) service.Optional[[]keyplane.RateLimitPolicy] {
	out := service.Optional[[]keyplane.RateLimitPolicy]{Set: n.Set}
	if n.Set && !n.Null {
		out.Value = policiesFromBody(n.Value)
		if out.Value == nil {
			out.Value = []keyplane.RateLimitPolicy{}
		}
	}
	return out
}

// patchQuota turns a PATCH's quota into a service update: null is nil.
func patchQuota(n Nullable[QuotaBody]) service.Optional[*keyplane.Quota] {
	out := service.Optional[*keyplane.Quota]{Set: n.Set}
	if n.Set && !n.Null {
		out.Value = quotaFromBody(&n.Value)
	}
	return out
}
