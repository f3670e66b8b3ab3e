package service_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/teststore"
	"github.com/keyplane/keyplane/webhooks"
)

func newWebhookService(t testing.TB) (*service.Service, keyplane.Store, context.Context) {
	t.Helper()
	store := teststore.New(t)
	key := make([]byte, 32)
	rand.Read(key)
	box, err := webhooks.NewSecretBox(key)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(store, service.Config{WebhookSecrets: box})
	if err != nil {
		t.Fatal(err)
	}
	return svc, store, keyplane.NewContextWithActor(context.Background(), keyplane.Actor{Kind: "token", ID: "tok_test", Role: keyplane.RoleAdmin})
}

func memberCtx(accountID string, role keyplane.MemberRole) context.Context {
	return keyplane.NewContextWithActor(context.Background(), keyplane.Actor{Kind: "member", ID: "mem_01jzzzzzzzzzzzzzzzzzzzzzzz", AccountID: accountID, MemberRole: role})
}

// TestWebhookRoles: owners and developers manage their account's
// endpoints, viewers read them, nobody sees another account's or the
// operator's, and members publish nothing.
func TestWebhookRoles(t *testing.T) {
	svc, _, admin := newWebhookService(t)
	acc, err := svc.CreateAccount(admin, service.AccountInput{Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := svc.CreateAccount(admin, service.AccountInput{Name: "Other"})
	in := service.WebhookInput{URL: "https://hooks.example.com/"}
	for _, role := range []keyplane.MemberRole{keyplane.MemberOwner, keyplane.MemberDeveloper} {
		if _, err := svc.CreateWebhook(memberCtx(acc.ID, role), acc.ID, in); err != nil {
			t.Fatalf("%s: %v", role, err)
		}
	}
	viewer := memberCtx(acc.ID, keyplane.MemberViewer)
	_, err = svc.CreateWebhook(viewer, acc.ID, in)
	wantCode(t, err, keyplane.EFORBIDDEN)
	list, _, err := svc.ListWebhooks(viewer, acc.ID, keyplane.Page{})
	if err != nil || len(list) != 2 {
		t.Fatalf("a viewer lists %d endpoints, %v", len(list), err)
	}
	_, err = svc.RotateWebhookSecret(viewer, list[0].ID, 0)
	wantCode(t, err, keyplane.EFORBIDDEN)
	_, err = svc.TestWebhook(viewer, list[0].ID)
	wantCode(t, err, keyplane.EFORBIDDEN)

	theirs, err := svc.CreateWebhook(admin, other.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := svc.CreateWebhook(admin, "", in)
	if err != nil {
		t.Fatal(err)
	}
	owner := memberCtx(acc.ID, keyplane.MemberOwner)
	for _, id := range []string{theirs.ID, ops.ID} {
		_, err := svc.Webhook(owner, id)
		wantCode(t, err, keyplane.ENOTFOUND)
		_, err = svc.UpdateWebhook(owner, id, service.WebhookUpdate{Enabled: service.Optional[bool]{Set: true}})
		wantCode(t, err, keyplane.ENOTFOUND)
		wantCode(t, svc.DeleteWebhook(owner, id), keyplane.ENOTFOUND)
		_, _, err = svc.WebhookDeliveries(owner, id, keyplane.Page{})
		wantCode(t, err, keyplane.ENOTFOUND)
	}
	_, _, err = svc.ListWebhooks(owner, other.ID, keyplane.Page{})
	wantCode(t, err, keyplane.ENOTFOUND)
	_, err = svc.CreateWebhook(owner, "", in)
	wantCode(t, err, keyplane.EFORBIDDEN)
	_, err = svc.PublishEvent(owner, acc.ID, service.PublishInput{Type: "invoice.paid", Data: []byte(`{}`)})
	wantCode(t, err, keyplane.EFORBIDDEN)

	// A message of the account also went to the operator's endpoint: a
	// member's retry requeues their own endpoint's delivery only.
	ev, err := svc.TestWebhook(owner, list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.RetryMessage(memberCtx(other.ID, keyplane.MemberOwner), ev.ID)
	wantCode(t, err, keyplane.ENOTFOUND)
}

// TestKeyEventsCommitWithTheChange: every key operation raises its event
// in its own transaction, with ids and hints only.
func TestKeyEventsCommitWithTheChange(t *testing.T) {
	svc, store, admin := newWebhookService(t)
	acc, _ := svc.CreateAccount(admin, service.AccountInput{Name: "Acme"})
	w, err := svc.CreateWebhook(admin, acc.ID, service.WebhookInput{URL: "https://hooks.example.com/", Events: []string{"key.*", "member.*"}})
	if err != nil {
		t.Fatal(err)
	}
	k, err := svc.CreateKey(admin, acc.ID, service.KeyInput{Name: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.UpdateKey(admin, k.ID, service.KeyUpdate{Enabled: service.Optional[bool]{Set: true, Value: false}}); err != nil {
		t.Fatal(err)
	}
	rolled, err := svc.RollKey(admin, k.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RevokeKey(admin, rolled.Key.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RevokeKey(admin, rolled.Key.ID); err != nil { // again: no change, no event
		t.Fatal(err)
	}
	m, err := svc.CreateMember(admin, acc.ID, service.MemberInput{Email: "dev@example.com", Role: keyplane.MemberDeveloper, Password: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.DeleteMember(admin, m.ID); err != nil {
		t.Fatal(err)
	}
	ds, _, err := store.ListWebhookDeliveries(admin, w.ID, keyplane.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for i := len(ds) - 1; i >= 0; i-- {
		types = append(types, ds[i].Message.Type)
		for _, secret := range []string{k.Plaintext, rolled.Key.Plaintext} {
			if strings.Contains(string(ds[i].Message.Payload), secret) {
				t.Fatalf("%s carries a plaintext key", ds[i].Message.Type)
			}
		}
	}
	want := []string{"key.created", "key.updated", "key.rolled", "key.revoked", "member.created", "member.deleted"}
	if len(types) != len(want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("events %v, want %v", types, want)
		}
	}
}
