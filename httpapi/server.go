package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/admit"
	"github.com/keyplane/keyplane/problem"
	"github.com/keyplane/keyplane/secretscan"
	"github.com/keyplane/keyplane/service"
)

// Server is the HTTP API.
type Server struct {
	svc     *service.Service
	store   interface{ Ping(context.Context) error }
	log     *slog.Logger
	now     func() time.Time
	api     huma.API
	handler http.Handler

	gate          *admit.Gate
	forwardAuth   ForwardAuthConfig
	sessionCookie string // the portal's cookie; "" when the portal is off
	portalURL     string
	roles         []RouteRole // what each registered operation requires

	scanKeys  *secretscan.KeySet
	scanLimit *secretscan.Limiter
}

// RouteRole is the operator-token role an operation requires: admin, or
// verify (which admin tokens also pass). docs/api.md's table of roles is
// checked against these.
type RouteRole struct {
	Method, Path string
	Role         keyplane.Role
}

// Roles lists the role every operation of the API requires.
func (s *Server) Roles() []RouteRole { return s.roles }

// Config wires a Server.
type Config struct {
	Service *service.Service
	Store   keyplane.Store // for readiness
	Logger  *slog.Logger
	Version string
	Now     func() time.Time // for derived statuses; defaults to time.Now
	// Gate admits forward-auth requests; nil: no route rules, no trusted
	// proxies, the key in Authorization or X-API-Key.
	Gate        *admit.Gate
	ForwardAuth ForwardAuthConfig

	// Portal serves /portal/; nil turns the portal, and cookie
	// authentication on the API, off. SessionCookie names its cookie.
	Portal        http.Handler
	SessionCookie string
	// PortalURL is the portal's public base URL (https://keys.example.com)
	// for invite links; empty derives it from each request.
	PortalURL string

	// GitHubScanningKeys turns on POST /v1/secret-scanning/github, GitHub's
	// secret scanning partner endpoint, checking signatures against these
	// keys; nil leaves it off. GitHubScanningLimit bounds requests per
	// source address (default 60 a minute).
	GitHubScanningKeys  *secretscan.KeySet
	GitHubScanningLimit *secretscan.Limiter
}

// New returns the API's handler.
func New(cfg Config) *Server {
	s := &Server{svc: cfg.Service, store: cfg.Store, log: cfg.Logger, now: cfg.Now, gate: cfg.Gate, forwardAuth: cfg.ForwardAuth,
		portalURL: strings.TrimSuffix(cfg.PortalURL, "/"), scanKeys: cfg.GitHubScanningKeys, scanLimit: cfg.GitHubScanningLimit}
	if s.scanLimit == nil {
		s.scanLimit = secretscan.NewLimiter(60, time.Minute)
	}
	if cfg.Portal != nil {
		s.sessionCookie = cfg.SessionCookie
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.gate == nil {
		s.gate = admit.NewGate(admit.GateConfig{Service: cfg.Service, Logger: s.log})
	}
	if s.forwardAuth.Mode == "" {
		s.forwardAuth.Mode = ModeStandard
	}
	if s.now == nil {
		s.now = time.Now
	}
	mux := http.NewServeMux()
	hc := huma.DefaultConfig("keyplane", cfg.Version)
	hc.CreateHooks = nil // no $schema links in bodies: responses stay lean
	hc.OpenAPIPath = "/openapi"
	hc.RejectUnknownQueryParameters = true
	hc.Info.Description = "Self-hosted API key management: accounts, scoped keys, verification."
	hc.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", Description: "An operator token (kpt_…): role admin for everything, verify for /v1/verify only."},
	}
	if s.sessionCookie != "" {
		hc.Components.SecuritySchemes["portalSession"] = &huma.SecurityScheme{Type: "apiKey", In: "cookie", Name: s.sessionCookie,
			Description: "A portal member's session cookie: acts for the member's own account, within their role. " +
				"Requests other than GET must send the session's CSRF token (the portal pages' csrf-token meta tag) in X-CSRF-Token."}
	}
	s.api = humago.New(mux, hc)
	s.healthRoutes()
	s.accountRoutes()
	s.keyRoutes()
	s.leakRoutes()
	s.quotaRoutes()
	s.usageRoutes()
	s.planRoutes()
	s.tokenRoutes()
	s.auditRoutes()
	s.memberRoutes()
	s.webhookRoutes()
	s.verifyRoutes(mux)
	s.forwardAuthRoutes(mux)
	s.secretScanningRoutes(mux)
	mux.Handle("/", unmatched(mux))
	api := jsonByDefault(mux)
	if cfg.Portal == nil {
		s.handler = s.requestLog(api)
	} else {
		// The portal speaks forms and HTML, so it goes beside the JSON API.
		root := http.NewServeMux()
		root.Handle("/portal/", cfg.Portal)
		root.Handle("/portal", http.RedirectHandler("/portal/", http.StatusFound))
		root.Handle("/", api)
		s.handler = s.requestLog(root)
	}
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// register adds an operation that needs an operator token of role (admin
// routes accept only admin; the verify route accepts both).
func register[I, O any](s *Server, role keyplane.Role, op huma.Operation, h func(context.Context, *I) (*O, error)) {
	op.Security = []map[string][]string{{"bearer": {}}}
	if s.sessionCookie != "" {
		op.Security = append(op.Security, map[string][]string{"portalSession": {}})
	}
	op.Middlewares = append(op.Middlewares, s.authenticate(role))
	s.roles = append(s.roles, RouteRole{Method: op.Method, Path: op.Path, Role: role})
	op.Errors = append(op.Errors, http.StatusUnauthorized, http.StatusForbidden, http.StatusServiceUnavailable)
	huma.Register(s.api, op, func(ctx context.Context, in *I) (*O, error) {
		out, err := h(ctx, in)
		if err != nil {
			return nil, s.problem(ctx, err)
		}
		return out, nil
	})
}

// problem converts err and logs those a caller cannot act on. A request
// whose client hung up failed because of it: not a server error.
func (s *Server) problem(ctx context.Context, err error) error {
	if problem.ClientGone(ctx) {
		return problem.ClientClosed("the client closed the connection before the answer")
	}
	p := problem.FromError(err)
	if p.Status >= 500 {
		s.log.ErrorContext(ctx, "request failed", "error", err, "request_id", requestIDFrom(ctx))
	}
	return p
}

// authenticate checks the bearer token before the body is read, so an
// unauthenticated caller learns nothing about what input would be accepted.
func (s *Server) authenticate(role keyplane.Role) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		var actor keyplane.Actor
		var p *problem.Problem
		if token := s.sessionToken(ctx); token != "" && ctx.Header("Authorization") == "" {
			actor, p = s.memberFor(ctx, token, role)
		} else {
			actor, p = s.actorFor(ctx.Context(), ctx.Header("Authorization"), role)
		}
		if p != nil {
			if p.Status == http.StatusUnauthorized {
				ctx.SetHeader("WWW-Authenticate", `Bearer realm="keyplane"`)
			}

			huma.WriteErr(s.api, ctx, p.Status, p.Detail)
			return
		}
		next(huma.WithContext(ctx, keyplane.NewContextWithActor(ctx.Context(), actor)))
	}
}

// actorFor authenticates an Authorization header for a route that needs role
// (admin routes take only admin tokens; verification takes both).
func (s *Server) actorFor(ctx context.Context, header string, role keyplane.Role) (keyplane.Actor, *problem.Problem) {
	token, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || token == "" {
		return keyplane.Actor{}, problem.New(http.StatusUnauthorized, keyplane.EUNAUTHORIZED, "missing bearer token: send Authorization: Bearer <operator token>", nil)
	}
	actor, err := s.svc.Authenticate(ctx, strings.TrimSpace(token))
	if err != nil {
		return keyplane.Actor{}, s.problem(ctx, err).(*problem.Problem)
	}
	if role == keyplane.RoleVerify && actor.AccountID != "" {
		// A token for one account manages it; verifying (which sees every
		// account's keys) is for verify tokens.
		return keyplane.Actor{}, problem.New(http.StatusForbidden, keyplane.EFORBIDDEN, "this token is scoped to one account and may only manage it; verify with a verify token", nil)
	}
	if role == keyplane.RoleAdmin && actor.Role != keyplane.RoleAdmin {
		return keyplane.Actor{}, problem.New(http.StatusForbidden, keyplane.EFORBIDDEN, "this token has role "+string(actor.Role)+"; it may only call /v1/verify", nil)
	}
	return actor, nil
}

// sessionToken returns the portal session cookie's value, "" when there is
// none or the portal is off.
func (s *Server) sessionToken(ctx huma.Context) string {
	if s.sessionCookie == "" {
		return ""
	}
	cookies, err := http.ParseCookie(ctx.Header("Cookie"))
	if err != nil {
		return ""
	}
	for _, c := range cookies {
		if c.Name == s.sessionCookie {
			return c.Value
		}
	}
	return ""
}

// memberFor authenticates a portal session cookie. Requests that change
// something must carry the session's CSRF token in X-CSRF-Token: a page on
// another site can make the browser send the cookie, but cannot read the
// token or set the header.
func (s *Server) memberFor(ctx huma.Context, token string, role keyplane.Role) (keyplane.Actor, *problem.Problem) {
	if role != keyplane.RoleAdmin {
		return keyplane.Actor{}, problem.New(http.StatusForbidden, keyplane.EFORBIDDEN, "portal sessions cannot call this endpoint; use an operator token", nil)
	}
	ps, err := s.svc.AuthenticateSession(ctx.Context(), token)
	if err != nil {
		return keyplane.Actor{}, s.problem(ctx.Context(), err).(*problem.Problem)
	}
	switch ctx.Method() {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		if !service.ValidCSRF(token, ctx.Header("X-CSRF-Token")) {
			return keyplane.Actor{}, problem.New(http.StatusForbidden, keyplane.EFORBIDDEN,
				"missing or wrong X-CSRF-Token header: requests made with a portal session that change something must send the token from the portal page", nil)
		}
	}
	return ps.Actor, nil
}
