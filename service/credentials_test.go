package service_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

// signIn opens a session for m and returns its token and a context acting
// as that session.
func (e *portalEnv) signIn(t *testing.T, email, password string) (string, context.Context) {
	t.Helper()
	in, err := e.svc.SignIn(context.Background(), email, password, client)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := e.svc.AuthenticateSession(context.Background(), in.Token)
	if err != nil {
		t.Fatal(err)
	}
	return in.Token, keyplane.NewContextWithActor(context.Background(), ps.Actor)
}

func (e *portalEnv) sessionEnded(t *testing.T, token string) bool {
	t.Helper()
	_, err := e.svc.AuthenticateSession(context.Background(), token)
	if err != nil && keyplane.ErrorCode(err) != keyplane.EUNAUTHORIZED {
		t.Fatal(err)
	}
	return err != nil
}

// A member changes their password with the current one; their other
// sessions end at once, the one that made the change stays.
func TestChangePasswordEndsOtherSessions(t *testing.T) {
	e := newPortalEnv(t, false)
	m := e.member(t, e.acc.ID, keyplane.MemberDeveloper)
	here, ctx := e.signIn(t, m.Email, pw)
	elsewhere, _ := e.signIn(t, m.Email, pw)
	const newPW = "another long password"

	_, err := e.svc.ChangePassword(ctx, m.ID, "not the password", newPW)
	wantCode(t, err, keyplane.EINVALID)
	if !strings.Contains(err.Error(), "current_password") {
		t.Fatalf("wrong current password: %v", err)
	}
	wantCode(t, func() error { _, err := e.svc.ChangePassword(ctx, m.ID, pw, "short"); return err }(), keyplane.EINVALID)
	// Nobody else changes it: not the operator, not an owner.
	owner := e.member(t, e.acc.ID, keyplane.MemberOwner)
	_, ownerCtx := e.signIn(t, owner.Email, pw)
	for _, c := range []context.Context{e.ctx, ownerCtx} {
		_, err := e.svc.ChangePassword(c, m.ID, pw, newPW)
		wantCode(t, err, keyplane.EFORBIDDEN)
	}
	if e.sessionEnded(t, elsewhere) {
		t.Fatal("a refused change ended a session")
	}

	if _, err := e.svc.ChangePassword(ctx, m.ID, pw, newPW); err != nil {
		t.Fatal(err)
	}
	if e.sessionEnded(t, here) {
		t.Fatal("the session that changed the password ended")
	}
	if !e.sessionEnded(t, elsewhere) {
		t.Fatal("another session of the member survived the password change")
	}
	if _, err := e.svc.SignIn(context.Background(), m.Email, pw, client); keyplane.ErrorCode(err) != keyplane.EUNAUTHORIZED {
		t.Fatalf("old password still signs in: %v", err)
	}
	e.signIn(t, m.Email, newPW)
	if types := strings.Join(auditTypes(t, e, e.acc.ID), " "); !strings.Contains(types, "member.password_changed/member") {
		t.Fatalf("no audit event: %s", types)
	}
	assertNoSecretInAudit(t, e, pw, newPW)
}

// A reset link sets a password once, within the hour; it ends every session.
func TestPasswordResetLink(t *testing.T) {
	e := newPortalEnv(t, false)
	owner := e.member(t, e.acc.ID, keyplane.MemberOwner)
	m := e.member(t, e.acc.ID, keyplane.MemberViewer)
	_, ownerCtx := e.signIn(t, owner.Email, pw)
	session, viewerCtx := e.signIn(t, m.Email, pw)

	// Viewers issue none; owners and the operator (by email) do.
	_, err := e.svc.IssuePasswordReset(viewerCtx, owner.ID)
	if code := keyplane.ErrorCode(err); code != keyplane.ENOTFOUND && code != keyplane.EFORBIDDEN {
		t.Fatalf("viewer issued a reset: %v", err)
	}
	r, err := e.svc.IssuePasswordReset(ownerCtx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !r.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("expires %v", r.ExpiresAt)
	}
	if _, email, err := e.svc.PasswordResetByToken(context.Background(), r.Token); err != nil || email != m.Email {
		t.Fatalf("by token: %q %v", email, err)
	}
	const newPW = "reset to this password"
	if _, err := e.svc.ResetPassword(context.Background(), r.Token, newPW); err != nil {
		t.Fatal(err)
	}
	if !e.sessionEnded(t, session) {
		t.Fatal("a session survived the reset")
	}
	e.signIn(t, m.Email, newPW)
	// Once only.
	_, err = e.svc.ResetPassword(context.Background(), r.Token, "yet another password")
	wantCode(t, err, keyplane.ENOTFOUND)
	if _, _, err := e.svc.PasswordResetByToken(context.Background(), r.Token); keyplane.ErrorCode(err) != keyplane.ENOTFOUND {
		t.Fatalf("used link still readable: %v", err)
	}

	// An hour later a link no longer works.
	late, err := e.svc.IssuePasswordResetByEmail(e.ctx, e.acc.ID, strings.ToUpper(m.Email))
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Hour)
	_, err = e.svc.ResetPassword(context.Background(), late.Token, "yet another password")
	wantCode(t, err, keyplane.ENOTFOUND)
	e.signIn(t, m.Email, newPW)

	// Another account's members are not found, for owners of this one.
	other := e.account(t)
	stranger := e.member(t, other.ID, keyplane.MemberDeveloper)
	_, err = e.svc.IssuePasswordReset(ownerCtx, stranger.ID)
	wantCode(t, err, keyplane.ENOTFOUND)

	types := strings.Join(auditTypes(t, e, e.acc.ID), " ")
	for _, want := range []string{"member.password_reset_issued/member", "member.password_reset/member", "member.password_reset_issued/token"} {
		if !strings.Contains(types, want) {
			t.Fatalf("no %s in %s", want, types)
		}
	}
	assertNoSecretInAudit(t, e, r.Token, late.Token, newPW)
}

// Deleting a member ends their sessions; the last owner stays; another
// account's members are not found.
func TestDeleteMember(t *testing.T) {
	e := newPortalEnv(t, false)
	owner := e.member(t, e.acc.ID, keyplane.MemberOwner)
	dev := e.member(t, e.acc.ID, keyplane.MemberDeveloper)
	_, ownerCtx := e.signIn(t, owner.Email, pw)
	devSession, devCtx := e.signIn(t, dev.Email, pw)

	wantCode(t, e.svc.DeleteMember(devCtx, owner.ID), keyplane.ENOTFOUND) // developers do not see other members
	wantCode(t, e.svc.DeleteMember(ownerCtx, owner.ID), keyplane.ECONFLICT)
	wantCode(t, e.svc.DeleteMember(e.ctx, owner.ID), keyplane.ECONFLICT)
	other := e.account(t)
	stranger := e.member(t, other.ID, keyplane.MemberDeveloper)
	wantCode(t, e.svc.DeleteMember(ownerCtx, stranger.ID), keyplane.ENOTFOUND)

	if err := e.svc.DeleteMember(ownerCtx, dev.ID); err != nil {
		t.Fatal(err)
	}
	if !e.sessionEnded(t, devSession) {
		t.Fatal("the deleted member's session survived")
	}
	if _, err := e.svc.Member(e.ctx, dev.ID); keyplane.ErrorCode(err) != keyplane.ENOTFOUND {
		t.Fatalf("deleted member still there: %v", err)
	}
	wantCode(t, e.svc.DeleteMember(ownerCtx, dev.ID), keyplane.ENOTFOUND)
	// With a second owner, the first may go.
	if _, err := e.svc.CreateMember(e.ctx, e.acc.ID, service.MemberInput{Email: "second-owner@example.com", Role: keyplane.MemberOwner, Password: pw}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DeleteMember(e.ctx, owner.ID); err != nil {
		t.Fatal(err)
	}
	if types := strings.Join(auditTypes(t, e, e.acc.ID), " "); strings.Count(types, "member.deleted/") != 2 {
		t.Fatalf("audit: %s", types)
	}
}

// assertNoSecretInAudit fails when any secret appears in the account's audit events.
func assertNoSecretInAudit(t *testing.T, e *portalEnv, secrets ...string) {
	t.Helper()
	events, _, err := e.svc.ListAccountAudit(e.ctx, e.acc.ID, service.AuditFilter{Page: keyplane.Page{Limit: 100}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(events)
	for _, s := range secrets {
		if strings.Contains(string(b), s) {
			t.Fatalf("a secret is in the audit log")
		}
	}
}
