package portal_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

// TestLeakedKeyBanner: a key GitHub reported (and keyplane revoked) shows a
// banner with where it was found and a one-click roll, which issues a new
// key of the same settings; the leaked key stays revoked.
func TestLeakedKeyBanner(t *testing.T) {
	s := newServer(t)
	a := s.account("data:*")
	m := s.member(a.ID, keyplane.MemberDeveloper)
	k := s.key(a.ID, "worker")
	b := s.browser()
	b.signIn(m)

	p := b.get("/portal/keys/" + k.ID)
	wantNotBody(t, p, "This key has leaked")

	const where = "https://github.com/acme/app/blob/abc/config.go"
	if _, err := s.svc.ReportLeak(s.admin, service.LeakReport{Key: k.Plaintext, Source: keyplane.LeakSourceGitHub, URL: where}); err != nil {
		t.Fatal(err)
	}
	p = b.get("/portal/keys/" + k.ID)
	wantStatus(t, p, http.StatusOK)
	wantBody(t, p, "This key has leaked", "GitHub found it in public code", where, "It has been revoked", "Roll now", `name="overlap_seconds" value="0"`)
	wantNotBody(t, p, k.Plaintext)

	p = b.post("/portal/keys/"+k.ID+"/roll", url.Values{"csrf": {b.csrf()}, "overlap_seconds": {"0"}})
	wantStatus(t, p, http.StatusCreated)
	rolled := plaintextPattern.FindStringSubmatch(p.body)
	if rolled == nil || rolled[1] == k.Plaintext {
		t.Fatalf("roll page:\n%s", p.body)
	}
	old, err := s.svc.Key(s.admin, k.ID)
	if err != nil || old.RolledToID == "" || old.Status(s.clock.Now()) != keyplane.KeyRevoked || !old.RevokedAt.Equal(*old.LeakedAt) {
		t.Fatalf("the leaked key after the roll: %+v, %v", old, err)
	}
	next, err := s.svc.Key(s.admin, old.RolledToID)
	if err != nil || next.Status(s.clock.Now()) != keyplane.KeyActive || next.Name != "worker" || next.LeakedAt != nil {
		t.Fatalf("the new key: %+v, %v", next, err)
	}
	// Rolled once: no second roll offered.
	wantNotBody(t, b.get("/portal/keys/"+k.ID), "Roll now")
	// A revoked key that did not leak still cannot be rolled.
	other := s.key(a.ID, "other")
	if _, err := s.svc.RevokeKey(s.admin, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.RollKey(s.admin, other.ID, 0); keyplane.ErrorCode(err) != keyplane.ECONFLICT {
		t.Fatalf("rolling a revoked key: %v", err)
	}
}
