package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/admit"
	"github.com/keyplane/keyplane/gen/keyplane/v1/keyplanev1connect"
	"github.com/keyplane/keyplane/service"
)

// Config wires a Server.
type Config struct {
	Service *service.Service
	// Gate answers Envoy's gRPC ext_authz Check as /v1/forward-auth does;
	// nil leaves Check unserved.
	Gate   *admit.Gate
	Logger *slog.Logger
	Now    func() time.Time // for derived statuses; defaults to time.Now
}

// Server implements the services of keyplane.v1.
type Server struct {
	svc  *service.Service
	gate *admit.Gate
	log  *slog.Logger
	now  func() time.Time
}

// New returns the gRPC API.
func New(cfg Config) *Server {
	s := &Server{svc: cfg.Service, gate: cfg.Gate, log: cfg.Logger, now: cfg.Now}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

var verifyProcedure = keyplanev1connect.VerifyServiceVerifyProcedure

// maxMessageBytes bounds requests as the HTTP API bounds bodies.
const maxMessageBytes = 1 << 20

// Services are the fully qualified names of the services served, as
// reflection lists them.
var Services = []string{
	keyplanev1connect.VerifyServiceName,
	keyplanev1connect.KeyServiceName,
	keyplanev1connect.AccountServiceName,
}

// Register adds the services and reflection to mux. The HTTP API takes the
// rest of the paths: gRPC paths (/package.Service/Method) never collide with /v1/….
func (s *Server) Register(mux *http.ServeMux) {
	opts := []connect.HandlerOption{
		// errors outside authenticate: it maps authentication's errors too.
		connect.WithInterceptors(s.requestInfo(), s.errors(), s.authenticate()),
		connect.WithReadMaxBytes(maxMessageBytes),
	}
	mux.Handle(keyplanev1connect.NewVerifyServiceHandler(verifyService{s}, opts...))
	mux.Handle(keyplanev1connect.NewKeyServiceHandler(keyService{s}, opts...))
	mux.Handle(keyplanev1connect.NewAccountServiceHandler(accountService{s}, opts...))
	if s.gate != nil {
		mux.Handle(ExtAuthzProcedure, connect.NewUnaryHandler(ExtAuthzProcedure, s.check, opts...))
	}
	// Reflection is open, like /openapi.json: it describes the API, no data.
	reflector := grpcreflect.NewStaticReflector(Services...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
}

// authenticate checks the operator token of every call, with the roles of the
// HTTP API: VerifyService and ext_authz take verify and admin tokens, the rest admin only.
func (s *Server) authenticate() connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			token, ok := strings.CutPrefix(req.Header().Get("Authorization"), "Bearer ")
			if !ok || strings.TrimSpace(token) == "" {
				return nil, connect.NewError(connect.CodeUnauthenticated, errMissingToken)
			}
			actor, err := s.svc.Authenticate(ctx, strings.TrimSpace(token))
			if err != nil {
				return nil, err // mapped by the errors interceptor
			}
			p := req.Spec().Procedure
			verifies := strings.HasPrefix(p, "/"+keyplanev1connect.VerifyServiceName+"/") || p == ExtAuthzProcedure
			if actor.Role != keyplane.RoleAdmin && !verifies {
				return nil, keyplane.Errorf(keyplane.EFORBIDDEN, "this token has role %s; it may only call %s and Envoy's ext_authz Check", actor.Role, keyplanev1connect.VerifyServiceName)
			}
			if actor.AccountID != "" && verifies {
				return nil, keyplane.Errorf(keyplane.EFORBIDDEN, "this token is scoped to one account and may only manage it; verify with a verify token")
			}
			return next(keyplane.NewContextWithActor(ctx, actor), req)
		}
	}
}

// requestInfo gives each call an id (the caller's X-Request-Id when plain)
// and records the caller's address and user agent, for the audit events of
// the changes it makes, as the HTTP API does. Every answer carries the id.
func (s *Server) requestInfo() connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			info := keyplane.NewRequestInfo(req.Peer().Addr, req.Header().Get("User-Agent"), req.Header().Get("X-Request-Id"))
			id := info.RequestID
			start := time.Now()
			res, err := next(keyplane.NewContextWithRequestInfo(ctx, info), req)
			// One line per call, as the HTTP API logs requests; verification
			// traffic is metered, not logged, unless it fails.
			level, code := slog.LevelInfo, "ok"
			if err != nil {
				code = connect.CodeOf(err).String()
			}
			failed := code == connect.CodeInternal.String() || code == connect.CodeUnavailable.String()
			if p := req.Spec().Procedure; (p == verifyProcedure || p == ExtAuthzProcedure) && !failed {
				level = slog.LevelDebug
			}
			s.log.Log(ctx, level, "grpc call", "procedure", req.Spec().Procedure, "protocol", req.Peer().Protocol, "code", code,
				"duration_ms", float64(time.Since(start).Microseconds())/1000, "request_id", id)
			if err != nil {
				var ce *connect.Error
				if errors.As(err, &ce) {
					ce.Meta().Set("X-Request-Id", id)
				}
				return nil, err
			}
			res.Header().Set("X-Request-Id", id)
			return res, nil
		}
	}
}

// errors turns every error a handler or the authentication returns into a
// connect error, through the one mapping in errors.go.
func (s *Server) errors() connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			res, err := next(ctx, req)
			if err != nil {
				return nil, s.connectError(ctx, req.Spec().Procedure, err)
			}
			return res, nil
		}
	}
}
