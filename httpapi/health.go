package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/keyplane/keyplane/problem"
)

type statusOutput struct {
	Body struct {
		Status string `json:"status" example:"ok"`
	}
}

func (s *Server) healthRoutes() {
	huma.Register(s.api, huma.Operation{OperationID: "healthz", Method: http.MethodGet, Path: "/healthz", Summary: "Liveness: the process serves requests", Tags: []string{"Health"}},
		func(context.Context, *struct{}) (*statusOutput, error) {
			out := &statusOutput{}
			out.Body.Status = "ok"
			return out, nil
		})
	huma.Register(s.api, huma.Operation{OperationID: "readyz", Method: http.MethodGet, Path: "/readyz", Summary: "Readiness: the database answers", Tags: []string{"Health"}, Errors: []int{http.StatusServiceUnavailable}},
		func(ctx context.Context, _ *struct{}) (*statusOutput, error) {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if err := s.store.Ping(ctx); err != nil {
				s.log.WarnContext(ctx, "not ready", "error", err)
				return nil, problem.New(http.StatusServiceUnavailable, "unavailable", "the database is unavailable", nil)
			}
			out := &statusOutput{}
			out.Body.Status = "ready"
			return out, nil
		})
}
