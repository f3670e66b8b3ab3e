package portal_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

// TestBrowserLeakedKey: in a real browser, a leaked key's page shows the
// banner; one click rolls it and shows the new key once; the leaked key
// stays refused and the new one works.
func TestBrowserLeakedKey(t *testing.T) {
	browser := startBrowser(t)
	s := newServer(t)
	a := s.account("orders:*")
	k, err := s.svc.CreateKey(s.admin, a.ID, service.KeyInput{Name: "orders worker", Scopes: []string{"orders:*"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.ReportLeak(s.admin, service.LeakReport{Key: k.Plaintext, Source: keyplane.LeakSourceGitHub,
		URL: "https://github.com/acme/app/blob/abc/config.go"}); err != nil {
		t.Fatal(err)
	}
	ctx := tab(t, browser)
	signInBrowser(t, ctx, s, s.member(a.ID, keyplane.MemberDeveloper))
	run(t, ctx, chromedp.Navigate(s.url+"/portal/keys/"+k.ID), chromedp.WaitVisible(chromedp.CSS(`section.leaked`)))
	if got := text(t, ctx, "section.leaked"); !strings.Contains(got, "GitHub found it in public code") || !strings.Contains(got, "It has been revoked") {
		t.Fatalf("banner %q", got)
	}
	screenshots(t, ctx, "key-leaked")
	run(t, ctx, chromedp.Click(chromedp.CSS(`section.leaked form button`)), chromedp.WaitVisible(chromedp.CSS(`#secret`)))
	next := get(t, ctx, chromedp.Value(chromedp.CSS(`#secret`)))
	if next == k.Plaintext || !strings.HasPrefix(next, "kp_live_") {
		t.Fatalf("new key %q", next)
	}
	if got := verifyOverHTTP(t, s, next); got != "VALID" {
		t.Fatalf("the new key: %s", got)
	}
	if got := verifyOverHTTP(t, s, k.Plaintext); got != "REVOKED" {
		t.Fatalf("the leaked key: %s", got)
	}
}
