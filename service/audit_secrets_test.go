package service_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/service"
)

// What people type into a form's email or name field lands in the audit
// log, which is kept forever: a password typed as the email, a key or token
// pasted into the wrong field, must not.
func TestAuditKeepsTypedSecretsOut(t *testing.T) {
	e := newPortalEnv(t, false)
	owner := e.as(t, e.member(t, e.acc.ID, keyplane.MemberOwner))
	key := e.key(t, e.acc.ID, service.KeyInput{}).Plaintext
	token := apikey.NewToken()
	secrets := []string{pw, key, token}
	bg := keyplane.NewContextWithRequestInfo(context.Background(), keyplane.RequestInfo{SourceIP: "192.0.2.7", UserAgent: "curl " + key, RequestID: token})

	log := &auditLog{store: e.store}
	log.newEvents(t)
	details := func(t *testing.T) map[string]any {
		t.Helper()
		evs := log.newEvents(t)
		if len(evs) != 1 {
			t.Fatalf("%d events, want 1: %+v", len(evs), evs)
		}
		for _, s := range secrets {
			if strings.Contains(string(evs[0].Details)+evs[0].UserAgent+evs[0].RequestID, s) {
				t.Fatalf("%q reached the audit log: %+v %s", s, evs[0], evs[0].Details)
			}
		}
		var d map[string]any
		if err := json.Unmarshal(evs[0].Details, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}

	// A password, a key or a token typed as the email, or an email-shaped
	// string around a key: recorded as malformed.
	for _, typed := range []string{pw, key, token, "  " + token + " ", key + "@example.com"} {
		_, err := e.svc.SignIn(bg, typed, "wrong password!!", client)
		wantCode(t, err, keyplane.EUNAUTHORIZED)
		if d := details(t); d["email"] != nil || d["email_malformed"] != true || d["reason"] != "unknown_email" {
			t.Fatalf("sign-in as %q recorded %v", typed, d)
		}
	}
	// A well-shaped email is recorded as given.
	_, err := e.svc.SignIn(bg, " Nobody@Example.com", "wrong password!!", client)
	wantCode(t, err, keyplane.EUNAUTHORIZED)
	if d := details(t); d["email"] != "nobody@example.com" || d["email_malformed"] != nil {
		t.Fatalf("recorded %v", d)
	}

	// Emails that are kept (invites, members) and so recorded again and
	// again refuse a key outright.
	_, err = e.svc.InviteMember(owner, e.acc.ID, key+"@example.com", keyplane.MemberViewer)
	wantCode(t, err, keyplane.EINVALID)
	_, err = e.svc.CreateMember(e.ctx, e.acc.ID, service.MemberInput{Email: "x" + token + "@example.com", Role: keyplane.MemberViewer, Password: pw})
	wantCode(t, err, keyplane.EINVALID)
	if evs := log.newEvents(t); len(evs) != 0 {
		t.Fatalf("refused changes recorded %+v", evs)
	}
	// Names are typed too.
	if _, err := e.svc.CreateAccount(e.ctx, service.AccountInput{Name: "prod " + key}); err != nil {
		t.Fatal(err)
	}
	if d := details(t); d["name"] != nil || d["redacted"] != true || d["plan"] != "default" {
		t.Fatalf("account.created recorded %v", d)
	}
	// Events the binary's other parts record go through the same filter.
	if _, err := e.svc.RecordAudit(bg, keyplane.AuditEvent{Type: keyplane.AuditMemberSignedOut, AccountID: e.acc.ID,
		Details: json.RawMessage(`{"note":["` + token + `"],"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	if d := details(t); d["redacted"] != true || d["n"] != 1.0 {
		t.Fatalf("RecordAudit recorded %v", d)
	}
}
