package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

// AuditEventBody is an audit event as the API and `keyplane audit export`
// show it.
type AuditEventBody struct {
	ID        string         `json:"id" example:"evt_01jd2x5y6z7a8b9c0d1e2f3g4h"`
	Time      time.Time      `json:"time"`
	Type      string         `json:"type" example:"key.revoked"`
	Actor     AuditActorBody `json:"actor"`
	AccountID string         `json:"account_id,omitempty" doc:"The account, whose chain the event is on; absent on the operator chain (tokens, plans)"`
	KeyID     string         `json:"key_id,omitempty"`
	IP        string         `json:"ip,omitempty" doc:"The address the request came from"`
	UserAgent string         `json:"user_agent,omitempty"`
	RequestID string         `json:"request_id,omitempty" doc:"The X-Request-Id of the request that made the change"`
	Details   AuditDetails   `json:"details"`
	Seq       int64          `json:"seq" doc:"Position in its chain, from 1"`
	PrevHash  string         `json:"prev_hash" doc:"Hash of the previous event of the chain; empty for the first"`
	Hash      string         `json:"hash" doc:"SHA-256 (hex) of this event's fields and prev_hash"`
}

// AuditActorBody is who caused an event.
type AuditActorBody struct {
	Kind string `json:"kind" enum:"token,member,system"`
	ID   string `json:"id"`
}

// AuditDetails is an event's details, a small JSON object, kept byte for
// byte as hashed.
type AuditDetails json.RawMessage

func (d AuditDetails) MarshalJSON() ([]byte, error) {
	if len(d) == 0 {
		return []byte("{}"), nil
	}
	return d, nil
}

// Schema describes AuditDetails as any JSON object.
func (AuditDetails) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeObject, AdditionalProperties: true, Description: "What changed; depends on the type"}
}

// NewAuditEventBody is the API's view of an event.
func NewAuditEventBody(ev *keyplane.AuditEvent) AuditEventBody {
	return AuditEventBody{
		ID: ev.ID, Time: ev.Time, Type: ev.Type, Actor: AuditActorBody{Kind: ev.Actor.Kind, ID: ev.Actor.ID},
		AccountID: ev.AccountID, KeyID: ev.KeyID, IP: ev.SourceIP, UserAgent: ev.UserAgent, RequestID: ev.RequestID,
		Details: AuditDetails(ev.Details), Seq: ev.Seq, PrevHash: ev.PrevHash, Hash: ev.Hash,
	}
}

// AuditQuery filters audit lists.
type AuditQuery struct {
	KeyID string    `query:"key_id" maxLength:"64" doc:"Only events of this key"`
	Type  string    `query:"type" maxLength:"64" doc:"Only events of this type, e.g. key.revoked"`
	Actor string    `query:"actor" maxLength:"64" doc:"Only events caused by this token, member or system id"`
	From  time.Time `query:"from" doc:"Only events at or after this time (RFC 3339)"`
	To    time.Time `query:"to" doc:"Only events before this time (RFC 3339)"`
	PageQuery
}

// Filter is the service's filter for the query.
func (q AuditQuery) Filter(accountID string) service.AuditFilter {
	f := service.AuditFilter{AccountID: accountID, KeyID: q.KeyID, Type: q.Type, ActorID: q.Actor, Page: q.page()}
	if !q.From.IsZero() {
		f.From = &q.From
	}
	if !q.To.IsZero() {
		f.To = &q.To
	}
	return f
}

type listAuditInput struct {
	AccountID string `query:"account_id" maxLength:"64" doc:"Only events of this account"`
	AuditQuery
}

type listAccountAuditInput struct {
	AccountPath
	AuditQuery
}

type listAuditOutput struct {
	Body List[AuditEventBody]
}

func auditList(events []*keyplane.AuditEvent, next string) *listAuditOutput {
	out := &listAuditOutput{Body: List[AuditEventBody]{Data: make([]AuditEventBody, len(events)), NextCursor: next}}
	for i, ev := range events {
		out.Body.Data[i] = NewAuditEventBody(ev)
	}
	return out
}

func (s *Server) auditRoutes() {
	tags := []string{"Audit"}
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "listAudit", Method: http.MethodGet, Path: "/v1/audit", Summary: "List audit events, newest first", Tags: tags},
		func(ctx context.Context, in *listAuditInput) (*listAuditOutput, error) {
			events, next, err := s.svc.ListAudit(ctx, in.Filter(in.AccountID))
			if err != nil {
				return nil, err
			}
			return auditList(events, next), nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "listAccountAudit", Method: http.MethodGet, Path: "/v1/accounts/{id}/audit",
		Summary: "List an account's audit events, newest first", Tags: tags, Errors: []int{http.StatusNotFound}},
		func(ctx context.Context, in *listAccountAuditInput) (*listAuditOutput, error) {
			events, next, err := s.svc.ListAccountAudit(ctx, in.ID, in.Filter(in.ID))
			if err != nil {
				return nil, err
			}
			return auditList(events, next), nil
		})
}
