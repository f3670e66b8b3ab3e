package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

// QuotaUsageBody is a key's quota and what it used this period.
type QuotaUsageBody struct {
	Quota       QuotaBody `json:"quota" doc:"The key's own quota, else its plan's"`
	SubjectID   string    `json:"subject_id" doc:"What is counted: the key, or its account for a shared quota"`
	Used        int64     `json:"used"`
	Remaining   int64     `json:"remaining"`
	PeriodStart time.Time `json:"period_start"`
	ResetsAt    time.Time `json:"resets_at"`
}

type quotaUsageOutput struct {
	Body QuotaUsageBody
}

func quotaUsageBody(u *service.KeyQuota) QuotaUsageBody {
	return QuotaUsageBody{Quota: *quotaToBody(&u.Quota), SubjectID: u.SubjectID, Used: u.State.Used,
		Remaining: u.State.Remaining, PeriodStart: u.State.PeriodStart, ResetsAt: u.State.ResetsAt}
}

func (s *Server) quotaRoutes() {
	tags := []string{"Quotas"}
	errs := []int{http.StatusNotFound, http.StatusServiceUnavailable}
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "getKeyQuota", Method: http.MethodGet, Path: "/v1/keys/{id}/quota",
		Summary: "A key's quota and its usage this period", Description: "For a shared quota, the usage of all of the account's keys. 404 when neither the key nor its plan has a quota.", Tags: tags, Errors: errs},
		func(ctx context.Context, in *KeyPath) (*quotaUsageOutput, error) {
			u, err := s.svc.QuotaUsage(ctx, in.ID)
			if err != nil {
				return nil, err
			}
			return &quotaUsageOutput{Body: quotaUsageBody(u)}, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "resetKeyQuota", Method: http.MethodPost, Path: "/v1/keys/{id}/quota/reset",
		Summary: "Set a key's usage this period to zero (the account's, for a shared quota)", Tags: tags, Errors: errs},
		func(ctx context.Context, in *KeyPath) (*quotaUsageOutput, error) {
			u, err := s.svc.ResetQuota(ctx, in.ID)
			if err != nil {
				return nil, err
			}
			return &quotaUsageOutput{Body: quotaUsageBody(u)}, nil
		})
}
