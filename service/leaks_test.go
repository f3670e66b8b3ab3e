package service_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/teststore"
	"github.com/keyplane/keyplane/webhooks"
)

func newLeakService(t *testing.T, action keyplane.LeakAction) (*service.Service, keyplane.Store, context.Context) {
	t.Helper()
	store := teststore.New(t)
	key := make([]byte, 32)
	rand.Read(key)
	box, err := webhooks.NewSecretBox(key)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(store, service.Config{WebhookSecrets: box, LeakAction: action})
	if err != nil {
		t.Fatal(err)
	}
	return svc, store, keyplane.NewContextWithActor(context.Background(), keyplane.Actor{Kind: "token", ID: "tok_test", Role: keyplane.RoleAdmin})
}

// TestReportLeak: each action does what it says, records leaked_at and the
// source, audits key.leaked and raises the key.leaked webhook with the
// change; a second report changes nothing; neither carries the key.
func TestReportLeak(t *testing.T) {
	for _, tc := range []struct {
		action      keyplane.LeakAction
		status      keyplane.KeyStatus
		wantWebhook []string
	}{
		{keyplane.LeakRevoke, keyplane.KeyRevoked, []string{"key.created", "key.revoked", "key.leaked"}},
		{keyplane.LeakDisable, keyplane.KeyDisabled, []string{"key.created", "key.leaked"}},
		{keyplane.LeakNotify, keyplane.KeyActive, []string{"key.created", "key.leaked"}},
	} {
		t.Run(string(tc.action), func(t *testing.T) {
			svc, store, admin := newLeakService(t, tc.action)
			acc, _ := svc.CreateAccount(admin, service.AccountInput{Name: "Acme"})
			w, err := svc.CreateWebhook(admin, acc.ID, service.WebhookInput{URL: "https://hooks.example.com/", Events: []string{"key.*"}})
			if err != nil {
				t.Fatal(err)
			}
			k, err := svc.CreateKey(admin, acc.ID, service.KeyInput{Name: "k"})
			if err != nil {
				t.Fatal(err)
			}
			const where = "https://github.com/acme/app/blob/abc/config.go#L3"
			res, err := svc.ReportLeak(admin, service.LeakReport{Key: k.Plaintext, Source: keyplane.LeakSourceReport, URL: where})
			if err != nil {
				t.Fatal(err)
			}
			if !res.First || res.Key.LeakedAt == nil || res.Key.LeakSource != keyplane.LeakSourceReport || res.Key.LeakURL != where {
				t.Fatalf("first report: %+v", res)
			}
			if st := res.Key.Status(*res.Key.LeakedAt); st != tc.status {
				t.Fatalf("status %s, want %s", st, tc.status)
			}
			again, err := svc.ReportLeak(keyplane.NewContextWithActor(context.Background(), service.GitHubScanner),
				service.LeakReport{Key: k.Plaintext, Source: keyplane.LeakSourceGitHub, URL: "https://github.com/elsewhere"})
			if err != nil {
				t.Fatal(err)
			}
			if again.First || !again.Key.LeakedAt.Equal(*res.Key.LeakedAt) || again.Key.LeakSource != keyplane.LeakSourceReport || !again.Key.UpdatedAt.Equal(res.Key.UpdatedAt) {
				t.Fatalf("second report changed the key: %+v", again.Key)
			}
			read, err := svc.Key(admin, k.ID)
			if err != nil || read.LeakedAt == nil || read.LeakURL != where {
				t.Fatalf("read back: %+v, %v", read, err)
			}

			events, _, err := svc.ListAudit(admin, service.AuditFilter{KeyID: k.ID, Type: keyplane.AuditKeyLeaked})
			if err != nil || len(events) != 1 {
				t.Fatalf("%d key.leaked audit events, %v", len(events), err)
			}
			details, _ := json.Marshal(events[0].Details)
			if !strings.Contains(string(details), where) || !strings.Contains(string(details), `"report"`) || strings.Contains(string(details), k.Plaintext) {
				t.Fatalf("audit details %s", details)
			}
			ds, _, err := store.ListWebhookDeliveries(admin, w.ID, keyplane.Page{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			for i := len(ds) - 1; i >= 0; i-- {
				types = append(types, ds[i].Message.Type)
				if strings.Contains(string(ds[i].Message.Payload), k.Plaintext) {
					t.Fatalf("%s carries the key", ds[i].Message.Type)
				}
			}
			if strings.Join(types, " ") != strings.Join(tc.wantWebhook, " ") {
				t.Fatalf("webhooks %v, want %v", types, tc.wantWebhook)
			}
		})
	}
}

// TestReportLeakRefusals: unknown keys, bad checksums, other prefixes, bad
// URLs, members and verify-only tokens.
func TestReportLeakRefusals(t *testing.T) {
	svc, _, admin := newLeakService(t, "")
	acc, _ := svc.CreateAccount(admin, service.AccountInput{Name: "Acme"})
	k, err := svc.CreateKey(admin, acc.ID, service.KeyInput{Name: "k"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.ReportLeak(admin, service.LeakReport{Key: apikey.New("kp", "live"), Source: keyplane.LeakSourceReport})
	wantCode(t, err, keyplane.ENOTFOUND)
	bad := k.Plaintext[:len(k.Plaintext)-1] + flip(k.Plaintext[len(k.Plaintext)-1])
	_, err = svc.ReportLeak(admin, service.LeakReport{Key: bad, Source: keyplane.LeakSourceReport})
	wantCode(t, err, keyplane.EINVALID)
	if strings.Contains(err.Error(), bad) {
		t.Fatalf("error repeats the key: %v", err)
	}
	_, err = svc.ReportLeak(admin, service.LeakReport{Key: apikey.New("zz", "live"), Source: keyplane.LeakSourceReport})
	wantCode(t, err, keyplane.EINVALID)
	for _, u := range []string{"ftp://x", "not a url", "https://x/" + k.Plaintext, "https://x/" + strings.Repeat("a", service.MaxLeakURLLength)} {
		_, err = svc.ReportLeak(admin, service.LeakReport{Key: k.Plaintext, Source: keyplane.LeakSourceReport, URL: u})
		wantCode(t, err, keyplane.EINVALID)
		if e, ok := err.(*keyplane.Error); !ok || len(e.Fields) != 1 || e.Fields[0].Field != "source_url" {
			t.Fatalf("%q: %v", u, err)
		}
	}
	verifier := keyplane.NewContextWithActor(context.Background(), keyplane.Actor{Kind: "token", ID: "tok_v", Role: keyplane.RoleVerify})
	_, err = svc.ReportLeak(verifier, service.LeakReport{Key: k.Plaintext, Source: keyplane.LeakSourceReport})
	wantCode(t, err, keyplane.EFORBIDDEN)
	_, err = svc.ReportLeak(memberCtx(acc.ID, keyplane.MemberOwner), service.LeakReport{Key: k.Plaintext, Source: keyplane.LeakSourceReport})
	wantCode(t, err, keyplane.EFORBIDDEN)
	if read, _ := svc.Key(admin, k.ID); read.LeakedAt != nil || read.RevokedAt != nil {
		t.Fatalf("a refused report changed the key: %+v", read)
	}
	if _, err := service.New(teststore.New(t), service.Config{LeakAction: "explode"}); err == nil {
		t.Fatal("an unknown leak action was accepted")
	}
}
