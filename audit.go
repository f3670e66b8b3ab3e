package keyplane

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"strconv"
	"time"
)

// Audit event types. Each change the service makes records exactly one or
// two of them (a PATCH that also disables a key records key.updated and
// key.disabled).
const (
	AuditAccountCreated     = "account.created"
	AuditAccountUpdated     = "account.updated"
	AuditAccountSuspended   = "account.suspended"
	AuditAccountReactivated = "account.reactivated"
	AuditPlanCreated        = "plan.created"
	AuditPlanUpdated        = "plan.updated"
	AuditKeyCreated         = "key.created"
	AuditKeyUpdated         = "key.updated"
	AuditKeyDisabled        = "key.disabled"
	AuditKeyEnabled         = "key.enabled"
	AuditKeyRolled          = "key.rolled"
	AuditKeyRevoked         = "key.revoked"
	AuditKeyLeaked          = "key.leaked"
	AuditTokenCreated       = "token.created"
	AuditTokenRevoked       = "token.revoked"
	AuditQuotaReset         = "quota.reset"
	AuditMemberSignedIn     = "member.signed_in"
	AuditMemberSignedOut    = "member.signed_out"
	AuditMemberSignInFailed = "member.sign_in_failed"
	AuditVerifyFailed       = "verify.failed"
)

// MaxAuditDetails bounds an event's details: they say what changed, briefly.
const MaxAuditDetails = 4 << 10

// AuditEvent is one entry of the audit log. Events form chains, one per
// account and one (AccountID "") for the operator's own changes (tokens,
// plans, unknown keys): each event stores the hash of the one before it in
// its chain, and its own hash covers every field, so editing, deleting or
// reordering rows breaks the chain where it happened.
type AuditEvent struct {
	ID        string // "evt_" and a ULID
	Time      time.Time
	Type      string
	Actor     AuditActor
	AccountID string // the chain; "" is the operator chain
	KeyID     string
	SourceIP  string
	UserAgent string
	RequestID string
	// Details is a small JSON object saying what changed. Never a plaintext
	// key, token or password: the log is kept forever and exported.
	Details json.RawMessage

	// Set by the store as it appends: the position in the chain (from 1),
	// the previous event's hash ("" for the first) and this event's hash.
	Seq      int64
	PrevHash string
	Hash     string
}

// AuditActor is who caused an event: "token" (an operator token), "member"
// (a portal user) or "system" (keyplane itself, the CLI).
type AuditActor struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// auditHashVersion starts every hashed encoding, so a future change of the
// encoding can be told from tampering.
const auditHashVersion = "keyplane.audit.v1"

// ComputeHash returns the hex SHA-256 of the event's canonical encoding:
// every field, PrevHash and Seq included, each length-prefixed so no two
// different events encode alike. Time counts in microseconds, the precision
// both stores keep.
func (e *AuditEvent) ComputeHash() string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	field := func(s string) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	field(auditHashVersion)
	field(e.ID)
	field(strconv.FormatInt(e.Time.UnixMicro(), 10))
	field(e.Type)
	field(e.Actor.Kind)
	field(e.Actor.ID)
	field(e.AccountID)
	field(e.KeyID)
	field(e.SourceIP)
	field(e.UserAgent)
	field(e.RequestID)
	field(string(e.Details))
	field(strconv.FormatInt(e.Seq, 10))
	field(e.PrevHash)
	return hex.EncodeToString(h.Sum(nil))
}

// Seal places the event after head in its chain: it sets Seq, PrevHash and
// Hash. Stores call it with the chain's head locked.
func (e *AuditEvent) Seal(head AuditChainHead) {
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	if len(e.Details) == 0 {
		e.Details = json.RawMessage("{}")
	}
	e.Seq, e.PrevHash = head.Seq+1, head.Hash
	e.Hash = e.ComputeHash()
}

// AuditChainHead is where a chain ends: the sequence number and hash of its
// last event (0 and "" before the first).
type AuditChainHead struct {
	Chain string // an account id, "" for the operator chain
	Seq   int64
	Hash  string
	// Missing is set when events name a chain that has no head row: the row
	// was deleted.
	Missing bool
}

// AuditFilter selects events for a list or an export. Empty fields select
// everything; From is inclusive, To exclusive.
type AuditFilter struct {
	AccountID string
	KeyID     string
	Type      string
	ActorID   string
	From, To  time.Time
	Page
}

// AuditStore keeps the audit log. Besides AppendAudit, events reach it
// through an AuditTrail in the context of a change (see WithAuditTrail).
type AuditStore interface {
	// AppendAudit appends events that record no other change (a sign-in,
	// failed verifications) in one transaction of their own.
	AppendAudit(ctx context.Context, events []*AuditEvent) error
	// ListAudit returns events newest first; the cursor is the last event's id.
	ListAudit(ctx context.Context, filter AuditFilter) ([]*AuditEvent, string, error)
	// AuditChains returns every chain's head, and a Missing head for each
	// chain that has events but no head.
	AuditChains(ctx context.Context) ([]AuditChainHead, error)
	// AuditChain returns up to limit events of a chain with Seq > afterSeq,
	// in order of Seq.
	AuditChain(ctx context.Context, chain string, afterSeq int64, limit int) ([]*AuditEvent, error)
}

// AuditTrail carries the events of one change to the store, which appends
// them inside the change's own transaction: the change and its record commit
// together or not at all. Update callbacks may add events, since only they
// know, with the row locked, what the change really is.
type AuditTrail struct {
	events  []*AuditEvent
	written int
	// webhooks is the change's outbox: events for webhook endpoints,
	// written in the same transaction (see Raise).
	webhooks        []*WebhookEvent
	webhooksWritten int
}

// Add records an event of the change.
func (t *AuditTrail) Add(ev *AuditEvent) { t.events = append(t.events, ev) }

// Pending returns the events not yet committed.
func (t *AuditTrail) Pending() []*AuditEvent {
	if t == nil {
		return nil
	}
	return t.events[t.written:]
}

// Committed marks the events Pending and PendingWebhooks returned as
// written; stores call it after their transaction commits, so a later write
// does not repeat them.
func (t *AuditTrail) Committed() {
	if t != nil {
		t.written = len(t.events)
		t.webhooksWritten = len(t.webhooks)
	}
}

type auditTrailKey struct{}

// WithAuditTrail returns a context whose store writes also append the trail's
// events, and the trail.
func WithAuditTrail(ctx context.Context) (context.Context, *AuditTrail) {
	t := &AuditTrail{}
	return context.WithValue(ctx, auditTrailKey{}, t), t
}

// AuditTrailFromContext returns the trail of the change in progress, or nil.
func AuditTrailFromContext(ctx context.Context) *AuditTrail {
	t, _ := ctx.Value(auditTrailKey{}).(*AuditTrail)
	return t
}

// RequestInfo is what the transport knows about the request a change came
// from; the service copies it into audit events.
type RequestInfo struct {
	SourceIP  string
	UserAgent string
	RequestID string
}

type requestInfoKey struct{}

// NewContextWithRequestInfo returns a context carrying the request's facts.
func NewContextWithRequestInfo(ctx context.Context, info RequestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, info)
}

// RequestInfoFromContext returns the request's facts; zero outside a request.
func RequestInfoFromContext(ctx context.Context) RequestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(RequestInfo)
	return info
}

// VerifyFailure is a verification refused for the key itself (NOT_FOUND,
// REVOKED, EXPIRED, DISABLED, FORBIDDEN, INSUFFICIENT_SCOPE), as the audit
// log counts it. Rate-limit and quota refusals are usage, not failures.
type VerifyFailure struct {
	Time time.Time
	Code VerifyCode
	// KeyID and AccountID name the key presented, when it exists.
	KeyID, AccountID string
	// KeyHashPrefix is the first 4 bytes of the SHA-256 of what was
	// presented when no key matched: enough to group one bad key's attempts,
	// too little to learn anything of it.
	KeyHashPrefix [4]byte
	// IP is the client's address when the request said it.
	IP netip.Addr
}

// AuditedFailure reports whether the audit log records verifications that
// end with code: refusals for the key itself, not for its usage.
func AuditedFailure(code VerifyCode) bool {
	switch code {
	case VerifyNotFound, VerifyRevoked, VerifyExpired, VerifyDisabled, VerifyForbidden, VerifyInsufficientScope:
		return true
	}
	return false
}

// VerifyFailureRecorder counts failed verifications for the audit log.
// VerifyFailed runs on the verify path: it must not do I/O or block on it;
// implementations aggregate in bounded memory and write in batches.
type VerifyFailureRecorder interface {
	VerifyFailed(f VerifyFailure)
}
