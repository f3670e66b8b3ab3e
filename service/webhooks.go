package service

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/webhooks"
)

// MaxSecretOverlap is the longest a rotated-out webhook secret keeps signing.
const MaxSecretOverlap = 7 * 24 * time.Hour

// DefaultSecretOverlap is how long it does when the caller does not say.
const DefaultSecretOverlap = 24 * time.Hour

// MaxEventData bounds the data of an operator-published event.
const MaxEventData = 64 << 10

// Bounds of an endpoint's fields.
const (
	maxEndpointEvents      = 50
	maxEndpointDescription = 500
	maxIdempotencyKey      = 200
)

// WebhookInput registers an endpoint.
type WebhookInput struct {
	URL         string
	Events      []string // empty: every event
	Description string
	Enabled     *bool // default true
}

// WebhookUpdate changes the fields that are set. Enabling an endpoint
// keyplane disabled clears why.
type WebhookUpdate struct {
	URL         Optional[string]
	Events      Optional[[]string]
	Description Optional[string]
	Enabled     Optional[bool]
}

// CreatedWebhook is an endpoint with its new secret, which exists in
// plaintext only here: at creation and at rotation.
type CreatedWebhook struct {
	*keyplane.WebhookEndpoint
	Secret string
}

// PublishInput is an event the operator publishes to an account's endpoints.
type PublishInput struct {
	Type           string
	Data           json.RawMessage // a JSON object, at most 64 KiB
	IdempotencyKey string          // optional; the same key with other data is a conflict
}

// PublishedEvent is the message a published event became.
type PublishedEvent struct {
	ID         string
	Duplicate  bool // an earlier publication with the same idempotency key
	Deliveries int
}

// webhooksReady refuses webhook changes on an instance without a secrets
// key: it could neither seal new secrets nor sign with old ones.
func (s *Service) webhooksReady() error {
	if s.secrets == nil {
		return keyplane.Errorf(keyplane.EUNAVAILABLE, "webhooks are not configured on this server: start it with --secrets-key-file")
	}
	return nil
}

// wakeWebhooks tells this instance's dispatcher that a change may have
// raised events, so they go out now rather than at its next poll.
func (s *Service) wakeWebhooks() {
	if s.webhookWake != nil {
		s.webhookWake()
	}
}

// raise adds a webhook event to the change in ctx's trail.
func raise(trail *keyplane.AuditTrail, ev *keyplane.WebhookEvent) {
	if trail != nil {
		trail.Raise(ev)
	}
}

// CreateWebhook registers an endpoint for an account, or with accountID ""
// an operator endpoint that receives every account's events.
func (s *Service) CreateWebhook(ctx context.Context, accountID string, in WebhookInput) (*CreatedWebhook, error) {
	if accountID == "" {
		if err := requireOperator(ctx); err != nil {
			return nil, err
		}
	} else {
		if _, err := s.Account(ctx, accountID); err != nil {
			return nil, err
		}
		if err := requireKeyManager(ctx); err != nil {
			return nil, err
		}
	}
	if err := s.webhooksReady(); err != nil {
		return nil, err
	}
	var v keyplane.Validation
	now := s.now()
	e := &keyplane.WebhookEndpoint{
		ID:          newID("whk"),
		AccountID:   accountID,
		URL:         s.validWebhookURL(&v, "url", in.URL),
		Events:      validEventFilters(&v, "events", in.Events),
		Description: validDescription(&v, "description", in.Description),
		Enabled:     in.Enabled == nil || *in.Enabled,
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	secret, key := webhooks.NewSecret()
	sealed, err := s.secrets.Seal(key, e.ID)
	if err != nil {
		return nil, err
	}
	e.Secrets = []keyplane.WebhookSecret{{Sealed: sealed, CreatedAt: now}}
	ctx, _ = audited(ctx, s.event(ctx, keyplane.AuditWebhookCreated, accountID, "", map[string]any{
		"endpoint_id": e.ID, "url": e.URL, "events": stringsOrEmpty(e.Events), "enabled": e.Enabled}))
	if err := s.store.CreateWebhookEndpoint(ctx, e, keyplane.MaxWebhookEndpoints); err != nil {
		return nil, err
	}
	return &CreatedWebhook{WebhookEndpoint: e, Secret: secret}, nil
}

// Webhook returns an endpoint the caller may see: an account's to its
// members and operators, the operator's own to operators only.
func (s *Service) Webhook(ctx context.Context, id string) (*keyplane.WebhookEndpoint, error) {
	a, err := actor(ctx)
	if err != nil {
		return nil, err
	}
	if err := requireManager(a); err != nil {
		return nil, err
	}
	if !validID(id) || !strings.HasPrefix(id, "whk_") {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "webhook endpoint not found")
	}
	e, err := s.store.WebhookEndpoint(ctx, id)
	if err != nil {
		return nil, err
	}
	if e.AccountID == "" && a.AccountID != "" || !a.CanSee(e.AccountID) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "webhook endpoint %q not found", id)
	}
	return e, nil
}

// ListWebhooks lists an account's endpoints, or with accountID "" the
// operator's own.
func (s *Service) ListWebhooks(ctx context.Context, accountID string, page keyplane.Page) ([]*keyplane.WebhookEndpoint, string, error) {
	filter := keyplane.WebhookEndpointFilter{AccountID: accountID, Operator: accountID == ""}
	if accountID == "" {
		if err := requireOperator(ctx); err != nil {
			return nil, "", err
		}
	} else if _, err := s.Account(ctx, accountID); err != nil {
		return nil, "", err
	}
	limit, err := pageLimit(page.Limit)
	if err != nil {
		return nil, "", err
	}
	page.Limit = limit
	filter.Page = page
	return s.store.ListWebhookEndpoints(ctx, filter)
}

// writableWebhook returns the endpoint if the caller may change it.
func (s *Service) writableWebhook(ctx context.Context, id string) (*keyplane.WebhookEndpoint, error) {
	e, err := s.Webhook(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := requireKeyManager(ctx); err != nil {
		return nil, err
	}
	return e, s.webhooksReady()
}

// UpdateWebhook changes an endpoint.
func (s *Service) UpdateWebhook(ctx context.Context, id string, up WebhookUpdate) (*keyplane.WebhookEndpoint, error) {
	if _, err := s.writableWebhook(ctx, id); err != nil {
		return nil, err
	}
	var v keyplane.Validation
	var url, description string
	var events []string
	if up.URL.Set {
		url = s.validWebhookURL(&v, "url", up.URL.Value)
	}
	if up.Events.Set {
		events = validEventFilters(&v, "events", up.Events.Value)
	}
	if up.Description.Set {
		description = validDescription(&v, "description", up.Description.Value)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	set := map[string]bool{"url": up.URL.Set, "events": up.Events.Set, "description": up.Description.Set, "enabled": up.Enabled.Set}
	now := s.now()
	ctx, trail := audited(ctx)
	e, err := s.store.UpdateWebhookEndpoint(ctx, id, func(e *keyplane.WebhookEndpoint) error {
		if up.URL.Set {
			e.URL = url
		}
		if up.Events.Set {
			e.Events = events
		}
		if up.Description.Set {
			e.Description = description
		}
		if up.Enabled.Set {
			if up.Enabled.Value && !e.Enabled {
				e.DisabledReason, e.FailingSince = "", nil // a fresh start
			}
			e.Enabled = up.Enabled.Value
		}
		e.UpdatedAt = now
		trail.Add(s.event(ctx, keyplane.AuditWebhookUpdated, e.AccountID, "", map[string]any{"endpoint_id": e.ID, "fields": changedFields(set)}))
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.wakeWebhooks() // enabling one frees its pending deliveries
	return e, nil
}

// DeleteWebhook deletes an endpoint and its delivery log.
func (s *Service) DeleteWebhook(ctx context.Context, id string) error {
	e, err := s.Webhook(ctx, id)
	if err != nil {
		return err
	}
	if err := requireKeyManager(ctx); err != nil {
		return err
	}
	ctx, _ = audited(ctx, s.event(ctx, keyplane.AuditWebhookDeleted, e.AccountID, "", map[string]any{"endpoint_id": e.ID, "url": e.URL}))
	return s.store.DeleteWebhookEndpoint(ctx, id)
}

// RotateWebhookSecret gives an endpoint a new secret. The current one keeps
// signing beside it for overlap (0 ends it now, at most 7 days), so a
// receiver can switch without losing deliveries.
func (s *Service) RotateWebhookSecret(ctx context.Context, id string, overlap time.Duration) (*CreatedWebhook, error) {
	if overlap < 0 || overlap > MaxSecretOverlap {
		return nil, keyplane.Invalid("overlap_seconds", "must be between 0 and %d (7 days)", int(MaxSecretOverlap/time.Second))
	}
	if _, err := s.writableWebhook(ctx, id); err != nil {
		return nil, err
	}
	now := s.now()
	secret, key := webhooks.NewSecret()
	sealed, err := s.secrets.Seal(key, id)
	if err != nil {
		return nil, err
	}
	ctx, trail := audited(ctx)
	e, err := s.store.UpdateWebhookEndpoint(ctx, id, func(e *keyplane.WebhookEndpoint) error {
		// Only the secret in use until now overlaps with the new one: a
		// delivery carries at most two signatures, however often the secret
		// is rotated within an overlap (secrets still overlapping from an
		// earlier rotation end now).
		end := now.Add(overlap)
		kept := []keyplane.WebhookSecret{}
		if active := e.ActiveSecrets(now); overlap > 0 && len(active) > 0 {
			current := active[0]
			for _, sec := range active[1:] {
				if sec.CreatedAt.After(current.CreatedAt) {
					current = sec
				}
			}
			if current.ExpiresAt == nil || current.ExpiresAt.After(end) {
				current.ExpiresAt = &end
			}
			kept = append(kept, current)
		}
		e.Secrets = append(kept, keyplane.WebhookSecret{Sealed: sealed, CreatedAt: now})
		e.UpdatedAt = now
		trail.Add(s.event(ctx, keyplane.AuditWebhookSecretRotated, e.AccountID, "", map[string]any{
			"endpoint_id": e.ID, "overlap_seconds": int64(overlap / time.Second)}))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &CreatedWebhook{WebhookEndpoint: e, Secret: secret}, nil
}

// WebhookDeliveries lists an endpoint's messages, newest first, with their
// attempts.
func (s *Service) WebhookDeliveries(ctx context.Context, id string, page keyplane.Page) ([]*keyplane.WebhookDelivery, string, error) {
	if _, err := s.Webhook(ctx, id); err != nil {
		return nil, "", err
	}
	limit, err := pageLimit(page.Limit)
	if err != nil {
		return nil, "", err
	}
	page.Limit = limit
	return s.store.ListWebhookDeliveries(ctx, id, page)
}

// RetryMessage sends a message again, once, to the endpoints the caller may
// see that it was for; it returns how many.
func (s *Service) RetryMessage(ctx context.Context, messageID string) (int, error) {
	a, err := actor(ctx)
	if err != nil {
		return 0, err
	}
	if err := requireKeyManager(ctx); err != nil {
		return 0, err
	}
	if err := requireManager(a); err != nil {
		return 0, err
	}
	notFound := keyplane.Errorf(keyplane.ENOTFOUND, "message not found")
	if !validID(messageID) || !strings.HasPrefix(messageID, "msg_") {
		return 0, notFound
	}
	deliveries, err := s.store.MessageDeliveries(ctx, messageID)
	if err != nil {
		return 0, err
	}
	var endpoints []string
	for _, d := range deliveries {
		if a.AccountID == "" || d.Message.AccountID == a.AccountID && s.ownEndpoint(ctx, a, d.EndpointID) {
			endpoints = append(endpoints, d.EndpointID)
		}
	}
	if len(endpoints) == 0 {
		return 0, notFound
	}
	n, err := s.store.RetryWebhookDeliveries(ctx, keyplane.RetryFilter{MessageID: messageID, EndpointIDs: endpoints}, s.now())
	if err != nil {
		return 0, err
	}
	s.wakeWebhooks()
	return n, nil
}

// ownEndpoint reports whether a member's account owns the endpoint: a
// message of their account also went to the operator's endpoints.
func (s *Service) ownEndpoint(ctx context.Context, a keyplane.Actor, id string) bool {
	e, err := s.store.WebhookEndpoint(ctx, id)
	return err == nil && e.AccountID != "" && e.AccountID == a.AccountID
}

// RecoverWebhook sends again, once each, the endpoint's messages raised
// since since whose delivery failed; it returns how many.
func (s *Service) RecoverWebhook(ctx context.Context, id string, since time.Time) (int, error) {
	if _, err := s.writableWebhook(ctx, id); err != nil {
		return 0, err
	}
	now := s.now()
	if since.IsZero() || since.After(now) {
		return 0, keyplane.Invalid("since", "must be a time in the past")
	}
	n, err := s.store.RetryWebhookDeliveries(ctx, keyplane.RetryFilter{EndpointIDs: []string{id}, Since: since}, now)
	if err != nil {
		return 0, err
	}
	s.wakeWebhooks()
	return n, nil
}

// TestWebhook sends a webhook.test event to the endpoint alone.
func (s *Service) TestWebhook(ctx context.Context, id string) (*keyplane.WebhookEvent, error) {
	e, err := s.writableWebhook(ctx, id)
	if err != nil {
		return nil, err
	}
	if !e.Enabled {
		return nil, keyplane.Errorf(keyplane.ECONFLICT, "webhook endpoint %q is disabled; enable it first", id)
	}
	ev := webhooks.MustEvent(keyplane.EventWebhookTest, e.AccountID, s.now(), map[string]any{
		"endpoint_id": e.ID, "message": "A test event from keyplane: this endpoint receives its webhooks."})
	ev.EndpointID = e.ID
	if err := s.store.RaiseWebhookEvents(ctx, []*keyplane.WebhookEvent{ev}); err != nil {
		return nil, err
	}
	s.wakeWebhooks()
	return ev, nil
}

// PublishEvent signs and delivers an operator's own event to the account's
// endpoints subscribed to its type. An idempotency key makes a retry of
// the same publication harmless; reusing it for other data is a conflict.
func (s *Service) PublishEvent(ctx context.Context, accountID string, in PublishInput) (*PublishedEvent, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if _, err := s.Account(ctx, accountID); err != nil {
		return nil, err
	}
	var v keyplane.Validation
	switch {
	case !keyplane.ValidEventType(in.Type):
		v.Add("type", "%q: want lowercase words of a-z, 0-9 and _ joined by dots, such as invoice.paid", truncate(in.Type, 100))
	case keyplane.OwnEventType(in.Type):
		v.Add("type", "%q: types starting with key., quota., ratelimit., member., webhook. or usage. are keyplane's own", in.Type)
	}
	data := bytes.TrimSpace(in.Data)
	switch {
	case len(data) > MaxEventData:
		v.Add("data", "is %d bytes; at most %d (64 KiB)", len(data), MaxEventData)
	case len(data) == 0 || data[0] != '{' || !json.Valid(data):
		v.Add("data", "must be a JSON object")
	}
	if len(in.IdempotencyKey) > maxIdempotencyKey || !utf8.ValidString(in.IdempotencyKey) || strings.ContainsRune(in.IdempotencyKey, 0) {
		v.Add("idempotency_key", "at most %d characters of valid text", maxIdempotencyKey)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		return nil, keyplane.Invalid("data", "must be a JSON object")
	}
	ev, err := webhooks.NewEvent(in.Type, accountID, s.now(), json.RawMessage(compact.Bytes()))
	if err != nil {
		return nil, keyplane.Invalid("data", "must be a JSON object")
	}
	ev.AccountOnly = true
	if in.IdempotencyKey != "" {
		ev.Once = "published:" + accountID + ":" + in.IdempotencyKey
	}
	ctx, _ = audited(ctx, s.event(ctx, keyplane.AuditEventPublished, accountID, "", map[string]any{
		"message_id": ev.ID, "type": in.Type, "idempotency_key": in.IdempotencyKey}))
	if err := s.store.RaiseWebhookEvents(ctx, []*keyplane.WebhookEvent{ev}); err != nil {
		return nil, err
	}
	if ev.Duplicate {
		first, err := s.store.WebhookMessage(ctx, ev.ID)
		if err != nil {
			return nil, err
		}
		firstData, err := webhooks.PayloadData(first.Payload)
		if err != nil || first.Type != in.Type || !sameJSON(firstData, compact.Bytes()) {
			return nil, &keyplane.Error{Code: keyplane.ECONFLICT, Message: "idempotency_key: was used for an event with other type or data",
				Fields: []keyplane.FieldError{{Field: "idempotency_key", Message: "was used for an event with other type or data"}}}
		}
		return &PublishedEvent{ID: ev.ID, Duplicate: true}, nil
	}
	s.wakeWebhooks()
	return &PublishedEvent{ID: ev.ID, Deliveries: ev.Deliveries}, nil
}

// validWebhookURL checks an endpoint's URL (see webhooks.CheckURL).
func (s *Service) validWebhookURL(v *keyplane.Validation, field, raw string) string {
	raw = strings.TrimSpace(raw)
	if err := webhooks.CheckURL(raw, s.webhooksAllowPrivate); err != nil {
		v.Add(field, "%s", err)
	}
	return raw
}

// validEventFilters checks an endpoint's event types: each one of
// keyplane's, an operator's type, or "prefix.*". Under keyplane's own
// prefixes only types keyplane raises are accepted: a typo there would
// silently receive nothing.
func validEventFilters(v *keyplane.Validation, field string, filters []string) []string {
	if len(filters) > maxEndpointEvents {
		v.Add(field, "at most %d event types", maxEndpointEvents)
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for i, f := range filters {
		f = strings.TrimSpace(f)
		name := field + "[" + strconv.Itoa(i) + "]"
		if prefix, ok := strings.CutSuffix(f, ".*"); ok {
			if !keyplane.ValidEventType(prefix+".x") || strings.HasSuffix(prefix, ".") {
				v.Add(name, "%q: want a type such as key.revoked or a prefix such as key.*", truncate(f, 100))
				continue
			}
		} else if !keyplane.ValidEventType(f) {
			v.Add(name, "%q: want a type such as key.revoked or a prefix such as key.*", truncate(f, 100))
			continue
		} else if keyplane.OwnEventType(f) && !keyplane.KnownEventType(f) {
			v.Add(name, "%q: unknown event type; keyplane's are %s", f, strings.Join(keyplane.EventTypes, ", "))
			continue
		}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}

func validDescription(v *keyplane.Validation, field, d string) string {
	d = strings.TrimSpace(d)
	if !utf8.ValidString(d) || strings.ContainsRune(d, 0) || utf8.RuneCountInString(d) > maxEndpointDescription {
		v.Add(field, "at most %d characters of valid text", maxEndpointDescription)
	}
	return d
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

func stringsOrEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// memberEvent is the event of type typ about a member: never their
// password hash.
func memberEvent(typ string, m *keyplane.Member, now time.Time) *keyplane.WebhookEvent {
	return webhooks.MustEvent(typ, m.AccountID, now, map[string]any{"member": map[string]any{
		"id": m.ID, "account_id": m.AccountID, "email": m.Email, "role": m.Role, "status": m.Status, "created_at": m.CreatedAt}})
}

// sameJSON reports whether two JSON documents hold the same value, whatever
// their key order or spacing: a retried publication may re-encode its data.
func sameJSON(a, b []byte) bool {
	decode := func(data []byte) (any, error) {
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		var v any
		return v, d.Decode(&v)
	}
	va, err := decode(a)
	if err != nil {
		return false
	}
	vb, err := decode(b)
	return err == nil && reflect.DeepEqual(va, vb)
}
