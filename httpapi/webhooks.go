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

// WebhookBody is a webhook endpoint; its secret only in the answers that
// make one (creation, rotation).
type WebhookBody struct {
	ID             string    `json:"id"`
	AccountID      string    `json:"account_id,omitempty" doc:"Absent for the operator's own endpoints, which receive every account's events"`
	URL            string    `json:"url"`
	Events         []string  `json:"events" doc:"Event types or prefixes (key.*) it receives; empty receives every event"`
	Description    string    `json:"description"`
	Enabled        bool      `json:"enabled"`
	DisabledReason string    `json:"disabled_reason,omitempty" enum:"gone,failing" doc:"Why keyplane disabled it: gone (it answered 410) or failing (5 days of failed deliveries)"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	Secret         string    `json:"secret,omitempty" doc:"The signing secret (whsec_…): in the answer to creation and rotation only"`
}

func webhookBody(e *keyplane.WebhookEndpoint) WebhookBody {
	events := e.Events
	if events == nil {
		events = []string{}
	}
	return WebhookBody{ID: e.ID, AccountID: e.AccountID, URL: e.URL, Events: events, Description: e.Description, Enabled: e.Enabled,
		DisabledReason: e.DisabledReason, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
}

// DeliveryBody is one message on its way to an endpoint, with its attempts.
type DeliveryBody struct {
	ID            string          `json:"id" doc:"The message id, sent as webhook-id"`
	Type          string          `json:"type"`
	AccountID     string          `json:"account_id,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	Status        string          `json:"status" enum:"pending,delivered,failed"`
	NextAttemptAt *time.Time      `json:"next_attempt_at,omitempty" doc:"When a pending message is tried next"`
	Payload       json.RawMessage `json:"payload" doc:"The body delivered: {type, timestamp, data}"`
	Attempts      []AttemptBody   `json:"attempts"`
}

// AttemptBody is one try to deliver a message.
type AttemptBody struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	StatusCode int       `json:"status_code,omitempty" doc:"The endpoint's HTTP status; absent when no answer came"`
	DurationMS float64   `json:"duration_ms"`
	Response   string    `json:"response,omitempty" doc:"The first 1 KiB of the answer"`
	Error      string    `json:"error,omitempty" doc:"Why no answer came"`
}

func deliveryBody(d *keyplane.WebhookDelivery) DeliveryBody {
	b := DeliveryBody{ID: d.Message.ID, Type: d.Message.Type, AccountID: d.Message.AccountID, CreatedAt: d.Message.Time, Status: string(d.Status),
		Payload: d.Message.Payload, Attempts: make([]AttemptBody, len(d.History))}
	if d.Status == keyplane.DeliveryPending {
		next := d.NextAttemptAt
		b.NextAttemptAt = &next
	}
	for i, a := range d.History {
		b.Attempts[i] = AttemptBody{ID: a.ID, Time: a.Time, StatusCode: a.StatusCode, DurationMS: float64(a.Duration.Microseconds()) / 1000,
			Response: a.Response, Error: a.Error}
	}
	return b
}

// EventData is the data of an operator-published event.
type EventData json.RawMessage

func (d *EventData) UnmarshalJSON(b []byte) error {
	*d = append((*d)[:0], b...)
	return nil
}

// Schema describes EventData as any JSON object.
func (EventData) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeObject, AdditionalProperties: true, Description: "A JSON object of at most 64 KiB, delivered as the event's data"}
}

type WebhookPath struct {
	ID string `path:"id" maxLength:"64" doc:"Webhook endpoint id (whk_…)"`
}

type webhookFields struct {
	URL         string   `json:"url" maxLength:"2048" doc:"https URL (http and private addresses only with --webhooks-allow-private)"`
	Events      []string `json:"events,omitempty" maxItems:"50" doc:"Event types or prefixes (key.*); empty or absent: every event"`
	Description string   `json:"description,omitempty" maxLength:"2000"`
	Enabled     *bool    `json:"enabled,omitempty" doc:"Default true"`
}

type createAccountWebhookInput struct {
	AccountPath
	Body webhookFields
}

type createOperatorWebhookInput struct {
	Body webhookFields
}

type webhookOutput struct {
	Body WebhookBody
}

type listWebhooksInput struct {
	AccountPath
	PageQuery
}

type listOperatorWebhooksInput struct {
	PageQuery
}

type listWebhooksOutput struct {
	Body List[WebhookBody]
}

type updateWebhookInput struct {
	WebhookPath
	Body struct {
		URL         Optional[string]   `json:"url,omitempty" maxLength:"2048"`
		Events      Optional[[]string] `json:"events,omitempty" doc:"Replaces the list; [] receives every event"`
		Description Optional[string]   `json:"description,omitempty" maxLength:"2000"`
		Enabled     Optional[bool]     `json:"enabled,omitempty" doc:"true also re-enables an endpoint keyplane disabled"`
	}
}

type rotateSecretInput struct {
	WebhookPath
	Body *struct {
		OverlapSeconds *int64 `json:"overlap_seconds,omitempty" minimum:"0" maximum:"604800" doc:"How long the old secret keeps signing beside the new one: 0 ends it now, default 86400 (a day), at most 604800 (7 days)"`
	}
}

type listDeliveriesInput struct {
	WebhookPath
	PageQuery
}

type listDeliveriesOutput struct {
	Body List[DeliveryBody]
}

type MessagePath struct {
	ID string `path:"id" maxLength:"64" doc:"Message id (msg_…), the webhook-id of its deliveries"`
}

type countOutput struct {
	Body struct {
		Requeued int `json:"requeued" doc:"How many deliveries were queued for one more attempt"`
	}
}

type recoverInput struct {
	WebhookPath
	Body struct {
		Since time.Time `json:"since" doc:"Redeliver the messages raised since this time (RFC 3339) whose delivery failed"`
	}
}

type testOutput struct {
	Body struct {
		ID   string `json:"id" doc:"The test message's id"`
		Type string `json:"type"`
	}
}

type publishEventInput struct {
	AccountPath
	Body struct {
		Type           string    `json:"type" maxLength:"100" doc:"Your event's type, such as invoice.paid: lowercase words joined by dots, not starting with key., quota., ratelimit., member., webhook. or usage."`
		Data           EventData `json:"data" doc:"A JSON object of at most 64 KiB"`
		IdempotencyKey string    `json:"idempotency_key,omitempty" maxLength:"200" doc:"Publishing again with the same key does nothing (and answers the first message's id); with other data it is a conflict"`
	}
}

type publishEventOutput struct {
	Body struct {
		ID        string `json:"id" doc:"The message id, sent as webhook-id"`
		Duplicate bool   `json:"duplicate,omitempty" doc:"An earlier publication with the same idempotency key"`
	}
}

func (s *Server) webhookRoutes() {
	tags := []string{"Webhooks"}
	notFound := []int{http.StatusNotFound}
	created := func(c *service.CreatedWebhook) *webhookOutput {
		body := webhookBody(c.WebhookEndpoint)
		body.Secret = c.Secret
		return &webhookOutput{Body: body}
	}
	input := func(b webhookFields) service.WebhookInput {
		return service.WebhookInput{URL: b.URL, Events: b.Events, Description: b.Description, Enabled: b.Enabled}
	}
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "createAccountWebhook", Method: http.MethodPost, Path: "/v1/accounts/{id}/webhooks",
		Summary: "Register a webhook endpoint for an account", Description: "Its signing secret is in this answer only. At most 20 an account.",
		Tags: tags, DefaultStatus: http.StatusCreated, Errors: notFound},
		func(ctx context.Context, in *createAccountWebhookInput) (*webhookOutput, error) {
			c, err := s.svc.CreateWebhook(ctx, in.ID, input(in.Body))
			if err != nil {
				return nil, err
			}
			return created(c), nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "createOperatorWebhook", Method: http.MethodPost, Path: "/v1/webhooks",
		Summary: "Register an operator webhook endpoint", Description: "Without an account: it receives every account's events. Operators only.",
		Tags: tags, DefaultStatus: http.StatusCreated},
		func(ctx context.Context, in *createOperatorWebhookInput) (*webhookOutput, error) {
			c, err := s.svc.CreateWebhook(ctx, "", input(in.Body))
			if err != nil {
				return nil, err
			}
			return created(c), nil
		})
	list := func(ctx context.Context, accountID string, page keyplane.Page) (*listWebhooksOutput, error) {
		endpoints, next, err := s.svc.ListWebhooks(ctx, accountID, page)
		if err != nil {
			return nil, err
		}
		out := &listWebhooksOutput{Body: List[WebhookBody]{Data: make([]WebhookBody, len(endpoints)), NextCursor: next}}
		for i, e := range endpoints {
			out.Body.Data[i] = webhookBody(e)
		}
		return out, nil
	}
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "listAccountWebhooks", Method: http.MethodGet, Path: "/v1/accounts/{id}/webhooks",
		Summary: "List an account's webhook endpoints", Tags: tags, Errors: notFound},
		func(ctx context.Context, in *listWebhooksInput) (*listWebhooksOutput, error) {
			return list(ctx, in.ID, in.page())
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "listOperatorWebhooks", Method: http.MethodGet, Path: "/v1/webhooks",
		Summary: "List the operator's own webhook endpoints", Tags: tags},
		func(ctx context.Context, in *listOperatorWebhooksInput) (*listWebhooksOutput, error) {
			return list(ctx, "", in.page())
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "getWebhook", Method: http.MethodGet, Path: "/v1/webhooks/{id}",
		Summary: "Get a webhook endpoint (never its secret)", Tags: tags, Errors: notFound},
		func(ctx context.Context, in *WebhookPath) (*webhookOutput, error) {
			e, err := s.svc.Webhook(ctx, in.ID)
			if err != nil {
				return nil, err
			}
			return &webhookOutput{Body: webhookBody(e)}, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "updateWebhook", Method: http.MethodPatch, Path: "/v1/webhooks/{id}",
		Summary: "Update a webhook endpoint; enable or disable it", Tags: tags, Errors: notFound},
		func(ctx context.Context, in *updateWebhookInput) (*webhookOutput, error) {
			b := in.Body
			e, err := s.svc.UpdateWebhook(ctx, in.ID, service.WebhookUpdate{URL: service.Optional[string](b.URL),
				Events: service.Optional[[]string](b.Events), Description: service.Optional[string](b.Description), Enabled: service.Optional[bool](b.Enabled)})
			if err != nil {
				return nil, err
			}
			return &webhookOutput{Body: webhookBody(e)}, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "deleteWebhook", Method: http.MethodDelete, Path: "/v1/webhooks/{id}",
		Summary: "Delete a webhook endpoint and its message log", Tags: tags, DefaultStatus: http.StatusNoContent, Errors: notFound},
		func(ctx context.Context, in *WebhookPath) (*struct{}, error) {
			return nil, s.svc.DeleteWebhook(ctx, in.ID)
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "rotateWebhookSecret", Method: http.MethodPost, Path: "/v1/webhooks/{id}/rotate-secret",
		Summary: "Give a webhook endpoint a new signing secret", Description: "During the overlap every delivery carries both signatures, space-separated, so receivers can switch without losing any. The new secret is in this answer only.",
		Tags: tags, Errors: notFound},
		func(ctx context.Context, in *rotateSecretInput) (*webhookOutput, error) {
			overlap := service.DefaultSecretOverlap
			if in.Body != nil && in.Body.OverlapSeconds != nil {
				overlap = time.Duration(*in.Body.OverlapSeconds) * time.Second
			}
			c, err := s.svc.RotateWebhookSecret(ctx, in.ID, overlap)
			if err != nil {
				return nil, err
			}
			return created(c), nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "listWebhookMessages", Method: http.MethodGet, Path: "/v1/webhooks/{id}/messages",
		Summary: "List the messages sent to an endpoint, newest first, with their attempts", Tags: tags, Errors: notFound},
		func(ctx context.Context, in *listDeliveriesInput) (*listDeliveriesOutput, error) {
			ds, next, err := s.svc.WebhookDeliveries(ctx, in.ID, in.page())
			if err != nil {
				return nil, err
			}
			out := &listDeliveriesOutput{Body: List[DeliveryBody]{Data: make([]DeliveryBody, len(ds)), NextCursor: next}}
			for i, d := range ds {
				out.Body.Data[i] = deliveryBody(d)
			}
			return out, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "retryMessage", Method: http.MethodPost, Path: "/v1/messages/{id}/retry",
		Summary: "Send a message again, once, to its endpoints", Tags: tags, DefaultStatus: http.StatusAccepted, Errors: notFound},
		func(ctx context.Context, in *MessagePath) (*countOutput, error) {
			n, err := s.svc.RetryMessage(ctx, in.ID)
			if err != nil {
				return nil, err
			}
			out := &countOutput{}
			out.Body.Requeued = n
			return out, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "recoverWebhook", Method: http.MethodPost, Path: "/v1/webhooks/{id}/recover",
		Summary: "Redeliver, once each, the messages raised since a time whose delivery failed", Tags: tags, DefaultStatus: http.StatusAccepted, Errors: notFound},
		func(ctx context.Context, in *recoverInput) (*countOutput, error) {
			n, err := s.svc.RecoverWebhook(ctx, in.ID, in.Body.Since)
			if err != nil {
				return nil, err
			}
			out := &countOutput{}
			out.Body.Requeued = n
			return out, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "testWebhook", Method: http.MethodPost, Path: "/v1/webhooks/{id}/test",
		Summary: "Send a webhook.test event to this endpoint", Tags: tags, DefaultStatus: http.StatusAccepted, Errors: []int{http.StatusNotFound, http.StatusConflict}},
		func(ctx context.Context, in *WebhookPath) (*testOutput, error) {
			ev, err := s.svc.TestWebhook(ctx, in.ID)
			if err != nil {
				return nil, err
			}
			out := &testOutput{}
			out.Body.ID, out.Body.Type = ev.ID, ev.Type
			return out, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "publishEvent", Method: http.MethodPost, Path: "/v1/accounts/{id}/events",
		Summary: "Publish your own event to an account's webhook endpoints", Description: "keyplane signs and delivers it to the account's endpoints subscribed to its type. Operators only.",
		Tags: tags, DefaultStatus: http.StatusAccepted, Errors: []int{http.StatusNotFound, http.StatusConflict}},
		func(ctx context.Context, in *publishEventInput) (*publishEventOutput, error) {
			p, err := s.svc.PublishEvent(ctx, in.ID, service.PublishInput{Type: in.Body.Type, Data: json.RawMessage(in.Body.Data),
				IdempotencyKey: in.Body.IdempotencyKey})
			if err != nil {
				return nil, err
			}
			out := &publishEventOutput{}
			out.Body.ID, out.Body.Duplicate = p.ID, p.Duplicate
			return out, nil
		})
}
