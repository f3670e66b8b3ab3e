package httpapi

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/admit"
	"github.com/keyplane/keyplane/problem"
)

// Forward-auth modes: how a refusal is answered.
const (
	// ModeStandard answers 401, 403 or 429 with problem details and the
	// rate-limit headers, which Caddy, Traefik and Envoy pass to the client.
	ModeStandard = "standard"
	// ModeNginx answers only 401 or 403 (and 5xx for outages): nginx's
	// auth_request turns any other status into a 500. A limit is answered
	// with the configured status, 403 by default.
	ModeNginx = "nginx"
)

const forwardAuthPath = "/v1/forward-auth"

// ForwardAuthConfig configures /v1/forward-auth.
type ForwardAuthConfig struct {
	// Mode is the default for requests that do not say ?mode=; standard
	// when empty.
	Mode string
	// NginxLimitedStatus is answered in nginx mode for a rate limit or an
	// exhausted quota: 403 (the default) or 401.
	NginxLimitedStatus int
}

func (s *Server) forwardAuthRoutes(mux *http.ServeMux) {
	mux.HandleFunc(forwardAuthPath, s.serveForwardAuth)
	// Envoy's HTTP ext_authz calls path_prefix + the original path, with the
	// original method.
	mux.HandleFunc(forwardAuthPath+"/", s.serveForwardAuth)
	reg := s.api.OpenAPI().Components.Schemas
	problemBody := map[string]*huma.MediaType{"application/problem+json": {Schema: reg.Schema(reflect.TypeOf(problem.Problem{}), true, "Problem")}}
	header := func(doc string) *huma.Param {
		return &huma.Param{In: "header", Description: doc, Schema: &huma.Schema{Type: "string"}}
	}
	s.roles = append(s.roles, RouteRole{Method: "*", Path: forwardAuthPath, Role: keyplane.RoleVerify})
	s.api.OpenAPI().AddOperation(&huma.Operation{
		OperationID: "forwardAuth", Method: http.MethodGet, Path: forwardAuthPath,
		Summary: "Forward-auth for reverse proxies (any method)",
		Description: "Called by nginx auth_request, Caddy forward_auth, Traefik ForwardAuth or Envoy ext_authz for each request to the operator's API. " +
			"The caller is a proxy: it sends X-Keyplane-Token with an operator token, or comes from --trusted-proxies. " +
			"The client's key is read from Authorization: Bearer, X-API-Key or the configured header or query parameter; the request from " +
			"X-Forwarded-Method/X-Original-Method and X-Forwarded-Uri/X-Original-URI (or, for Envoy, the path after /v1/forward-auth). " +
			"200 admits, with X-Keyplane-Key-Id, X-Keyplane-Account-Id and X-Keyplane-Scopes; refusals are problems (401 unusable key, " +
			"403 scope, address or route, 429 limits with Retry-After). With ?mode=nginx only 401 and 403 are used. See docs/integrations/.",
		Tags:     []string{"Verification"},
		Security: []map[string][]string{{"proxyToken": {}}, {}},
		Parameters: []*huma.Param{
			{Name: "mode", In: "query", Description: "standard or nginx", Schema: &huma.Schema{Type: "string", Enum: []any{ModeStandard, ModeNginx}}},
			withName(header("The original request's method"), "X-Forwarded-Method"),
			withName(header("The original request's URI: path and query"), "X-Forwarded-Uri"),
			withName(header("The client's key (or Authorization: Bearer)"), "X-API-Key"),
		},
		Responses: map[string]*huma.Response{
			"200": {Description: "Admitted; identity and rate-limit headers set"},
			"400": {Description: "The proxy sent no original URI, or a path with . or .. segments or an encoded /, or X-Forwarded-* and X-Original-* that disagree", Content: problemBody},
			"401": {Description: "No key, or an unknown, revoked, expired or disabled one; or the caller is not a trusted proxy", Content: problemBody},
			"403": {Description: "Scope, client address or route refused (in nginx mode also limits)", Content: problemBody},
			"404": {Description: "No route matches and the rules say unmatched: not_found", Content: problemBody},
			"429": {Description: "Rate limit or quota exceeded; Retry-After says when to try again", Content: problemBody},
			"503": {Description: "The key is not cached and the database does not answer", Content: problemBody},
		},
	})
	s.api.OpenAPI().Components.SecuritySchemes["proxyToken"] = &huma.SecurityScheme{Type: "apiKey", In: "header", Name: admit.HeaderProxyToken,
		Description: "An operator token (any role), sent by the proxy that calls forward-auth."}
}

func withName(p *huma.Param, name string) *huma.Param { p.Name = name; return p }

func (s *Server) serveForwardAuth(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	mode := s.forwardAuth.Mode
	if r.URL.Path == forwardAuthPath && r.URL.RawQuery != "" {
		if m := r.URL.Query().Get("mode"); m != "" {
			mode = m
		}
	}
	if mode != ModeStandard && mode != ModeNginx {
		problem.Write(w, problem.New(http.StatusBadRequest, keyplane.EINVALID, "mode="+mode+": want standard or nginx", nil))
		return
	}
	// The caller must be a proxy keyplane trusts: an open forward-auth would
	// let anyone test keys and spend their rate limits.
	fromProxy := s.gate.TrustedPeer(r)
	if !fromProxy {
		token := admit.HeaderValue(r.Header, admit.HeaderProxyToken)
		if token == "" {
			s.log.WarnContext(ctx, "forward-auth call from an untrusted address without "+admit.HeaderProxyToken, "peer", admit.PeerAddr(r).String(), "request_id", requestIDFrom(ctx))
			s.writeForwardAuthProblem(w, mode, problem.New(http.StatusUnauthorized, keyplane.EUNAUTHORIZED,
				"forward-auth callers send "+admit.HeaderProxyToken+": <operator token> or come from --trusted-proxies", nil))
			return
		}
		if _, p := s.actorFor(ctx, "Bearer "+strings.TrimSpace(token), keyplane.RoleVerify); p != nil {
			s.writeForwardAuthProblem(w, mode, p) // one rule for every verify route: scoped tokens may not
			return
		}
	}
	method, u, p := forwardedRequest(r)
	if p != nil {
		s.writeForwardAuthProblem(w, mode, p)
		return
	}
	// An authenticated proxy is the one that saw the client, whichever way
	// it proved itself.
	a := s.gate.Admit(ctx, method, u, r.Header, s.gate.ClientIP(r, true))
	if !a.Admitted() {
		s.writeForwardAuthProblem(w, mode, a.Problem)
		return
	}
	h := w.Header()
	admit.SetIdentity(h, &a)
	admit.RateLimitHeaders(h, a.Result)
	w.WriteHeader(http.StatusOK)
}

// forwardedRequest is the original request as the proxy describes it.
func forwardedRequest(r *http.Request) (string, *url.URL, *problem.Problem) {
	envoyPath, envoy := strings.CutPrefix(r.URL.Path, forwardAuthPath+"/")
	method := r.Method // Envoy calls with the original method, and may pass the client's headers
	if !envoy {
		m, ok := oneHeader(r.Header, "X-Forwarded-Method", "X-Original-Method")
		if !ok {
			return "", nil, ambiguous("X-Forwarded-Method", "X-Original-Method")
		}
		if m != "" {
			method = m
		}
	}
	if len(method) > 32 || strings.IndexFunc(method, func(c rune) bool { return c < 'A' || c > 'Z' }) >= 0 {
		return "", nil, problem.New(http.StatusBadRequest, keyplane.EINVALID, "the forwarded method is not an HTTP method", nil)
	}
	if envoy {
		// Envoy: the original path follows ours; the query is the original's.
		u := *r.URL
		u.Path, u.RawPath = "/"+envoyPath, ""
		if raw, ok := strings.CutPrefix(r.URL.EscapedPath(), forwardAuthPath); ok {
			u.RawPath = raw
		}
		return method, &u, nil
	}
	uri, ok := oneHeader(r.Header, "X-Forwarded-Uri", "X-Original-Uri")
	if !ok {
		return "", nil, ambiguous("X-Forwarded-Uri", "X-Original-URI")
	}
	if uri == "" {
		return "", nil, problem.New(http.StatusBadRequest, keyplane.EINVALID,
			"no X-Forwarded-Uri or X-Original-URI header: configure the proxy to send the original request's URI", nil)
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil || u.Path == "" {
		return "", nil, problem.New(http.StatusBadRequest, keyplane.EINVALID, "the forwarded URI is not a request URI", nil)
	}
	return method, u, nil
}

// oneHeader is the value of whichever of two headers is sent; not ok when
// both are, with different values. A proxy sets one and passes the client's
// headers on (nginx's auth_request does), so the other could be the
// client's, describing another request than the one the proxy lets through.
func oneHeader(h http.Header, a, b string) (string, bool) {
	va, vb := admit.HeaderValue(h, a), admit.HeaderValue(h, b)
	if va != "" && vb != "" && va != vb {
		return "", false
	}
	if va != "" {
		return va, true
	}
	return vb, true
}

func ambiguous(a, b string) *problem.Problem {
	return problem.New(http.StatusBadRequest, keyplane.EINVALID, a+" and "+b+" disagree: the proxy sets one, a client may have sent the other", nil)
}

// writeForwardAuthProblem writes a refusal in the proxy's convention.
func (s *Server) writeForwardAuthProblem(w http.ResponseWriter, mode string, p *problem.Problem) {
	if mode == ModeNginx {
		if status := nginxStatus(p.Status, s.forwardAuth.NginxLimitedStatus); status != p.Status {
			q := *p
			q.Status, q.Title = status, http.StatusText(status)
			p = &q
		}
	}
	problem.Write(w, p)
}

// nginxStatus is the status nginx's auth_request understands for a refusal:
// it passes 401 and 403 to the client, and turns anything else into a 500.
func nginxStatus(status, limited int) int {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status < 400 || status >= 500:
		return status
	case status == http.StatusTooManyRequests && limited != 0:
		return limited
	}
	return http.StatusForbidden
}
