package httpapi

import (
	"context"
	"net/http"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

// The key and URL carry no schema bounds: huma would echo a value that
// fails them, and the key must never come back. The handler bounds them.
type reportLeakInput struct {
	Body struct {
		Key       string `json:"key" doc:"The leaked key, as found"`
		SourceURL string `json:"source_url,omitempty" doc:"Where it was found: an http(s) URL of at most 2048 bytes"`
	}
}

type reportLeakOutput struct {
	Body struct {
		Key    KeyBody `json:"key" doc:"The key as it now is"`
		First  bool    `json:"first_report" doc:"False when the key had been reported before: nothing changed"`
		Action string  `json:"action" enum:"revoke,disable,notify" doc:"What the server does with a leaked key (--leak-action)"`
	}
}

func (s *Server) leakRoutes() {
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "reportLeakedKey", Method: http.MethodPost, Path: "/v1/keys/leaked",
		Summary: "Report a leaked key; it is revoked, disabled or only flagged as the server is configured", Tags: []string{"Keys"},
		Errors: []int{http.StatusNotFound, http.StatusBadRequest}},
		func(ctx context.Context, in *reportLeakInput) (*reportLeakOutput, error) {
			var v keyplane.Validation
			if in.Body.Key == "" {
				v.Add("key", "expected required property key to be present and not empty")
			} else if utf8.RuneCountInString(in.Body.Key) > 256 {
				v.Add("key", "expected length <= 256")
			}
			if err := v.Err(); err != nil {
				return nil, err
			}
			res, err := s.svc.ReportLeak(ctx, service.LeakReport{Key: in.Body.Key, Source: keyplane.LeakSourceReport, URL: in.Body.SourceURL})
			if err != nil {
				return nil, err
			}
			out := &reportLeakOutput{}
			out.Body.Key, out.Body.First, out.Body.Action = keyBody(res.Key, s.now()), res.First, string(res.Action)
			return out, nil
		})
}
