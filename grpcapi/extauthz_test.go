package grpcapi_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"connectrpc.com/connect"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	pb "github.com/keyplane/keyplane/gen/keyplane/v1"
	"github.com/keyplane/keyplane/grpcapi"
)

// Envoy's ext_authz, called with Envoy's own message types
// (go-control-plane) over gRPC: keyplane's trimmed definitions must agree
// with them on the wire.
func TestEnvoyExtAuthz(t *testing.T) {
	h := newHarness(t)
	acc := h.account("things:*")
	reader := h.key(&pb.CreateKeyRequest{AccountId: acc, Scopes: []string{"things:read"}})
	limited := h.key(&pb.CreateKeyRequest{AccountId: acc, Scopes: []string{"things:read"},
		RateLimits: &pb.RateLimitPolicies{Policies: []*pb.RateLimitPolicy{{Name: "default", Limit: ptr[int64](1), WindowSeconds: 60, Algorithm: pb.Algorithm_ALGORITHM_TOKEN_BUCKET}}}})
	fenced := h.key(&pb.CreateKeyRequest{AccountId: acc, Scopes: []string{"things:read"}, AllowedCidrs: []string{"203.0.113.0/24"}})

	client := connect.NewClient[authv3.CheckRequest, authv3.CheckResponse](h.client, h.url+grpcapi.ExtAuthzProcedure, connect.WithGRPC(), bearer(h.verify))
	check := func(method, path, source string, headers map[string]string) *authv3.CheckResponse {
		t.Helper()
		req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: source, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}}}}},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Id: "1", Method: method, Path: path, Host: "api.example.com", Scheme: "https", Protocol: "HTTP/1.1", Headers: headers}},
			ContextExtensions: map[string]string{"ignored": "by keyplane"},
		}}
		res, err := client.CallUnary(context.Background(), connect.NewRequest(req))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg
	}
	headersOf := func(opts []*corev3.HeaderValueOption) map[string]string {
		m := map[string]string{}
		for _, o := range opts {
			if o.AppendAction != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Fatalf("header %s appended, not overwritten", o.Header.Key)
			}
			m[o.Header.Key] = o.Header.Value
		}
		return m
	}
	denied := func(res *authv3.CheckResponse, status int, grpcCode int32, code string) map[string]string {
		t.Helper()
		d := res.GetDeniedResponse()
		var p struct {
			Code string `json:"code"`
		}
		if res.Status.GetCode() != grpcCode || d == nil || int(d.Status.GetCode()) != status || json.Unmarshal([]byte(d.Body), &p) != nil || p.Code != code {
			t.Fatalf("got %v, want %d %s", res, status, code)
		}
		hdr := headersOf(d.Headers)
		if hdr["content-type"] != "application/problem+json" {
			t.Fatalf("denied headers %v", hdr)
		}
		return hdr
	}

	// Admitted: identity headers for upstream, the key and forged identity headers removed.
	res := check("GET", "/things/7?x=1", "192.0.2.1", map[string]string{"x-api-key": reader.Plaintext, "x-keyplane-key-id": "forged", "x-keyplane-role": "admin", "accept": "*/*"})
	ok := res.GetOkResponse()
	if res.Status.GetCode() != 0 || ok == nil {
		t.Fatalf("valid key: %v", res)
	}
	up := headersOf(ok.Headers)
	if up["x-keyplane-key-id"] != reader.Key.Id || up["x-keyplane-account-id"] != acc || up["x-keyplane-scopes"] != "things:read" {
		t.Fatalf("upstream headers %v", up)
	}
	slices.Sort(ok.HeadersToRemove)
	if !slices.Equal(ok.HeadersToRemove, []string{"x-api-key", "x-keyplane-role"}) {
		t.Fatalf("headers to remove %v", ok.HeadersToRemove)
	}
	res = check("GET", "/things/7", "192.0.2.1", map[string]string{"authorization": "Bearer " + reader.Plaintext})
	if !slices.Equal(res.GetOkResponse().GetHeadersToRemove(), []string{"authorization"}) {
		t.Fatalf("bearer key: %v", res)
	}

	// Refused, with what the client should see.
	if hdr := denied(check("GET", "/things/7", "192.0.2.1", nil), 401, 16, "missing_key"); hdr["www-authenticate"] == "" {
		t.Fatalf("401 headers %v", hdr)
	}
	denied(check("GET", "/things/7", "192.0.2.1", map[string]string{"x-api-key": "kp_live_nonsense"}), 401, 16, "not_found")
	denied(check("POST", "/things", "192.0.2.1", map[string]string{"x-api-key": reader.Plaintext}), 403, 7, "insufficient_scope")
	denied(check("GET", "/admin", "192.0.2.1", map[string]string{"x-api-key": reader.Plaintext}), 403, 7, "no_route")
	denied(check("GET", "/things/7%2Fsecret", "192.0.2.1", map[string]string{"x-api-key": reader.Plaintext}), 400, 7, "invalid")
	denied(check("GET", "/things/7", "198.51.100.1", map[string]string{"x-api-key": fenced.Plaintext}), 403, 7, "forbidden")
	if res := check("GET", "/things/7", "203.0.113.9", map[string]string{"x-api-key": fenced.Plaintext}); res.GetOkResponse() == nil {
		t.Fatalf("key from its allowed range: %v", res)
	}
	res = check("GET", "/things/7", "192.0.2.1", map[string]string{"x-api-key": limited.Plaintext})
	if rl := headersOf(res.GetOkResponse().GetResponseHeadersToAdd()); rl["x-ratelimit-remaining"] != "0" || rl["ratelimit-policy"] == "" {
		t.Fatalf("rate-limit headers for the client: %v", res)
	}
	if hdr := denied(check("GET", "/things/7", "192.0.2.1", map[string]string{"x-api-key": limited.Plaintext}), 429, 8, "rate_limited"); hdr["retry-after"] == "" {
		t.Fatalf("429 headers %v", hdr)
	}

	// The caller (Envoy) needs an operator token: verify role is enough.
	anon := connect.NewClient[authv3.CheckRequest, authv3.CheckResponse](h.client, h.url+grpcapi.ExtAuthzProcedure, connect.WithGRPC())
	_, err := anon.CallUnary(context.Background(), connect.NewRequest(&authv3.CheckRequest{}))
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = client.CallUnary(context.Background(), connect.NewRequest(&authv3.CheckRequest{}))
	wantCode(t, err, connect.CodeInvalidArgument)
}
