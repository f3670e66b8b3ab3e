package portal_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
)

// The member routes of the API: change your own password (other sessions
// end), reset links, delete; another account's members are 404 on each.
func TestMemberCredentialsOverAPI(t *testing.T) {
	s := newServer(t)
	a := s.account()
	owner := s.member(a.ID, keyplane.MemberOwner)
	dev := s.member(a.ID, keyplane.MemberDeveloper)
	other := s.account()
	stranger := s.member(other.ID, keyplane.MemberOwner)

	ob := s.browser()
	ob.signIn(owner)
	ocsrf := ob.csrf()
	db, elsewhere := s.browser(), s.browser()
	db.signIn(dev)
	elsewhere.signIn(dev)
	dcsrf := db.csrf()

	// Another account's member: 404 on every new route, for an owner.
	for _, p := range []page{
		ob.api("POST", "/v1/members/"+stranger.ID+"/password", `{"current_password":"`+pw+`","new_password":"something else entirely"}`, ocsrf),
		ob.api("POST", "/v1/members/"+stranger.ID+"/password-reset", "", ocsrf),
		ob.api("DELETE", "/v1/members/"+stranger.ID, "", ocsrf),
		ob.post("/portal/members/"+stranger.ID+"/delete", url.Values{"csrf": {ocsrf}}),
		ob.post("/portal/members/"+stranger.ID+"/reset", url.Values{"csrf": {ocsrf}}),
	} {
		wantStatus(t, p, http.StatusNotFound)
	}
	// Someone else's password: refused, even for an owner of the account.
	wantStatus(t, ob.api("POST", "/v1/members/"+dev.ID+"/password", `{"current_password":"`+pw+`","new_password":"something else entirely"}`, ocsrf), http.StatusForbidden)
	// A wrong current password names the field.
	p := db.api("POST", "/v1/members/"+dev.ID+"/password", `{"current_password":"wrong password","new_password":"something else entirely"}`, dcsrf)
	wantStatus(t, p, http.StatusBadRequest)
	wantBody(t, p, "current_password")
	// The right one: 204; this session stays, the other ends.
	wantStatus(t, db.api("POST", "/v1/members/"+dev.ID+"/password", `{"current_password":"`+pw+`","new_password":"something else entirely"}`, dcsrf), http.StatusNoContent)
	wantStatus(t, db.get("/portal/keys"), http.StatusOK)
	if p := elsewhere.get("/portal/keys"); p.status != http.StatusSeeOther || !strings.Contains(p.header.Get("Location"), "ended") {
		t.Fatalf("the other session survived: %d %s", p.status, p.header.Get("Location"))
	}

	// A reset link from the API, used on the portal page.
	p = ob.api("POST", "/v1/members/"+dev.ID+"/password-reset", "", ocsrf)
	wantStatus(t, p, http.StatusCreated)
	var reset struct {
		ResetURL  string    `json:"reset_url"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(p.body), &reset); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(reset.ResetURL, s.url+"/portal/reset?token=") {
		t.Fatalf("reset url %q", reset.ResetURL)
	}
	anon := s.browser()
	path := strings.TrimPrefix(reset.ResetURL, s.url)
	wantBody(t, anon.get(path), dev.Email, "Set a new password")
	token := mustURL(reset.ResetURL).Query().Get("token")
	form := url.Values{"token": {token}, "password": {"the reset password!"}, "password_again": {"the reset password!"}}
	if p := anon.post("/portal/reset", form); p.status != http.StatusSeeOther {
		t.Fatalf("reset: %d %s", p.status, p.body)
	}
	if p := db.get("/portal/keys"); p.status != http.StatusSeeOther {
		t.Fatalf("a session survived the reset: %d", p.status)
	}
	// Once only.
	wantStatus(t, anon.post("/portal/reset", form), http.StatusNotFound)
	wantStatus(t, anon.get(path), http.StatusNotFound)
	signed := s.browser()
	if p := signed.post("/portal/signin", url.Values{"email": {dev.Email}, "password": {"the reset password!"}}); p.status != http.StatusSeeOther {
		t.Fatalf("sign in with the reset password: %d", p.status)
	}

	// Delete: not the last owner; the deleted member's sessions end.
	wantStatus(t, ob.api("DELETE", "/v1/members/"+owner.ID, "", ocsrf), http.StatusConflict)
	wantStatus(t, ob.api("DELETE", "/v1/members/"+dev.ID, "", ocsrf), http.StatusNoContent)
	if p := signed.get("/portal/keys"); p.status != http.StatusSeeOther {
		t.Fatalf("the deleted member is still signed in: %d", p.status)
	}
	wantStatus(t, ob.api("DELETE", "/v1/members/"+dev.ID, "", ocsrf), http.StatusNotFound)
	// The operator's token may delete and reset too.
	req, _ := http.NewRequest("POST", s.url+"/v1/members/"+stranger.ID+"/password-reset", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	wantStatus(t, s.browser().do(req), http.StatusCreated)
}

// The portal's pages: change your password; owners get a reset link and
// delete members from the members page.
func TestMemberCredentialsPages(t *testing.T) {
	s := newServer(t)
	a := s.account()
	owner := s.member(a.ID, keyplane.MemberOwner)
	dev := s.member(a.ID, keyplane.MemberDeveloper)
	ob := s.browser()
	ob.signIn(owner)
	csrf := ob.csrf()

	wantBody(t, ob.get("/portal/account/password"), "Current password")
	p := ob.post("/portal/account/password", url.Values{"csrf": {csrf}, "current_password": {"wrong"}, "password": {"new password here"}, "password_again": {"new password here"}})
	wantStatus(t, p, http.StatusBadRequest)
	wantBody(t, p, "is not your current password")
	p = ob.post("/portal/account/password", url.Values{"csrf": {csrf}, "current_password": {pw}, "password": {"new password here"}, "password_again": {"new password here"}})
	wantStatus(t, p, http.StatusSeeOther)

	p = ob.post("/portal/members/"+dev.ID+"/reset", url.Values{"csrf": {csrf}})
	wantStatus(t, p, http.StatusCreated)
	link := regexp.MustCompile(`id="reset-link" class="mono" readonly value="([^"]+)"`).FindStringSubmatch(p.body)
	if link == nil {
		t.Fatalf("no reset link shown: %s", p.body)
	}
	resetPath := strings.TrimPrefix(strings.ReplaceAll(link[1], "&amp;", "&"), s.url)
	wantStatus(t, s.browser().get(resetPath), http.StatusOK)
	// An hour later it no longer works.
	s.clock.Add(time.Hour)
	wantStatus(t, s.browser().get(resetPath), http.StatusNotFound)
	wantStatus(t, s.browser().post("/portal/reset", url.Values{"token": {mustURL(link[1]).Query().Get("token")}, "password": {"too late password"}, "password_again": {"too late password"}}), http.StatusNotFound)

	ob = s.browser()
	if p := ob.post("/portal/signin", url.Values{"email": {owner.Email}, "password": {"new password here"}}); p.status != http.StatusSeeOther {
		t.Fatalf("sign in with the changed password: %d", p.status)
	}
	csrf = ob.csrf()
	wantStatus(t, ob.post("/portal/members/"+dev.ID+"/delete", url.Values{"csrf": {csrf}}), http.StatusSeeOther)
	wantBody(t, ob.get("/portal/members?done=deleted"), "Member deleted")
	wantNotBody(t, ob.get("/portal/members"), dev.Email)
	wantStatus(t, ob.post("/portal/members/"+owner.ID+"/delete", url.Values{"csrf": {csrf}}), http.StatusConflict)
}
