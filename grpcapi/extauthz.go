package grpcapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"strings"

	"connectrpc.com/connect"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/admit"
	extauthz "github.com/keyplane/keyplane/gen/keyplane/extauthz/v1"
	"github.com/keyplane/keyplane/problem"
)

// ExtAuthzProcedure is Envoy's gRPC external authorization method. keyplane
// answers it with the forward-auth gate: the same key lookup, route rules,
// identity headers and refusals as /v1/forward-auth.
const ExtAuthzProcedure = "/envoy.service.auth.v3.Authorization/Check"

// overwrite is HeaderAppendAction OVERWRITE_IF_EXISTS_OR_ADD: an identity
// header a client sent is replaced, never appended to.
const overwrite = 2

// gRPC status codes of a CheckResponse; Envoy refuses on any but OK and
// answers with the denied response's HTTP status.
const (
	grpcOK                = 0
	grpcPermissionDenied  = 7
	grpcResourceExhausted = 8
	grpcUnavailable       = 14
	grpcUnauthenticated   = 16
)

func (s *Server) check(ctx context.Context, req *connect.Request[extauthz.CheckRequest]) (*connect.Response[extauthz.CheckResponse], error) {
	attrs := req.Msg.GetAttributes()
	hr := attrs.GetRequest().GetHttp()
	if hr == nil {
		return nil, keyplane.Invalid("attributes.request.http", "required: the HTTP request Envoy is checking")
	}
	u, err := url.ParseRequestURI(hr.Path)
	if err != nil || !strings.HasPrefix(hr.Path, "/") {
		return nil, keyplane.Invalid("attributes.request.http.path", "not a request path")
	}
	// Envoy sends lower-case names; the gate reads canonical ones.
	h := make(http.Header, len(hr.Headers))
	for k, v := range hr.Headers {
		h[textproto.CanonicalMIMEHeaderKey(k)] = []string{v}
	}
	ip, _ := netip.ParseAddr(attrs.GetSource().GetAddress().GetSocketAddress().GetAddress())
	a := s.gate.Admit(ctx, hr.Method, u, h, ip.Unmap())
	if !a.Admitted() {
		return connect.NewResponse(denied(a.Problem)), nil
	}

	ok := &extauthz.OkHttpResponse{}
	identity := http.Header{}
	admit.SetIdentity(identity, &a)
	ok.Headers = headerOptions(identity)
	limits := http.Header{}
	admit.RateLimitHeaders(limits, a.Result)
	ok.ResponseHeadersToAdd = headerOptions(limits)
	// What the gate strips before a request goes upstream (the key, and
	// identity headers a client forged), for Envoy to strip.
	stripped, strippedURL := h.Clone(), *u
	s.gate.StripCredentials(&a, stripped, &strippedURL)
	for name := range h {
		if _, kept := stripped[name]; !kept && identity[name] == nil {
			ok.HeadersToRemove = append(ok.HeadersToRemove, strings.ToLower(name))
		}
	}
	if strippedURL.RawQuery != u.RawQuery {
		kept := strippedURL.Query()
		for name := range u.Query() {
			if !kept.Has(name) {
				ok.QueryParametersToRemove = append(ok.QueryParametersToRemove, name)
			}
		}
	}
	return connect.NewResponse(&extauthz.CheckResponse{Status: &extauthz.Status{Code: grpcOK},
		HttpResponse: &extauthz.CheckResponse_OkResponse{OkResponse: ok}}), nil
}

// denied is a refusal as Envoy passes it to the client: the problem's
// status, headers (WWW-Authenticate, Retry-After, rate limits) and body.
func denied(p *problem.Problem) *extauthz.CheckResponse {
	body, _ := json.Marshal(p)
	hdr := p.GetHeaders().Clone()
	if hdr == nil {
		hdr = http.Header{}
	}
	hdr.Set("Content-Type", "application/problem+json")
	code := int32(grpcPermissionDenied)
	switch p.Status {
	case http.StatusUnauthorized:
		code = grpcUnauthenticated
	case http.StatusTooManyRequests:
		code = grpcResourceExhausted
	case http.StatusServiceUnavailable:
		code = grpcUnavailable
	}
	return &extauthz.CheckResponse{
		Status: &extauthz.Status{Code: code, Message: p.Detail},
		HttpResponse: &extauthz.CheckResponse_DeniedResponse{DeniedResponse: &extauthz.DeniedHttpResponse{
			Status: &extauthz.HttpStatus{Code: int32(p.Status)}, Headers: headerOptions(hdr), Body: string(body)}},
	}
}

func headerOptions(h http.Header) []*extauthz.HeaderValueOption {
	var out []*extauthz.HeaderValueOption
	for name, values := range h {
		for _, v := range values {
			out = append(out, &extauthz.HeaderValueOption{Header: &extauthz.HeaderValue{Key: strings.ToLower(name), Value: v}, AppendAction: overwrite})
		}
	}
	return out
}
