package portal_test

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

// useKey verifies a key n times and reports the upstream's answers, as an
// API would, then flushes the meter so the usage is stored.
func (s *server) useKey(k *service.CreatedKey, endpoint string, n int, status int, latency time.Duration) {
	s.t.Helper()
	var reqs []service.ReportedRequest
	for range n {
		res, err := s.svc.Verify(context.Background(), keyplane.VerifyRequest{Key: k.Plaintext, Endpoint: endpoint, IP: netip.MustParseAddr("192.0.2.1"), Cost: 1})
		if err != nil || res.Code != keyplane.VerifyValid {
			s.t.Fatalf("verify: %v %v", res.Code, err)
		}
		reqs = append(reqs, service.ReportedRequest{KeyID: k.ID, Endpoint: endpoint, Status: status, Latency: latency})
	}
	if err := s.svc.ReportUsage(s.admin, reqs); err != nil {
		s.t.Fatal(err)
	}
	if err := s.meter.Flush(context.Background()); err != nil {
		s.t.Fatal(err)
	}
}

func TestUsagePage(t *testing.T) {
	s := newServer(t)
	a := s.account()
	k := s.key(a.ID, "busy")
	b := s.browser()
	b.signIn(s.member(a.ID, keyplane.MemberViewer))

	p := b.get("/portal/keys/" + k.ID + "/usage")
	wantStatus(t, p, http.StatusOK)
	wantBody(t, p, "No requests in this range")

	s.useKey(k, "GET /v1/orders", 7, 200, 20*time.Millisecond)
	s.useKey(k, "POST /v1/orders", 3, 503, 80*time.Millisecond)
	p = b.get("/portal/keys/" + k.ID + "/usage?range=1h")
	wantStatus(t, p, http.StatusOK)
	wantBody(t, p, "<svg", "<polyline", `role="img"`, "Requests: 10", "Errors (5xx): 3", "GET /v1/orders", "POST /v1/orders",
		"p99", "The numbers as a table")
	if len(p.body) > 100<<10 {
		t.Fatalf("usage page is %d bytes", len(p.body))
	}
	// The keys list shows the last use.
	wantNotBody(t, b.get("/portal/keys"), ">never<")
	// Another account's key has no usage page for this member.
	other := s.key(s.account().ID, "theirs")
	wantStatus(t, b.get("/portal/keys/"+other.ID+"/usage"), http.StatusNotFound)
	for _, r := range []string{"24h", "7d", "30d", "bogus"} {
		wantStatus(t, b.get("/portal/keys/"+k.ID+"/usage?range="+r), http.StatusOK)
	}
}

func TestAuditPage(t *testing.T) {
	s := newServer(t)
	a := s.account()
	dev := s.member(a.ID, keyplane.MemberDeveloper)
	b := s.browser()
	b.signIn(dev)
	csrf := b.csrf()
	p := b.post("/portal/keys", map[string][]string{"csrf": {csrf}, "name": {"audited"}})
	wantStatus(t, p, http.StatusCreated)
	keys, _, _ := s.svc.ListKeys(s.admin, a.ID, "", keyplane.Page{})
	k := keys[0]
	wantStatus(t, b.post("/portal/keys/"+k.ID+"/revoke", map[string][]string{"csrf": {csrf}}), http.StatusSeeOther)

	p = b.get("/portal/audit")
	wantStatus(t, p, http.StatusOK)
	wantBody(t, p, "key.created", "key.revoked", ">you<")
	p = b.get("/portal/audit?type=key.revoked")
	wantBody(t, p, "key.revoked")
	wantNotBody(t, p, "<code>key.created</code>")
	p = b.get("/portal/audit?key_id=" + k.ID)
	wantBody(t, p, "key.created", "key.revoked")
	if strings.Contains(p.body, "kp_live_") && !strings.Contains(p.body, k.Hint) {
		t.Fatal("a key's plaintext reached the audit page")
	}
	wantStatus(t, b.get("/portal/audit?type=Not+A+Type"), http.StatusBadRequest)
}
