package portal_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/httpapi"
	"github.com/keyplane/keyplane/portal"
	"github.com/keyplane/keyplane/service"
)

var plaintextPattern = regexp.MustCompile(`value="(kp_(live|test)_[0-9A-Za-z]{36})"`)

func TestSignIn(t *testing.T) {
	s := newServer(t)
	a := s.account()
	m := s.member(a.ID, keyplane.MemberDeveloper)
	b := s.browser()

	// Not signed in: every page sends to the sign-in page.
	p := b.get("/portal/keys")
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/portal/signin" {
		t.Fatalf("keys without a session: %d %s", p.status, p.header.Get("Location"))
	}

	// A wrong password: refused with a clear message, no cookie.
	p = b.post("/portal/signin", url.Values{"email": {m.Email}, "password": {"not the password"}})
	wantStatus(t, p, http.StatusUnauthorized)
	wantBody(t, p, "wrong email or password", `value="`+m.Email+`"`)
	if p.header.Get("Set-Cookie") != "" {
		t.Fatalf("a failed sign-in set a cookie: %s", p.header.Get("Set-Cookie"))
	}

	// The right one: a session cookie, HttpOnly and SameSite=Lax.
	p = b.post("/portal/signin", url.Values{"email": {strings.ToUpper(m.Email)}, "password": {pw}})
	wantStatus(t, p, http.StatusSeeOther)
	cookie := p.header.Get("Set-Cookie")
	for _, attr := range []string{"keyplane_session=", "Path=/", "HttpOnly", "SameSite=Lax", "Expires="} {
		if !strings.Contains(cookie, attr) {
			t.Fatalf("cookie %q lacks %s", cookie, attr)
		}
	}
	p = b.get("/portal/keys")
	wantStatus(t, p, http.StatusOK)
	wantBody(t, p, m.Email, "No keys yet", "Create your first key", `<html lang="en">`)

	// Sign-out needs the CSRF token, deletes the session, and the old
	// cookie no longer works.
	old := b.client.Jar.Cookies(mustURL(s.url))
	wantStatus(t, b.post("/portal/signout", url.Values{}), http.StatusForbidden)
	p = b.post("/portal/signout", url.Values{"csrf": {b.csrf()}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/portal/signin?out=1" {
		t.Fatalf("sign out: %d %s", p.status, p.header.Get("Location"))
	}
	replay := s.browser()
	replay.client.Jar.SetCookies(mustURL(s.url), old)
	if p := replay.get("/portal/keys"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/portal/signin?ended=1" {
		t.Fatalf("signed-out cookie: %d %s", p.status, p.header.Get("Location"))
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestSecureCookie(t *testing.T) {
	if portal.CookieName(true) != "__Host-keyplane_session" || portal.CookieName(false) != "keyplane_session" {
		t.Fatal("cookie names")
	}
	s := newServer(t)
	m := s.member(s.account().ID, keyplane.MemberViewer)
	p, err := portal.New(portal.Config{Service: s.svc, Logger: slog.New(slog.DiscardHandler), CookieSecure: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Service: s.svc, Store: s.store, Logger: slog.New(slog.DiscardHandler), Portal: p, SessionCookie: p.CookieName()}))
	defer srv.Close()
	b := s.browser()
	req, _ := http.NewRequest("POST", srv.URL+"/portal/signin", strings.NewReader(url.Values{"email": {m.Email}, "password": {pw}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp := b.do(req)
	wantStatus(t, resp, http.StatusSeeOther)
	cookie := resp.header.Get("Set-Cookie")
	for _, attr := range []string{"__Host-keyplane_session=", "Path=/", "Secure", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(cookie, attr) {
			t.Fatalf("cookie %q lacks %s", cookie, attr)
		}
	}
	if strings.Contains(cookie, "Domain=") {
		t.Fatalf("cookie %q names a domain; __Host- cookies must not", cookie)
	}
	// The API reads the same cookie, and only under its own name: the
	// insecure name is no credential on a secure deployment.
	token := strings.TrimPrefix(strings.Split(cookie, ";")[0], "__Host-keyplane_session=")
	bare := &browser{s: s, client: &http.Client{}} // no jar: only the cookie set here
	for name, status := range map[string]int{"__Host-keyplane_session": http.StatusOK, "keyplane_session": http.StatusUnauthorized} {
		api, _ := http.NewRequest("GET", srv.URL+"/v1/accounts/"+m.AccountID, nil)
		api.AddCookie(&http.Cookie{Name: name, Value: token})
		wantStatus(t, bare.do(api), status)
	}
}

func TestSessionExpiry(t *testing.T) {
	s := newServer(t)
	a := s.account()
	m := s.member(a.ID, keyplane.MemberViewer)
	b := s.browser()
	b.signIn(m)
	wantStatus(t, b.get("/portal/keys"), http.StatusOK)
	s.clock.Add(service.DefaultSessionIdle + time.Second)
	p := b.get("/portal/keys")
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/portal/signin?ended=1" {
		t.Fatalf("idle session: %d %s", p.status, p.header.Get("Location"))
	}
	if !strings.Contains(p.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("the dead cookie was not cleared: %q", p.header.Get("Set-Cookie"))
	}
	wantBody(t, b.get("/portal/signin?ended=1"), "Your session has ended")
	// The API answers an expired session with 401.
	b.signIn(m)
	s.clock.Add(service.DefaultSessionMax)
	wantStatus(t, b.api("GET", "/v1/accounts/"+a.ID+"/keys", "", ""), http.StatusUnauthorized)
}

func TestKeyLifecycle(t *testing.T) {
	s := newServer(t)
	a := s.account("data:*", "billing:read")
	m := s.member(a.ID, keyplane.MemberDeveloper)
	b := s.browser()
	b.signIn(m)
	csrf := b.csrf()

	form := b.get("/portal/keys/new")
	wantStatus(t, form, http.StatusOK)
	wantBody(t, form, `value="data:*"`, `value="billing:read"`, `<label for="name">`)

	// Bad input: shown with the field, nothing created.
	p := b.post("/portal/keys", url.Values{"csrf": {csrf}, "name": {"worker"}, "scope": {"data:*"}, "cidrs": {"10.0.0.0/33"}, "environment": {"live"}})
	wantStatus(t, p, http.StatusBadRequest)
	wantBody(t, p, "The key was not created", `id="cidrs-err"`, `value="worker"`)
	p = b.post("/portal/keys", url.Values{"csrf": {csrf}, "name": {"worker"}, "other_scopes": {"admin:write"}})
	wantStatus(t, p, http.StatusBadRequest)
	if keys, _, _ := s.svc.ListKeys(s.admin, a.ID, "", keyplane.Page{}); len(keys) != 0 {
		t.Fatalf("refused forms created %d keys", len(keys))
	}

	// Created: the plaintext once, with a copy button.
	p = b.post("/portal/keys", url.Values{"csrf": {csrf}, "name": {"worker"}, "scope": {"data:*"}, "other_scopes": {"billing:read"},
		"environment": {"test"}, "expires": {"2099-12-31"}, "cidrs": {"10.0.0.0/8\n2001:db8::/32"}})
	wantStatus(t, p, http.StatusCreated)
	wantBody(t, p, "shown only this once", `data-copy="secret"`)
	match := plaintextPattern.FindStringSubmatch(p.body)
	if match == nil {
		t.Fatalf("no key on the created page:\n%s", p.body)
	}
	plaintext := match[1]
	if _, ok := apikey.Parse(plaintext, "kp"); !ok || !strings.HasPrefix(plaintext, "kp_test_") {
		t.Fatalf("plaintext %q", plaintext)
	}
	keys, _, _ := s.svc.ListKeys(s.admin, a.ID, "", keyplane.Page{})
	if len(keys) != 1 || keys[0].Name != "worker" || len(keys[0].AllowedCIDRs) != 2 || strings.Join(keys[0].Scopes, " ") != "billing:read data:*" ||
		!keys[0].ExpiresAt.Equal(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("stored %+v", keys[0])
	}
	k := keys[0]

	// Listed and shown by hint only, never again in full.
	for _, path := range []string{"/portal/keys", "/portal/keys/" + k.ID} {
		p = b.get(path)
		wantStatus(t, p, http.StatusOK)
		wantBody(t, p, k.Hint)
		wantNotBody(t, p, plaintext)
	}

	// Rolled with an overlap: a new key once; the old one keeps working.
	p = b.post("/portal/keys/"+k.ID+"/roll", url.Values{"csrf": {csrf}, "overlap_seconds": {"3600"}})
	wantStatus(t, p, http.StatusCreated)
	wantBody(t, p, "keeps working until")
	rolled := plaintextPattern.FindStringSubmatch(p.body)
	if rolled == nil || rolled[1] == plaintext {
		t.Fatalf("roll page:\n%s", p.body)
	}
	if old, _ := s.svc.Key(s.admin, k.ID); old.Status(s.clock.Now()) != keyplane.KeyRolling {
		t.Fatalf("old key is %s after a roll with overlap", old.Status(s.clock.Now()))
	}

	// Revoked after a confirmation page.
	p = b.get("/portal/keys/" + k.ID + "/revoke")
	wantStatus(t, p, http.StatusOK)
	wantBody(t, p, "Yes, revoke this key", "No, keep it")
	if old, _ := s.svc.Key(s.admin, k.ID); old.RevokedAt != nil {
		t.Fatal("the confirmation page revoked the key")
	}
	p = b.post("/portal/keys/"+k.ID+"/revoke", url.Values{"csrf": {csrf}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("revoke: %d %s", p.status, p.body)
	}
	p = b.get(p.header.Get("Location"))
	wantBody(t, p, "The key was revoked", "status-revoked")
	wantNotBody(t, p, "Roll key", "Revoke key…")
}

func TestMissingCSRFChangesNothing(t *testing.T) {
	s := newServer(t)
	a := s.account()
	m := s.member(a.ID, keyplane.MemberOwner)
	k := s.key(a.ID, "precious")
	b := s.browser()
	b.signIn(m)
	for _, form := range []struct {
		path string
		data url.Values
	}{
		{"/portal/keys", url.Values{"name": {"sneaky"}}},
		{"/portal/keys/" + k.ID + "/revoke", nil},
		{"/portal/keys/" + k.ID + "/roll", url.Values{"overlap_seconds": {"0"}}},
		{"/portal/members/invite", url.Values{"email": {"evil@example.com"}, "role": {"owner"}}},
	} {
		for _, csrf := range []string{"", "forged", service.CSRFToken("another session")} {
			data := url.Values{}
			for k, v := range form.data {
				data[k] = v
			}
			if csrf != "" {
				data.Set("csrf", csrf)
			}
			p := b.post(form.path, data)
			wantStatus(t, p, http.StatusForbidden)
			wantBody(t, p, "no valid security token")
		}
	}
	// A form posted from another site is refused before anything else.
	req, _ := http.NewRequest("POST", s.url+"/portal/keys/"+k.ID+"/revoke", strings.NewReader("csrf="+url.QueryEscape(b.csrf())))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	wantStatus(t, b.do(req), http.StatusForbidden)

	keys, _, _ := s.svc.ListKeys(s.admin, a.ID, "", keyplane.Page{})
	if len(keys) != 1 || keys[0].Status(s.clock.Now()) != keyplane.KeyActive {
		t.Fatalf("keys after refused forms: %+v", keys)
	}
	if inv, _ := s.svc.PendingInvites(s.admin, a.ID); len(inv) != 0 {
		t.Fatalf("invites after refused forms: %+v", inv)
	}
}

func TestOtherAccountsKeysAreNotFound(t *testing.T) {
	s := newServer(t)
	mine, theirs := s.account(), s.account()
	m := s.member(mine.ID, keyplane.MemberOwner)
	k := s.key(theirs.ID, "theirs")
	b := s.browser()
	b.signIn(m)
	csrf := b.csrf()
	for _, p := range []page{
		b.get("/portal/keys/" + k.ID),
		b.get("/portal/keys/" + k.ID + "/revoke"),
		b.post("/portal/keys/"+k.ID+"/revoke", url.Values{"csrf": {csrf}}),
		b.post("/portal/keys/"+k.ID+"/roll", url.Values{"csrf": {csrf}, "overlap_seconds": {"0"}}),
		b.api("GET", "/v1/keys/"+k.ID, "", ""),
		b.api("POST", "/v1/keys/"+k.ID+"/revoke", "", csrf),
		b.api("GET", "/v1/accounts/"+theirs.ID+"/keys", "", ""),
		b.api("POST", "/v1/accounts/"+theirs.ID+"/keys", `{"name":"x"}`, csrf),
	} {
		wantStatus(t, p, http.StatusNotFound)
	}
	got, _ := s.svc.Key(s.admin, k.ID)
	if got.Status(s.clock.Now()) != keyplane.KeyActive || got.RolledToID != "" {
		t.Fatalf("another account's key changed: %+v", got)
	}
	if keys, _, _ := s.svc.ListKeys(s.admin, theirs.ID, "", keyplane.Page{}); len(keys) != 1 {
		t.Fatalf("%d keys in the other account", len(keys))
	}
}

func TestViewerChangesNothing(t *testing.T) {
	s := newServer(t)
	a := s.account("data:*")
	viewer := s.member(a.ID, keyplane.MemberViewer)
	k := s.key(a.ID, "read me")
	b := s.browser()
	b.signIn(viewer)
	csrf := b.csrf()

	p := b.get("/portal/keys")
	wantStatus(t, p, http.StatusOK)
	wantBody(t, p, k.Hint)
	wantNotBody(t, p, "Create key", "/portal/keys/new")
	p = b.get("/portal/keys/" + k.ID)
	wantStatus(t, p, http.StatusOK)
	wantNotBody(t, p, "Roll key", "Revoke key", "/revoke", "/roll")
	wantNotBody(t, b.get("/portal/keys/"+k.ID), "<form method=\"post\" action=\"/portal/keys")
	wantStatus(t, b.get("/portal/members"), http.StatusForbidden)

	for _, p := range []page{
		b.post("/portal/keys/"+k.ID+"/revoke", url.Values{"csrf": {csrf}}),
		b.post("/portal/keys/"+k.ID+"/roll", url.Values{"csrf": {csrf}, "overlap_seconds": {"0"}}),
		b.post("/portal/keys", url.Values{"csrf": {csrf}, "name": {"mine"}}),
		b.post("/portal/members/invite", url.Values{"csrf": {csrf}, "email": {"friend@example.com"}, "role": {"owner"}}),
		b.post("/portal/members/"+viewer.ID, url.Values{"csrf": {csrf}, "role": {"owner"}}),
		b.api("POST", "/v1/keys/"+k.ID+"/revoke", "", csrf),
		b.api("POST", "/v1/accounts/"+a.ID+"/keys", `{"name":"mine"}`, csrf),
	} {
		wantStatus(t, p, http.StatusForbidden)
	}
	got, _ := s.svc.Key(s.admin, k.ID)
	if got.Status(s.clock.Now()) != keyplane.KeyActive || got.RolledToID != "" {
		t.Fatalf("the viewer changed the key: %+v", got)
	}
	if me, _ := s.store.Member(s.admin, viewer.ID); me.Role != keyplane.MemberViewer {
		t.Fatalf("the viewer promoted themselves to %s", me.Role)
	}
}

func TestAPIWithSession(t *testing.T) {
	s := newServer(t)
	a := s.account("data:*")
	b := s.browser()
	b.signIn(s.member(a.ID, keyplane.MemberDeveloper))
	csrf := b.csrf()

	wantStatus(t, b.api("GET", "/v1/accounts/"+a.ID+"/keys", "", ""), http.StatusOK)
	wantStatus(t, b.api("GET", "/v1/accounts/"+a.ID, "", ""), http.StatusOK)
	// Changes need the CSRF header.
	p := b.api("POST", "/v1/accounts/"+a.ID+"/keys", `{"name":"api"}`, "")
	wantStatus(t, p, http.StatusForbidden)
	wantBody(t, p, "X-CSRF-Token")
	wantStatus(t, b.api("POST", "/v1/accounts/"+a.ID+"/keys", `{"name":"api"}`, "wrong"), http.StatusForbidden)
	p = b.api("POST", "/v1/accounts/"+a.ID+"/keys", `{"name":"api","scopes":["data:read"]}`, csrf)
	wantStatus(t, p, http.StatusCreated)
	wantBody(t, p, `"key":"kp_live_`)
	// Usage and the account's audit log, for the member's own keys only.
	keys, _, _ := s.svc.ListKeys(s.admin, a.ID, "", keyplane.Page{})
	wantStatus(t, b.api("GET", "/v1/keys/"+keys[0].ID+"/usage", "", ""), http.StatusOK)
	wantBody(t, b.api("GET", "/v1/accounts/"+a.ID+"/audit", "", ""), "key.created", "member.signed_in")
	other := s.key(s.account().ID, "not mine")
	wantStatus(t, b.api("GET", "/v1/keys/"+other.ID+"/usage", "", ""), http.StatusNotFound)
	wantStatus(t, b.api("GET", "/v1/audit", "", ""), http.StatusForbidden)
	// Operator-only operations stay closed to members.
	wantStatus(t, b.api("GET", "/v1/accounts", "", ""), http.StatusForbidden)
	wantStatus(t, b.api("POST", "/v1/accounts", `{"name":"mine"}`, csrf), http.StatusForbidden)
	wantStatus(t, b.api("GET", "/v1/accounts/"+a.ID+"/members", "", ""), http.StatusForbidden)
	// A session cannot verify keys: that is for the operator's servers.
	wantStatus(t, b.api("POST", "/v1/verify", `{"key":"kp_live_x"}`, csrf), http.StatusUnauthorized)
}

func TestInviteFlow(t *testing.T) {
	s := newServer(t)
	a := s.account()
	owner := s.browser()
	owner.signIn(s.member(a.ID, keyplane.MemberOwner))
	csrf := owner.csrf()
	p := owner.post("/portal/members/invite", url.Values{"csrf": {csrf}, "email": {"not-an-email"}, "role": {"developer"}})
	wantStatus(t, p, http.StatusBadRequest)
	wantBody(t, p, "not an email address")

	p = owner.post("/portal/members/invite", url.Values{"csrf": {csrf}, "email": {"New.Dev@example.com"}, "role": {"developer"}})
	wantStatus(t, p, http.StatusCreated)
	link := regexp.MustCompile(`value="(http://[^"]+/portal/invite\?token=[^"]+)"`).FindStringSubmatch(p.body)
	if link == nil {
		t.Fatalf("no invite link:\n%s", p.body)
	}
	if p := owner.get("/portal/members"); strings.Contains(p.body, link[1]) || !strings.Contains(p.body, "new.dev@example.com as developer") {
		t.Fatalf("members page after the invite:\n%s", p.body)
	}

	invitee := s.browser()
	target := strings.TrimPrefix(link[1], s.url)
	p = invitee.get(target)
	wantStatus(t, p, http.StatusOK)
	wantBody(t, p, "new.dev@example.com", "developer")
	token := mustURL(link[1]).Query().Get("token")
	p = invitee.post("/portal/invite", url.Values{"token": {token}, "password": {pw}, "password_again": {pw + "x"}})
	wantStatus(t, p, http.StatusBadRequest)
	p = invitee.post("/portal/invite", url.Values{"token": {token}, "password": {pw}, "password_again": {pw}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/portal/keys" {
		t.Fatalf("accept: %d %s", p.status, p.body)
	}
	wantBody(t, invitee.get("/portal/keys"), "new.dev@example.com", "developer")
	// Used once.
	wantStatus(t, s.browser().get(target), http.StatusNotFound)

	// The operator's API makes invites too, with an absolute link.
	b := s.browser()
	req, _ := http.NewRequest("POST", s.url+"/v1/accounts/"+a.ID+"/members", strings.NewReader(`{"email":"ops@example.com","role":"owner"}`))
	req.Header.Set("Authorization", "Bearer "+s.token)
	p = b.do(req)
	wantStatus(t, p, http.StatusCreated)
	wantBody(t, p, `"invite_url":"`+s.url+`/portal/invite?token=`, `"role":"owner"`)
}

// TestPageWeight holds every page, with the stylesheet and script it loads,
// under 100 KB, and checks the basics of accessible markup.
func TestPageWeight(t *testing.T) {
	s := newServer(t)
	a := s.account("data:*")
	owner := s.member(a.ID, keyplane.MemberOwner)
	k := s.key(a.ID, "weighed")
	for range 20 {
		s.key(a.ID, "another key with a long name to fill the list")
	}
	s.useKey(k, "GET /v1/things", 5, 200, 10*time.Millisecond)
	b := s.browser()
	assets := 0
	for _, path := range []string{"/portal/static/portal.css", "/portal/static/portal.js"} {
		p := b.get(path)
		wantStatus(t, p, http.StatusOK)
		if p.header.Get("Cache-Control") == "" {
			t.Errorf("%s is not cacheable", path)
		}
		assets += len(p.body)
	}
	pages := []string{"/portal/signin"}
	b.signIn(owner)
	pages = append(pages, "/portal/keys", "/portal/keys/new", "/portal/keys/"+k.ID, "/portal/keys/"+k.ID+"/revoke",
		"/portal/keys/"+k.ID+"/usage", "/portal/audit", "/portal/members")
	for _, path := range pages {
		p := b.get(path)
		wantStatus(t, p, http.StatusOK)
		if total := len(p.body) + assets; total > 100<<10 {
			t.Errorf("%s: %d bytes with its assets, over 100 KB", path, total)
		}
		wantBody(t, p, `<html lang="en">`, `<meta name="viewport"`, `<main id="main"`, `href="#main"`)
		// Every visible form control has a label or an aria-label.
		for _, m := range regexp.MustCompile(`<(input|select|textarea)\b[^>]*>`).FindAllString(p.body, -1) {
			if strings.Contains(m, `type="hidden"`) || strings.Contains(m, `type="checkbox"`) || strings.Contains(m, `type="radio"`) || strings.Contains(m, "aria-label=") {
				continue // checkboxes and radios sit inside their <label>
			}
			id := regexp.MustCompile(`\bid="([^"]+)"`).FindStringSubmatch(m)
			if id == nil || !strings.Contains(p.body, `for="`+id[1]+`"`) {
				t.Errorf("%s: control without a label: %s", path, m)
			}
		}
		if p.header.Get("Content-Security-Policy") == "" || p.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: security headers %v", path, p.header)
		}
	}
	t.Logf("stylesheet and script: %d bytes", assets)
}

func TestSignUp(t *testing.T) {
	off := newServer(t).browser()
	wantNotBody(t, off.get("/portal/signin"), "/portal/signup")
	wantStatus(t, off.get("/portal/signup"), http.StatusNotFound)
	wantStatus(t, off.post("/portal/signup", url.Values{"account_name": {"Mine"}, "email": {"me@example.com"}, "password": {pw}, "password_again": {pw}}), http.StatusForbidden)

	s := newServerWith(t, service.Config{Signup: true})
	b := s.browser()
	wantBody(t, b.get("/portal/signin"), `href="/portal/signup"`)
	p := b.post("/portal/signup", url.Values{"account_name": {"Mine"}, "email": {"me@example.com"}, "password": {"short"}, "password_again": {"short"}})
	wantStatus(t, p, http.StatusBadRequest)
	wantBody(t, p, "at least 12 characters", `value="Mine"`)
	p = b.post("/portal/signup", url.Values{"account_name": {"Mine"}, "email": {"me@example.com"}, "password": {pw}, "password_again": {pw}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("sign-up: %d %s", p.status, p.body)
	}
	p = b.get("/portal/keys")
	wantBody(t, p, "me@example.com", "owner", "Mine", "No keys yet")
	wantStatus(t, b.get("/portal/members"), http.StatusOK)
}

// A form posted to the sign-in page from another site is refused: another
// site cannot sign a visitor in to an account of its choosing.
func TestCrossSiteSignInRefused(t *testing.T) {
	s := newServer(t)
	m := s.member(s.account().ID, keyplane.MemberOwner)
	b := s.browser()
	req, _ := http.NewRequest("POST", s.url+"/portal/signin", strings.NewReader(url.Values{"email": {m.Email}, "password": {pw}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	p := b.do(req)
	wantStatus(t, p, http.StatusForbidden)
	if p.header.Get("Set-Cookie") != "" {
		t.Fatal("a cross-site sign-in set a cookie")
	}
	wantBody(t, p, "sent from https://evil.example but the portal is at "+strings.TrimPrefix(s.url, "http://"))
	// Origin: null (a page with no-referrer, a sandboxed frame) says so.
	req, _ = http.NewRequest("POST", s.url+"/portal/signin", strings.NewReader(url.Values{"email": {m.Email}, "password": {pw}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "null")
	p = b.do(req)
	wantStatus(t, p, http.StatusForbidden)
	wantBody(t, p, "did not say which site sent it (Origin: null)")
	// The pages send their origin as referrer (never a path: links carry
	// tokens), so their own forms carry an Origin.
	if got := b.get("/portal/signin").header.Get("Referrer-Policy"); got != "strict-origin" {
		t.Fatalf("Referrer-Policy %q", got)
	}
}

// With the portal off there are no pages, and a session cookie is no
// credential on the API.
func TestPortalOff(t *testing.T) {
	s := newServer(t)
	a := s.account()
	b := s.browser()
	b.signIn(s.member(a.ID, keyplane.MemberOwner))
	off := httptest.NewServer(httpapi.New(httpapi.Config{Service: s.svc, Store: s.store, Logger: slog.New(slog.DiscardHandler), Version: "test"}))
	defer off.Close()
	cookies := b.client.Jar.Cookies(mustURL(s.url))
	for path, status := range map[string]int{"/portal/signin": http.StatusNotFound, "/v1/accounts/" + a.ID + "/keys": http.StatusUnauthorized} {
		req, _ := http.NewRequest("GET", off.URL+path, nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		if p := b.do(req); p.status != status {
			t.Errorf("%s with the portal off: %d, want %d: %s", path, p.status, status, p.body)
		}
	}
}

// One email, several accounts: an owner inviting it learns nothing of the
// others, and signing in asks which account when the password opens more
// than one.
func TestOneEmailSeveralAccounts(t *testing.T) {
	s := newServer(t)
	named := func(name string) *keyplane.Account {
		a, err := s.svc.CreateAccount(s.admin, service.AccountInput{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	first, second := named("First Corp"), named("Second Corp")
	ada, err := s.svc.CreateMember(s.admin, first.ID, service.MemberInput{Email: "ada@example.com", Role: keyplane.MemberDeveloper, Password: pw})
	if err != nil {
		t.Fatal(err)
	}

	owner := s.browser()
	owner.signIn(s.member(second.ID, keyplane.MemberOwner))
	csrf := owner.csrf()
	p := owner.post("/portal/members/invite", url.Values{"csrf": {csrf}, "email": {"Ada@example.com"}, "role": {"viewer"}})
	wantStatus(t, p, http.StatusCreated)
	link := regexp.MustCompile(`value="http://[^"]+/portal/invite\?token=([^"]+)"`).FindStringSubmatch(p.body)
	if link == nil {
		t.Fatalf("no invite link:\n%s", p.body)
	}
	// Accepting signs in to the account that invited, though the password
	// is the same as for the other.
	invitee := s.browser()
	p = invitee.post("/portal/invite", url.Values{"token": {link[1]}, "password": {pw}, "password_again": {pw}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/portal/keys" {
		t.Fatalf("accept: %d %s", p.status, p.body)
	}
	wantBody(t, invitee.get("/portal/keys"), "Second Corp", "viewer")
	// The account's own member is still a conflict.
	p = owner.post("/portal/members/invite", url.Values{"csrf": {csrf}, "email": {"ada@example.com"}, "role": {"viewer"}})
	wantStatus(t, p, http.StatusConflict)
	// So is the API's answer: 201 for another account's member.
	third := named("Third Corp")
	req, _ := http.NewRequest("POST", s.url+"/v1/accounts/"+third.ID+"/members", strings.NewReader(`{"email":"ada@example.com","role":"owner"}`))
	req.Header.Set("Authorization", "Bearer "+s.token)
	wantStatus(t, s.browser().do(req), http.StatusCreated)

	// Signing in with the password of both memberships asks which account;
	// the page does not carry the password back.
	b := s.browser()
	p = b.post("/portal/signin", url.Values{"email": {"ada@example.com"}, "password": {pw}})
	wantStatus(t, p, http.StatusOK)
	wantBody(t, p, "Choose an account", "First Corp", "Second Corp", `name="account" value="`+first.ID+`"`)
	wantNotBody(t, p, pw, "Third Corp")
	if c := p.header.Get("Set-Cookie"); c != "" {
		t.Fatalf("a cookie before an account was chosen: %s", c)
	}
	p = b.post("/portal/signin", url.Values{"email": {"ada@example.com"}, "password": {pw}, "account": {first.ID}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/portal/keys" {
		t.Fatalf("sign in to the chosen account: %d %s", p.status, p.body)
	}
	wantBody(t, b.get("/portal/keys"), "First Corp", "developer")
	// A wrong password with an account chosen keeps the choice.
	p = s.browser().post("/portal/signin", url.Values{"email": {ada.Email}, "password": {"not the password"}, "account": {second.ID}})
	wantStatus(t, p, http.StatusUnauthorized)
	wantBody(t, p, `name="account" value="`+second.ID+`"`)
	// A link may name the account.
	wantBody(t, s.browser().get("/portal/signin?account="+second.ID), `<input type="hidden" name="account" value="`+second.ID+`"`)
}

// A page that fails logs its path, but never a key or token pasted into it.
func TestFailureLogHasNoSecrets(t *testing.T) {
	s := newServer(t)
	acc := s.account("*")
	m := s.member(acc.ID, keyplane.MemberOwner)
	k := s.key(acc.ID, "production")
	b := s.browser()
	b.signIn(m)
	s.store.Close() // every page now fails
	for _, secret := range []string{k.Plaintext, s.token} {
		if p := b.get("/portal/keys/" + secret); p.status < 500 {
			t.Fatalf("a page with the store closed: %d %s", p.status, p.body)
		}
	}
	s.srv.Close() // waits for the requests' log lines
	out := s.logs.String()
	if strings.Contains(out, k.Plaintext) || strings.Contains(out, s.token) {
		t.Fatalf("a secret reached the log:\n%s", out)
	}
	for _, want := range []string{`msg="portal: request failed" path="/portal/keys/[redacted key]"`, `msg="portal: request failed" path="/portal/keys/[redacted token]"`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %s in the log:\n%s", want, out)
		}
	}
}
