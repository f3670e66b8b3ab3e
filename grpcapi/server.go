// Package grpcapi serves keyplane's gRPC API with connect-go: the services in
// proto/keyplane/v1 over gRPC, gRPC-Web and the Connect protocol, on the same
// port as the HTTP API, with server reflection so grpcurl can list and call them.
package grpcapi

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/gen/keyplane/v1/keyplanev1connect"
	"github.com/keyplane/keyplane/service"
)

// Config wires a Server.
type Config struct {
	Service *service.Service
	Logger  *slog.Logger
	Now     func() time.Time // for derived statuses; defaults to time.Now
}

// Server implements the services of keyplane.v1.
type Server struct {
	svc *service.Service
	log *slog.Logger
	now func() time.Time
}

// New returns the gRPC API.
func New(cfg Config) *Server {
	s := &Server{svc: cfg.Service, log: cfg.Logger, now: cfg.Now}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

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
		connect.WithInterceptors(s.errors(), s.authenticate()), // errors outermost: it maps authentication's too
		connect.WithReadMaxBytes(maxMessageBytes),
	}
	mux.Handle(keyplanev1connect.NewVerifyServiceHandler(verifyService{s}, opts...))
	mux.Handle(keyplanev1connect.NewKeyServiceHandler(keyService{s}, opts...))
	mux.Handle(keyplanev1connect.NewAccountServiceHandler(accountService{s}, opts...))
	// Reflection is open, like /openapi.json: it describes the API, no data.
	reflector := grpcreflect.NewStaticReflector(Services...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
}

// authenticate checks the operator token of every call, with the roles of the
// HTTP API: VerifyService takes verify and admin tokens, the rest admin only.
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
			if actor.Role != keyplane.RoleAdmin && !strings.HasPrefix(req.Spec().Procedure, "/"+keyplanev1connect.VerifyServiceName+"/") {
				return nil, keyplane.Errorf(keyplane.EFORBIDDEN, "this token has role %s; it may only call %s", actor.Role, keyplanev1connect.VerifyServiceName)
			}
			ctx = keyplane.NewContextWithActor(ctx, actor)
			// For the audit events of changes, as the HTTP API records them.
			ip, _, _ := net.SplitHostPort(req.Peer().Addr)
			ctx = keyplane.NewContextWithRequestInfo(ctx, keyplane.RequestInfo{SourceIP: ip, UserAgent: req.Header().Get("User-Agent")})
			return next(ctx, req)
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
