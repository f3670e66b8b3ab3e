package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/admit"
	"github.com/keyplane/keyplane/problem"
)

// VerifyRequest asks whether a key may make a request.
type VerifyRequest struct {
	Key      string `json:"key" maxLength:"256" doc:"The API key to check"`
	Scope    string `json:"scope,omitempty" maxLength:"200" doc:"Required scope, e.g. enrichment:read"`
	IP       string `json:"ip,omitempty" maxLength:"64" doc:"The client's IP address, checked against the key's allowed ranges"`
	Endpoint string `json:"endpoint,omitempty" maxLength:"512" doc:"The endpoint called, for usage reports"`
	Cost     *int64 `json:"cost,omitempty" minimum:"0" maximum:"1000000" doc:"Units charged against rate limits and quota; default 1; 0 charges nothing and reports what is left"`
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
	// RetryAfterSeconds is set with RATE_LIMITED and QUOTA_EXCEEDED: when to try again.
	RetryAfterSeconds int64 `json:"retry_after_seconds,omitempty"`
}

// RateLimitInfo is the state of the tightest rate-limit policy (the refusing
// one, for RATE_LIMITED).
type RateLimitInfo struct {
	Policy        string `json:"policy"`
	Limit         int64  `json:"limit"`
	Remaining     int64  `json:"remaining"`
	ResetSeconds  int64  `json:"reset_seconds"`
	WindowSeconds int64  `json:"window_seconds" doc:"The policy's window, for RateLimit-Policy's w="`
}

// QuotaInfo is the state of the quota after the request.
type QuotaInfo struct {
	Limit     int64     `json:"limit"`
	Used      int64     `json:"used"`
	Remaining int64     `json:"remaining"`
	Period    string    `json:"period" enum:"day,month"`
	ResetsAt  time.Time `json:"resets_at"`
}

// verifyRoutes serves POST /v1/verify with a plain net/http handler rather
// than through huma: every request to the operator's API makes this call,
// and huma's generic decode-validate-decode costs several times the
// verification itself. The handler enforces the schema it documents (the
// tests check both agree), and the operation is added to the OpenAPI document
// from the same Go types.
func (s *Server) verifyRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/verify", s.serveVerify)
	reg := s.api.OpenAPI().Components.Schemas
	jsonOf := func(v any, name string) map[string]*huma.MediaType {
		return map[string]*huma.MediaType{"application/json": {Schema: reg.Schema(reflect.TypeOf(v), true, name)}}
	}
	problemBody := map[string]*huma.MediaType{"application/problem+json": {Schema: reg.Schema(reflect.TypeOf(problem.Problem{}), true, "Problem")}}
	s.roles = append(s.roles, RouteRole{Method: http.MethodPost, Path: "/v1/verify", Role: keyplane.RoleVerify})
	s.api.OpenAPI().AddOperation(&huma.Operation{
		OperationID: "verifyKey", Method: http.MethodPost, Path: "/v1/verify",
		Summary:     "Verify a key: 200 for every outcome",
		Description: "Checks, in order: NOT_FOUND, REVOKED, EXPIRED, DISABLED, FORBIDDEN, INSUFFICIENT_SCOPE, then QUOTA_EXCEEDED and RATE_LIMITED (neither charged when the other refuses); the first failure wins.",
		Tags:        []string{"Verification"},
		Security:    []map[string][]string{{"bearer": {}}},
		RequestBody: &huma.RequestBody{Required: true, Content: jsonOf(VerifyRequest{}, "VerifyRequest")},
		Responses: map[string]*huma.Response{
			"200": {Description: "The outcome, valid or not", Content: jsonOf(VerifyResponse{}, "VerifyResponse")},
			"400": {Description: "The request is malformed", Content: problemBody},
			"401": {Description: "Missing or unknown token", Content: problemBody},
			"413": {Description: "Body over 1 MiB", Content: problemBody},
			"503": {Description: "The key is not cached and the database does not answer", Content: problemBody},
		},
	})
}

func (s *Server) serveVerify(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if _, p := s.actorFor(r.Context(), r.Header.Get("Authorization"), keyplane.RoleVerify); p != nil {
		problem.Write(w, p)
		return
	}
	var in VerifyRequest
	if p := decodeStrict(w, r, &in); p != nil {
		problem.Write(w, p)
		return
	}
	req, err := in.verifyRequest()
	if err != nil {
		problem.Write(w, problem.FromError(err))
		return
	}
	res, err := s.svc.Verify(ctx, req)
	if err != nil {
		problem.Write(w, s.problem(ctx, err).(*problem.Problem))
		return
	}
	writeJSON(w, http.StatusOK, verifyResponse(res))
}

// verifyRequest checks what the schema promises and converts.
func (in *VerifyRequest) verifyRequest() (keyplane.VerifyRequest, error) {
	var v keyplane.Validation
	for _, f := range []struct {
		name, value string
		max         int
	}{{"key", in.Key, 256}, {"scope", in.Scope, 200}, {"ip", in.IP, 64}, {"endpoint", in.Endpoint, 512}} {
		if n := utf8.RuneCountInString(f.value); n > f.max {
			v.Add(f.name, "expected length <= %d", f.max)
		}
	}
	if in.Key == "" {
		v.Add("key", "expected required property key to be present and not empty")
	}
	req := keyplane.VerifyRequest{Key: in.Key, Scope: in.Scope, Endpoint: in.Endpoint, Cost: 1}
	if in.IP != "" {
		ip, err := netip.ParseAddr(in.IP)
		if err != nil {
			v.Add("ip", "%q is not an IPv4 or IPv6 address", in.IP)
		}
		req.IP = ip
	}
	if in.Cost != nil {
		if *in.Cost < 0 || *in.Cost > 1_000_000 {
			v.Add("cost", "expected a number between 0 and 1000000")
		}
		req.Cost = *in.Cost
	}
	return req, v.Err()
}

func quotaInfo(q *keyplane.QuotaState) *QuotaInfo {
	return &QuotaInfo{Limit: q.Limit, Used: q.Used, Remaining: q.Remaining, Period: string(q.Period), ResetsAt: q.ResetsAt}
}

func verifyResponse(res keyplane.VerifyResult) VerifyResponse {
	out := VerifyResponse{Valid: res.Valid, Code: string(res.Code)}
	if k := res.Key; k != nil {
		out.KeyID, out.AccountID, out.Name, out.Environment = k.ID, k.AccountID, k.Name, string(k.Environment)
		out.Scopes, out.Metadata, out.ExpiresAt = k.Scopes, JSONObject(k.MetadataJSON()), k.ExpiresAt
	}
	if rl := res.RateLimit; rl != nil {
		out.RateLimit = &RateLimitInfo{Policy: rl.Policy, Limit: rl.Limit, Remaining: rl.Remaining, ResetSeconds: admit.CeilSeconds(rl.Reset), WindowSeconds: admit.CeilSeconds(rl.Window)}
	}
	if res.Code == keyplane.VerifyRateLimited || res.Code == keyplane.VerifyQuotaExceeded {
		out.RetryAfterSeconds = max(1, admit.CeilSeconds(res.RetryAfter))
	}
	if res.Quota.Counted() {
		out.Quota = quotaInfo(&res.Quota)
	}
	return out
}

// maxBodyBytes is the contract's limit on request bodies.
const maxBodyBytes = 1 << 20

// decodeStrict reads one JSON object into dst with the API's rules: at most
// 1 MiB, no unknown fields, nothing after the object. Its problems name the
// field, as huma's do on the other routes.
func decodeStrict(w http.ResponseWriter, r *http.Request, dst any) *problem.Problem {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return problem.New(http.StatusUnsupportedMediaType, problem.CodeOf(http.StatusUnsupportedMediaType), "send application/json", nil)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		if extra := dec.Decode(&json.RawMessage{}); extra != io.EOF {
			err = errors.New("unexpected data after the JSON object")
		}
	}
	if err == nil {
		return nil
	}
	var tooBig *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	field, msg := "(body)", err.Error()
	switch {
	case errors.As(err, &tooBig):
		return problem.New(http.StatusRequestEntityTooLarge, problem.CodeOf(http.StatusRequestEntityTooLarge), "request body is over 1 MiB", nil)
	case errors.Is(err, io.EOF):
		msg = "a JSON object is required"
	case errors.As(err, &typeErr):
		field, msg = typeErr.Field, fmt.Sprintf("expected %s, got %s", jsonType(typeErr.Type), typeErr.Value)
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		msg = "malformed JSON: " + strings.TrimPrefix(err.Error(), "json: ")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field, msg = strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "unexpected property"
	}
	return problem.New(http.StatusBadRequest, keyplane.EINVALID, field+": "+msg, []problem.FieldProblem{{Field: field, Message: msg}})
}

// jsonType names a Go type as JSON does.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Pointer:
		return jsonType(t.Elem())
	}
	return "object"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		problem.Write(w, problem.New(http.StatusInternalServerError, keyplane.EINTERNAL, "internal error", nil))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}
