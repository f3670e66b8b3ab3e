package service

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
)

// event makes an audit event of the change the caller in ctx is making,
// from the request ctx came in on.
func (s *Service) event(ctx context.Context, typ, accountID, keyID string, details map[string]any) *keyplane.AuditEvent {
	ev := &keyplane.AuditEvent{ID: newID("evt"), Time: s.now(), Type: typ, AccountID: accountID, KeyID: keyID, Details: auditDetails(details)}
	if a, ok := keyplane.ActorFromContext(ctx); ok {
		ev.Actor = keyplane.AuditActor{Kind: a.Kind, ID: a.ID}
	}
	req := keyplane.RequestInfoFromContext(ctx)
	ev.SourceIP, ev.UserAgent, ev.RequestID = req.SourceIP, req.UserAgent, req.RequestID
	// Headers the caller sets; a key pasted into one stays out of the log.
	if apikey.ContainsSecret(ev.UserAgent) {
		ev.UserAgent = ""
	}
	if apikey.ContainsSecret(ev.RequestID) {
		ev.RequestID = keyplane.NewRequestID()
	}
	return ev
}

// auditDetails encodes details; they are built here from known fields, so
// they always encode (map keys come out sorted, which keeps them stable).
func auditDetails(details map[string]any) json.RawMessage {
	if len(details) == 0 {
		return json.RawMessage("{}")
	}
	b, err := json.Marshal(details)
	if err != nil {
		panic("service: audit details: " + err.Error())
	}
	return withoutSecrets(b)
}

// auditEmail records an email someone typed under "email": as given when it
// is shaped like one, otherwise only that it was malformed. People type
// passwords into email fields, and the log is kept forever.
func auditEmail(details map[string]any, email string) map[string]any {
	var v keyplane.Validation // normalEmail refuses one that holds a key or token
	if e := normalEmail(&v, "email", email); v.Err() == nil {
		details["email"] = e
	} else {
		details["email"], details["email_malformed"] = nil, true
	}
	return details
}

// withoutSecrets returns details with every string that holds a key or an
// operator token replaced by null, and "redacted": true: names and emails
// are typed by people, who paste keys into the wrong field. Details without
// one, nearly all, are returned as they are.
func withoutSecrets(details json.RawMessage) json.RawMessage {
	if !apikey.ContainsSecret(string(details)) {
		return details
	}
	var obj map[string]any
	d := json.NewDecoder(bytes.NewReader(details))
	d.UseNumber()
	if d.Decode(&obj) != nil || obj == nil {
		return json.RawMessage(`{"redacted":true}`)
	}
	out := scrubSecrets(obj).(map[string]any)
	out["redacted"] = true
	b, err := json.Marshal(out)
	if err != nil {
		panic("service: audit details: " + err.Error())
	}
	return b
}

func scrubSecrets(v any) any {
	switch v := v.(type) {
	case string:
		if apikey.ContainsSecret(v) {
			return nil
		}
	case map[string]any:
		for k, e := range v {
			if apikey.ContainsSecret(k) {
				delete(v, k)
				continue
			}
			v[k] = scrubSecrets(e)
		}
	case []any:
		for i, e := range v {
			v[i] = scrubSecrets(e)
		}
	}
	return v
}

// audited returns a context whose store writes append the change's audit
// events in their own transaction, and the trail to add them to.
func audited(ctx context.Context, events ...*keyplane.AuditEvent) (context.Context, *keyplane.AuditTrail) {
	ctx, trail := keyplane.WithAuditTrail(ctx)
	for _, ev := range events {
		trail.Add(ev)
	}
	return ctx, trail
}

// flushTrail appends what a committed change left in its trail. Every store
// write appends the trail itself, so this only acts for a change that
// reached no store write through ctx (a quota meter that keeps counts
// elsewhere): the record is then written just after the change, not with it.
func (s *Service) flushTrail(ctx context.Context, trail *keyplane.AuditTrail) error {
	pending := trail.Pending()
	if len(pending) == 0 {
		return nil
	}
	if err := s.store.AppendAudit(context.WithoutCancel(ctx), pending); err != nil {
		return err
	}
	trail.Committed()
	return nil
}

// changedFields names the fields an update sets, in the API's terms.
func changedFields(set map[string]bool) []string {
	out := []string{}
	for _, name := range fieldOrder {
		if set[name] {
			out = append(out, name)
		}
	}
	return out
}

// fieldOrder is the order fields are listed in events, whatever the map's.
var fieldOrder = []string{"name", "plan", "status", "scopes", "allowed_scopes", "allowed_cidrs", "rate_limits", "quota", "max_keys",
	"key_policy", "metadata", "expires_at", "enabled"}

// actorIDPattern is the shape of the ids actors have: tok_…, mem_…, system.
var actorIDPattern = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// auditTypePattern is the shape of event types: "thing.happened".
var auditTypePattern = regexp.MustCompile(`^[a-z][a-z_]{0,30}\.[a-z][a-z_]{0,30}$`)

// RecordAudit appends an event that accompanies no other change of the
// service's: a portal sign-in, sign-out or failed sign-in. It is for the
// binary's own components, not a transport: it trusts the caller to be
// keyplane. Given Type and AccountID (and KeyID and Details when they
// apply), it fills the id, the time, the actor (unless set: a failed sign-in
// has no authenticated actor, so pass {Kind: "member"} with what is known)
// and the request's source IP, user agent and request id from ctx.
// Details must be a JSON object of at most 4 KiB and must never hold a
// password, key or token.
func (s *Service) RecordAudit(ctx context.Context, ev keyplane.AuditEvent) (*keyplane.AuditEvent, error) {
	var v keyplane.Validation
	if !auditTypePattern.MatchString(ev.Type) {
		v.Add("type", "%q: want a type such as member.signed_in", ev.Type)
	}
	if len(ev.Details) > keyplane.MaxAuditDetails {
		v.Add("details", "must be at most %d bytes", keyplane.MaxAuditDetails)
	} else if len(ev.Details) > 0 {
		var obj map[string]json.RawMessage
		if json.Unmarshal(ev.Details, &obj) != nil || obj == nil {
			v.Add("details", "must be a JSON object")
		}
	}
	if ev.AccountID != "" && !validID(ev.AccountID) {
		v.Add("account_id", "is not an account id")
	}
	if ev.KeyID != "" && !validID(ev.KeyID) {
		v.Add("key_id", "is not a key id")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	out := s.event(ctx, ev.Type, ev.AccountID, ev.KeyID, nil)
	out.Details = withoutSecrets(ev.Details)
	if ev.Actor != (keyplane.AuditActor{}) {
		out.Actor = ev.Actor
	}
	if !ev.Time.IsZero() {
		out.Time = ev.Time.UTC().Truncate(time.Microsecond)
	}
	if err := s.store.AppendAudit(ctx, []*keyplane.AuditEvent{out}); err != nil {
		return nil, err
	}
	return out, nil
}

// AuditFilter selects events for ListAudit.
type AuditFilter struct {
	AccountID, KeyID, Type, ActorID string
	From, To                        *time.Time
	keyplane.Page
}

// ListAudit lists audit events, newest first. Operators only: members read
// their account's events through ListAccountAudit.
func (s *Service) ListAudit(ctx context.Context, f AuditFilter) ([]*keyplane.AuditEvent, string, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, "", err
	}
	return s.listAudit(ctx, f)
}

// ListAccountAudit lists one account's audit events, newest first, for an
// actor who may see the account.
func (s *Service) ListAccountAudit(ctx context.Context, accountID string, f AuditFilter) ([]*keyplane.AuditEvent, string, error) {
	if _, err := s.Account(ctx, accountID); err != nil {
		return nil, "", err
	}
	f.AccountID = accountID
	return s.listAudit(ctx, f)
}

// ExportAudit calls emit for every event that matches f, newest first, a
// page at a time. Operators only.
func (s *Service) ExportAudit(ctx context.Context, f AuditFilter, emit func(*keyplane.AuditEvent) error) error {
	f.Limit, f.Cursor = 100, ""
	for {
		page, next, err := s.ListAudit(ctx, f)
		if err != nil {
			return err
		}
		for _, ev := range page {
			if err := emit(ev); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		f.Cursor = next
	}
}

func (s *Service) listAudit(ctx context.Context, f AuditFilter) ([]*keyplane.AuditEvent, string, error) {
	limit, err := pageLimit(f.Limit)
	if err != nil {
		return nil, "", err
	}
	var v keyplane.Validation
	if f.AccountID != "" && !validID(f.AccountID) {
		v.Add("account_id", "is not an account id")
	}
	if f.KeyID != "" && !validID(f.KeyID) {
		v.Add("key_id", "is not a key id")
	}
	if f.Type != "" && !auditTypePattern.MatchString(f.Type) {
		v.Add("type", "%q: want an event type such as key.created", f.Type)
	}
	if f.ActorID != "" && !actorIDPattern.MatchString(f.ActorID) {
		v.Add("actor", "is not a token, member or system id")
	}
	if f.From != nil && f.To != nil && !f.From.Before(*f.To) {
		v.Add("to", "must be after from")
	}
	if err := v.Err(); err != nil {
		return nil, "", err
	}
	filter := keyplane.AuditFilter{AccountID: f.AccountID, KeyID: f.KeyID, Type: f.Type, ActorID: f.ActorID, Page: keyplane.Page{Limit: limit, Cursor: f.Cursor}}
	if f.From != nil {
		filter.From = *f.From
	}
	if f.To != nil {
		filter.To = *f.To
	}
	return s.store.ListAudit(ctx, filter)
}
