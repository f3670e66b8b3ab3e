package keyplane

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// Webhook event types keyplane raises (DESIGN.md section 10). Operators
// publish their own types, which must not start with one of keyplane's
// prefixes (see OwnEventType).
const (
	EventKeyCreated        = "key.created"
	EventKeyUpdated        = "key.updated"
	EventKeyRolled         = "key.rolled"
	EventKeyRevoked        = "key.revoked"
	EventKeyExpiring       = "key.expiring"
	EventKeyExpired        = "key.expired"
	EventKeyLeaked         = "key.leaked"
	EventQuotaThreshold    = "quota.threshold"
	EventRateLimitExceeded = "ratelimit.exceeded"
	EventMemberCreated     = "member.created"
	EventMemberUpdated     = "member.updated"
	EventMemberDeleted     = "member.deleted"
	EventWebhookTest       = "webhook.test"
	EventUsageDaily        = "usage.daily"
)

// EventTypes lists keyplane's own event types.
var EventTypes = []string{EventKeyCreated, EventKeyUpdated, EventKeyRolled, EventKeyRevoked, EventKeyExpiring, EventKeyExpired,
	EventKeyLeaked, EventQuotaThreshold, EventRateLimitExceeded, EventMemberCreated, EventMemberUpdated, EventMemberDeleted,
	EventWebhookTest, EventUsageDaily}

// eventPrefixes are the first segments of keyplane's own types: reserved,
// so a receiver can trust that a key.* event came from keyplane itself.
var eventPrefixes = []string{"key", "quota", "ratelimit", "member", "webhook", "usage"}

// Audit event types of webhook endpoints.
const (
	AuditWebhookCreated       = "webhook.created"
	AuditWebhookUpdated       = "webhook.updated"
	AuditWebhookDeleted       = "webhook.deleted"
	AuditWebhookSecretRotated = "webhook.secret_rotated"
	AuditWebhookDisabled      = "webhook.disabled"
	AuditEventPublished       = "event.published"
)

// MaxEventTypeLength bounds an event type's name, in bytes.
const MaxEventTypeLength = 100

// ValidEventType reports whether t has the shape of an event type:
// lowercase segments of [a-z0-9_] joined by dots, at least two.
func ValidEventType(t string) bool {
	if len(t) == 0 || len(t) > MaxEventTypeLength {
		return false
	}
	segments := strings.Split(t, ".")
	if len(segments) < 2 {
		return false
	}
	for _, s := range segments {
		if s == "" {
			return false
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				return false
			}
		}
	}
	return true
}

// OwnEventType reports whether t falls under one of keyplane's reserved
// prefixes: operators may not publish such types.
func OwnEventType(t string) bool {
	first, _, _ := strings.Cut(t, ".")
	for _, p := range eventPrefixes {
		if first == p {
			return true
		}
	}
	return false
}

// KnownEventType reports whether t is one of keyplane's own types.
func KnownEventType(t string) bool {
	for _, k := range EventTypes {
		if k == t {
			return true
		}
	}
	return false
}

// EventMatches reports whether an endpoint subscribed to filters receives
// events of type t: an empty list subscribes to everything, "key.*" to
// every type under key.
func EventMatches(filters []string, t string) bool {
	if len(filters) == 0 {
		return true
	}
	for _, f := range filters {
		if f == t {
			return true
		}
		if prefix, ok := strings.CutSuffix(f, "*"); ok && strings.HasPrefix(t, prefix) {
			return true
		}
	}
	return false
}

// WebhookEndpoint is where an account (or, without an account, the
// operator) receives events.
type WebhookEndpoint struct {
	ID          string // "whk_" and a ULID
	AccountID   string // "" for an operator endpoint, which receives every account's events
	URL         string
	Description string
	Events      []string // types or "prefix.*"; empty receives every event
	Enabled     bool
	// DisabledReason says why keyplane disabled the endpoint: "gone" (it
	// answered 410) or "failing" (5 days of failures); "" otherwise.
	DisabledReason string
	// Secrets sign deliveries; more than one during a rotation's overlap.
	Secrets []WebhookSecret
	// FailingSince is the first failure since the last success; nil while
	// deliveries succeed.
	FailingSince *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// WebhookSecret is one signing secret, sealed: only the service and the
// dispatcher, holding the secrets key, can open it.
type WebhookSecret struct {
	Sealed    []byte    `json:"sealed"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt ends a rotated-out secret's overlap; nil for the current one.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// ActiveSecrets returns the secrets that sign a delivery at now: the
// current one, and the previous one during a rotation's overlap.
func (e *WebhookEndpoint) ActiveSecrets(now time.Time) []WebhookSecret {
	var active []WebhookSecret
	for _, s := range e.Secrets {
		if s.ExpiresAt == nil || now.Before(*s.ExpiresAt) {
			active = append(active, s)
		}
	}
	return active
}

// SecretSealer encrypts secrets at rest. binding ties a sealed secret to
// what it belongs to (an endpoint id): a sealed value copied to another row
// does not open.
type SecretSealer interface {
	Seal(plaintext []byte, binding string) ([]byte, error)
	Open(sealed []byte, binding string) ([]byte, error)
}

// WebhookEvent is an event raised for delivery. A change raises it through
// the AuditTrail in its context (see AuditTrail.Raise), so the outbox row
// commits with the change; events outside a change (meters, schedules,
// tests) go through WebhookStore.RaiseWebhookEvents.
type WebhookEvent struct {
	ID        string // "msg_" and a ULID: the webhook-id receivers deduplicate on
	AccountID string // "" for events of no account
	Type      string
	Time      time.Time
	// Payload is the body delivered: {"type", "timestamp", "data"}.
	Payload json.RawMessage

	// Once, when set, names the event so that it is raised once: a second
	// event of the same name is dropped (and its ID set to the first's),
	// unless the first is older than OnceEvery (0: forever).
	Once      string
	OnceEvery time.Duration
	// EndpointID, when set, delivers to that endpoint alone (webhook.test).
	EndpointID string
	// AccountOnly keeps the event from operator endpoints: the operator
	// published it and needs no copy.
	AccountOnly bool

	// Set by the store: the event was dropped as a repeat of Once.
	Duplicate bool
	// Set by the store: how many endpoints it was queued for.
	Deliveries int
}

// DeliveryStatus is where a message stands with one endpoint.
type DeliveryStatus string

const (
	DeliveryPending   DeliveryStatus = "pending"   // waiting for its next attempt
	DeliveryDelivered DeliveryStatus = "delivered" // answered 2xx
	DeliveryFailed    DeliveryStatus = "failed"    // retries exhausted
)

// WebhookMessage is a raised event as stored.
type WebhookMessage struct {
	ID        string
	AccountID string
	Type      string
	Time      time.Time
	Payload   json.RawMessage
}

// WebhookDelivery is one message on its way to one endpoint.
type WebhookDelivery struct {
	Message    WebhookMessage
	EndpointID string
	Status     DeliveryStatus
	Attempts   int // every attempt made
	// Round counts the attempts since the message was queued or requeued
	// (by a retry): the index into the retry schedule.
	Round int
	// LastTry marks a requeue by hand: one attempt, no automatic retries.
	LastTry       bool
	NextAttemptAt time.Time
	UpdatedAt     time.Time
	// Claim is set on deliveries returned by ClaimWebhookDeliveries; the
	// attempt is recorded against it.
	Claim string
	// History is the delivery's attempts, oldest first (list reads only).
	History []WebhookAttempt
}

// MaxAttemptResponse is how much of a receiver's answer an attempt keeps.
const MaxAttemptResponse = 1 << 10

// WebhookAttempt is one try to deliver a message to an endpoint.
type WebhookAttempt struct {
	ID         string // "att_" and a ULID
	MessageID  string
	EndpointID string
	Time       time.Time
	StatusCode int // 0 when no answer came
	Duration   time.Duration
	Response   string // the answer's first MaxAttemptResponse bytes, valid UTF-8
	Error      string // why no answer came; "" when one did
}

// AttemptOutcome is what became of a claimed delivery after an attempt.
type AttemptOutcome struct {
	Attempt   WebhookAttempt
	Claim     string
	Delivered bool
	// Next is the time of the next attempt; nil gives up (failed) unless
	// Delivered.
	Next *time.Time
}

// ClaimRequest asks for deliveries that are due.
type ClaimRequest struct {
	Now   time.Time
	Lease time.Duration // a claimed delivery is due again after it, if its claimer died
	Limit int
	// PerEndpoint caps the deliveries to one endpoint in flight; Busy is
	// how many each endpoint has in flight already.
	PerEndpoint int
	Busy        map[string]int
}

// WebhookEndpointFilter selects endpoints: an account's, or with Operator
// the operator's own.
type WebhookEndpointFilter struct {
	AccountID string
	Operator  bool
	Page
}

// RetryFilter selects deliveries to requeue: of a message, or of an
// endpoint whose messages were raised since Since; to the endpoints listed
// only (nil: every endpoint). Only failed deliveries are requeued unless
// a message is named.
type RetryFilter struct {
	MessageID   string
	EndpointIDs []string
	Since       time.Time
}

// MaxWebhookEndpoints caps an account's endpoints.
const MaxWebhookEndpoints = 20

// WebhookStore keeps endpoints, the outbox, deliveries and attempts.
type WebhookStore interface {
	// CreateWebhookEndpoint inserts e unless its account has max endpoints
	// already (EINVALID), checked atomically with the insert.
	CreateWebhookEndpoint(ctx context.Context, e *WebhookEndpoint, max int) error
	WebhookEndpoint(ctx context.Context, id string) (*WebhookEndpoint, error)
	// ListWebhookEndpoints lists endpoints by id; the cursor is the last id.
	ListWebhookEndpoints(ctx context.Context, f WebhookEndpointFilter) ([]*WebhookEndpoint, string, error)
	UpdateWebhookEndpoint(ctx context.Context, id string, update func(*WebhookEndpoint) error) (*WebhookEndpoint, error)
	// DeleteWebhookEndpoint deletes an endpoint with its deliveries.
	DeleteWebhookEndpoint(ctx context.Context, id string) error

	// RaiseWebhookEvents writes events and their deliveries in a
	// transaction of their own (with the trail of ctx, if any).
	RaiseWebhookEvents(ctx context.Context, events []*WebhookEvent) error
	WebhookMessage(ctx context.Context, id string) (*WebhookMessage, error)
	// ListWebhookDeliveries lists an endpoint's deliveries, newest message
	// first, each with its attempts; the cursor is the last message id.
	ListWebhookDeliveries(ctx context.Context, endpointID string, page Page) ([]*WebhookDelivery, string, error)
	// MessageDeliveries lists a message's deliveries, by endpoint.
	MessageDeliveries(ctx context.Context, messageID string) ([]*WebhookDelivery, error)

	// ClaimWebhookDeliveries returns due deliveries of enabled endpoints and
	// pushes their next attempt to now + lease, under a new claim: no other
	// claimer gets them before the lease ends. Concurrent claimers never get
	// the same delivery.
	ClaimWebhookDeliveries(ctx context.Context, req ClaimRequest) ([]*WebhookDelivery, error)
	// RecordWebhookAttempt records an attempt and, if the claim still holds,
	// the delivery's new state; it keeps the endpoint's FailingSince and
	// returns the endpoint as it now is.
	RecordWebhookAttempt(ctx context.Context, out AttemptOutcome) (*WebhookEndpoint, error)
	// RetryWebhookDeliveries requeues the deliveries f selects for one
	// attempt now, and returns how many.
	RetryWebhookDeliveries(ctx context.Context, f RetryFilter, now time.Time) (int, error)

	// AdvanceWebhookSchedule moves the named schedule from from to to and
	// raises events, in one transaction, if it still stands at from (the
	// zero time: never run). It reports false when another instance moved it.
	AdvanceWebhookSchedule(ctx context.Context, name string, from, to time.Time, events []*WebhookEvent) (bool, error)
	// WebhookSchedule returns where the named schedule stands; zero if never run.
	WebhookSchedule(ctx context.Context, name string) (time.Time, error)
	// KeysExpiringBetween returns keys not revoked whose expiry is in
	// (from, to], by expiry, at most limit.
	KeysExpiringBetween(ctx context.Context, from, to time.Time, limit int) ([]*Key, error)
	// PruneWebhookMessages deletes messages raised before before whose
	// deliveries have all ended (or that have none), and marks older than
	// before; it returns how many messages.
	PruneWebhookMessages(ctx context.Context, before time.Time) (int64, error)
}

// Raise adds an event to the change: the store writes it to the outbox in
// the change's transaction.
func (t *AuditTrail) Raise(ev *WebhookEvent) { t.webhooks = append(t.webhooks, ev) }

// PendingWebhooks returns the raised events not yet committed.
func (t *AuditTrail) PendingWebhooks() []*WebhookEvent {
	if t == nil {
		return nil
	}
	return t.webhooks[t.webhooksWritten:]
}
