package portal_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

// The end-to-end tests drive Debian's Chromium, headless, through chromedp:
// one browser for the test binary, one fresh browser context (cookies and
// all) per member.

const chromium = "/usr/bin/chromium"

// startBrowser starts Chromium or skips (fails with CI=true) when it is missing.
func startBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path := chromium
	if _, err := os.Stat(path); err != nil {
		if p, lerr := exec.LookPath("chromium"); lerr == nil {
			path = p
		} else if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is not installed (%v); .ci/run installs it: apt-get install -y --no-install-recommends chromium", err)
		} else {
			t.Skipf("chromium is not installed, skipping the browser tests: apt-get install -y --no-install-recommends chromium")
		}
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		// Without these Chromium keeps calling home, into a closed network.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	}
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return browserCtx
}

// tab opens a tab in a new browser context: a separate cookie jar.
func tab(t *testing.T, browserCtx context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	run(t, ctx) // opens the tab; a timeout on this first call would close it
	ctx, cancelTimeout := context.WithTimeout(ctx, 30*time.Second)
	t.Cleanup(cancelTimeout)
	return ctx
}

func run(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// get runs an action that returns a value.
func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// screenshotDir is where page images go: $KEYPLANE_SCREENSHOTS, else
// testdata/screenshots (ignored by git).
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("KEYPLANE_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("testdata", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// screenshots saves the current page at desktop and phone widths.
func screenshots(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := screenshotDir(t)
	for _, w := range []struct {
		suffix        string
		width, height int64
		mobile        bool
	}{{"1280", 1280, 900, false}, {"390", 390, 844, true}} {
		run(t, ctx, chromedp.EmulateViewport(w.width, w.height, func(p *emulation.SetDeviceMetricsOverrideParams, _ *emulation.SetTouchEmulationEnabledParams) {
			p.Mobile = w.mobile
		}))
		png := get(t, ctx, chromedp.FullScreenshot(100))
		if err := os.WriteFile(filepath.Join(dir, name+"-"+w.suffix+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, ctx, chromedp.EmulateViewport(1280, 900))
}

func signInBrowser(t *testing.T, ctx context.Context, s *server, m *keyplane.Member) {
	t.Helper()
	run(t, ctx,
		chromedp.Navigate(s.url+"/portal/keys"),
		chromedp.WaitVisible(chromedp.CSS(`#email`)),
		chromedp.SendKeys(chromedp.CSS(`#email`), m.Email),
		chromedp.SendKeys(chromedp.CSS(`#password`), pw),
		chromedp.Submit(chromedp.CSS(`#password`)),
		chromedp.WaitVisible(chromedp.CSS(`.who`)), // only signed-in pages have it
	)
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return get(t, ctx, chromedp.Text(chromedp.CSS(sel)))
}

func html(t *testing.T, ctx context.Context) string {
	t.Helper()
	return get(t, ctx, chromedp.OuterHTML(chromedp.CSS("html")))
}

// verifyOverHTTP asks /v1/verify about a key, as the operator's API would.
func verifyOverHTTP(t *testing.T, s *server, key string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", s.url+"/v1/verify", strings.NewReader(`{"key":"`+key+`","scope":"orders:read","ip":"203.0.113.9","endpoint":"GET /v1/orders"}`))
	req.Header.Set("Authorization", "Bearer "+s.gate)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Code string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Code
}

func TestBrowser(t *testing.T) {
	browser := startBrowser(t)
	s := newServer(t)
	a := s.account("orders:*", "billing:read")

	t.Run("KeyLifecycle", func(t *testing.T) {
		ctx := tab(t, browser)
		dev := s.member(a.ID, keyplane.MemberDeveloper)

		// Sign in; a new account shows its empty state.
		run(t, ctx, chromedp.Navigate(s.url+"/portal/keys"), chromedp.WaitVisible(chromedp.CSS(`#email`)))
		screenshots(t, ctx, "signin")
		signInBrowser(t, ctx, s, dev)
		if got := text(t, ctx, "h2"); got != "No keys yet" {
			t.Fatalf("empty state heading %q", got)
		}
		screenshots(t, ctx, "keys-empty")

		// Create a key and read it once.
		run(t, ctx,
			chromedp.Click(chromedp.CSS(`.empty a.button`)),
			chromedp.WaitVisible(chromedp.CSS(`#name`)),
			chromedp.SendKeys(chromedp.CSS(`#name`), "orders worker"),
			chromedp.Click(chromedp.CSS(`input[name=scope][value="orders:*"]`)),
			chromedp.SendKeys(chromedp.CSS(`#cidrs`), "203.0.113.0/24"),
		)
		screenshots(t, ctx, "key-new")
		run(t, ctx,
			chromedp.Click(chromedp.CSS(`form button.primary`)),
			chromedp.WaitVisible(chromedp.CSS(`#secret`)),
		)
		plaintext := get(t, ctx, chromedp.Value(chromedp.CSS(`#secret`)))
		if !strings.HasPrefix(plaintext, "kp_live_") || len(plaintext) != len("kp_live_")+36 {
			t.Fatalf("shown key %q", plaintext)
		}
		screenshots(t, ctx, "key-created")
		// The copy button answers (clipboard access may be refused headless;
		// either way the page says what happened).
		run(t, ctx, chromedp.Click(chromedp.CSS(`[data-copy=secret]`)), chromedp.WaitVisible(chromedp.CSS(`#copied`)))
		get(t, ctx, chromedp.Poll[bool](`document.getElementById("copied").textContent.length > 0`, chromedp.WithPollingTimeout(5*time.Second)))
		if code := verifyOverHTTP(t, s, plaintext); code != "VALID" {
			t.Fatalf("the new key verifies as %s", code)
		}

		// Listed by hint only; the plaintext is not shown again anywhere.
		run(t, ctx, chromedp.Navigate(s.url+"/portal/keys"), chromedp.WaitVisible(chromedp.CSS(`table.keys`)))
		page := html(t, ctx)
		keys, _, _ := s.svc.ListKeys(s.admin, a.ID, "", keyplane.Page{})
		if len(keys) != 1 || !strings.Contains(page, keys[0].Hint) || strings.Contains(page, plaintext) {
			t.Fatalf("keys page shows the plaintext or lacks the hint %q", keys[0].Hint)
		}
		screenshots(t, ctx, "keys")

		// Roll it with an hour of overlap: both keys work meanwhile.
		run(t, ctx,
			chromedp.Click(chromedp.CSS(`table.keys td a`)),
			chromedp.WaitVisible(chromedp.CSS(`#overlap`)),
		)
		if page := html(t, ctx); strings.Contains(page, plaintext) {
			t.Fatal("the key page shows the plaintext")
		}
		screenshots(t, ctx, "key")
		run(t, ctx,
			chromedp.SetValue(chromedp.CSS(`#overlap`), "3600"),
			chromedp.Click(chromedp.CSS(`#roll-h + p + form button`)),
			chromedp.WaitVisible(chromedp.CSS(`#secret`)),
		)
		rolled := get(t, ctx, chromedp.Value(chromedp.CSS(`#secret`)))
		if rolled == plaintext || !strings.HasPrefix(rolled, "kp_live_") {
			t.Fatalf("rolled key %q", rolled)
		}
		if !strings.Contains(text(t, ctx, "main"), "keeps working until") {
			t.Fatal("the roll page does not say how long the old key works")
		}
		if a, b := verifyOverHTTP(t, s, plaintext), verifyOverHTTP(t, s, rolled); a != "VALID" || b != "VALID" {
			t.Fatalf("during the overlap: old %s, new %s", a, b)
		}

		// Revoke the new key, after confirming.
		run(t, ctx,
			chromedp.Click(chromedp.CSS(`.secret ~ p a.button`)),
			chromedp.WaitVisible(chromedp.CSS(`a.button.danger`)),
			chromedp.Click(chromedp.CSS(`a.button.danger`)),
			chromedp.WaitVisible(chromedp.CSS(`button.danger`)),
		)
		if code := verifyOverHTTP(t, s, rolled); code != "VALID" {
			t.Fatalf("the confirmation page already revoked the key: %s", code)
		}
		screenshots(t, ctx, "revoke-confirm")
		run(t, ctx, chromedp.Click(chromedp.CSS(`button.danger`)), chromedp.WaitVisible(chromedp.CSS(`.notice`)))
		if got := text(t, ctx, ".notice"); !strings.Contains(got, "revoked") {
			t.Fatalf("notice %q", got)
		}
		if code := verifyOverHTTP(t, s, rolled); code != "REVOKED" {
			t.Fatalf("the revoked key verifies as %s", code)
		}

		// The audit log shows what happened, by whom.
		run(t, ctx, chromedp.Click(chromedp.CSS(`nav a[href="/portal/audit"]`)), chromedp.WaitVisible(chromedp.CSS(`table.audit`)))
		log := text(t, ctx, "table.audit")
		for _, want := range []string{"key.created", "key.rolled", "key.revoked", "member.signed_in", "you"} {
			if !strings.Contains(log, want) {
				t.Errorf("audit page lacks %q:\n%s", want, log)
			}
		}
		screenshots(t, ctx, "audit")

		// Usage: the verifications above, charted.
		if err := s.meter.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		run(t, ctx, chromedp.Navigate(s.url+"/portal/keys/"+keys[0].ID+"/usage?range=1h"), chromedp.WaitVisible(chromedp.CSS(`figure.chart svg`)))
		screenshots(t, ctx, "usage")
	})

	t.Run("ViewerSeesNoChangeButtons", func(t *testing.T) {
		ctx := tab(t, browser)
		k := s.key(a.ID, "viewable")
		signInBrowser(t, ctx, s, s.member(a.ID, keyplane.MemberViewer))
		for _, path := range []string{"/portal/keys", "/portal/keys/" + k.ID, "/portal/audit", "/portal/keys/" + k.ID + "/usage"} {
			run(t, ctx, chromedp.Navigate(s.url+path), chromedp.WaitVisible(chromedp.CSS(`main h1`)))
			forms := get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('form[method=post]:not([action="/portal/signout"]), a[href$="/revoke"], a[href="/portal/keys/new"]').length`))
			if forms != 0 {
				t.Errorf("%s shows a viewer %d controls that change things", path, forms)
			}
		}
		screenshots(t, ctx, "keys-viewer")
	})

	t.Run("MissingCSRFIsRefused", func(t *testing.T) {
		ctx := tab(t, browser)
		k := s.key(a.ID, "guarded")
		signInBrowser(t, ctx, s, s.member(a.ID, keyplane.MemberOwner))
		run(t, ctx,
			chromedp.Navigate(s.url+"/portal/keys/"+k.ID+"/revoke"),
			chromedp.WaitVisible(chromedp.CSS(`button.danger`)),
			// As a forged form would: everything but the token.
			chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
				_, err := chromedp.Evaluate[bool](`document.querySelector('form.actions input[name=csrf]').remove(), true`)(ctx, tgt)
				return err
			}),
			chromedp.Click(chromedp.CSS(`button.danger`)),
			chromedp.WaitVisible(chromedp.CSS(`.error`)),
		)
		if got := text(t, ctx, ".error"); !strings.Contains(got, "no valid security token") {
			t.Fatalf("error %q", got)
		}
		if got, _ := s.svc.Key(s.admin, k.ID); got.RevokedAt != nil {
			t.Fatal("a form without its CSRF token revoked the key")
		}
	})

	t.Run("Members", func(t *testing.T) {
		ctx := tab(t, browser)
		signInBrowser(t, ctx, s, s.member(a.ID, keyplane.MemberOwner))
		run(t, ctx,
			chromedp.Click(chromedp.CSS(`nav a[href="/portal/members"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#invite-email`)),
			chromedp.SendKeys(chromedp.CSS(`#invite-email`), "new.person@example.com"),
			chromedp.SetValue(chromedp.CSS(`#invite-role`), "viewer"),
			chromedp.Click(chromedp.CSS(`#invite-h + form button`)),
			chromedp.WaitVisible(chromedp.CSS(`#invite-link`)),
		)
		link := get(t, ctx, chromedp.Value(chromedp.CSS(`#invite-link`)))
		screenshots(t, ctx, "members")
		// The invitee opens the link in their own browser and joins.
		joiner := tab(t, browser)
		run(t, joiner,
			chromedp.Navigate(link),
			chromedp.WaitVisible(chromedp.CSS(`#password`)),
			chromedp.SendKeys(chromedp.CSS(`#password`), pw),
			chromedp.SendKeys(chromedp.CSS(`#password_again`), pw),
			chromedp.Submit(chromedp.CSS(`#password`)),
			chromedp.WaitVisible(chromedp.CSS(`.who`)),
		)
		if got := text(t, joiner, ".who"); !strings.Contains(got, "new.person@example.com") || !strings.Contains(got, "viewer") {
			t.Fatalf("after joining: %q", got)
		}
	})

	t.Run("Keyboard", func(t *testing.T) {
		ctx := tab(t, browser)
		signInBrowser(t, ctx, s, s.member(a.ID, keyplane.MemberDeveloper))
		run(t, ctx, chromedp.Navigate(s.url+"/portal/keys/new"), chromedp.WaitVisible(chromedp.CSS(`#name`)))
		// The first Tab reaches the skip link, which takes focus to the content.
		run(t, ctx, chromedp.KeyEvent(kb.Tab))
		if got := get(t, ctx, chromedp.Evaluate[string](`document.activeElement.className`)); got != "skip" {
			t.Fatalf("first Tab focuses %q, want the skip link", got)
		}
		run(t, ctx, chromedp.KeyEvent(kb.Enter))
		if got := get(t, ctx, chromedp.Evaluate[string](`document.activeElement.id`)); got != "main" {
			t.Fatalf("the skip link moved focus to %q", got)
		}
		// A key can be created with the keyboard alone.
		run(t, ctx, chromedp.Focus(chromedp.CSS(`#name`)), chromedp.KeyEvent("typed key"), chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.CSS(`#secret`)))
		if got := get(t, ctx, chromedp.Value(chromedp.CSS(`#secret`))); !strings.HasPrefix(got, "kp_live_") {
			t.Fatalf("key %q", got)
		}
	})

	t.Run("ChooseAccount", func(t *testing.T) {
		ctx := tab(t, browser)
		var second *keyplane.Account
		for _, name := range []string{"Northwind", "Southwind"} {
			acc, err := s.svc.CreateAccount(s.admin, service.AccountInput{Name: name})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.svc.CreateMember(s.admin, acc.ID, service.MemberInput{Email: "both@example.com", Role: keyplane.MemberViewer, Password: pw}); err != nil {
				t.Fatal(err)
			}
			second = acc
		}
		run(t, ctx,
			chromedp.Navigate(s.url+"/portal/signin"),
			chromedp.WaitVisible(chromedp.CSS(`#email`)),
			chromedp.SendKeys(chromedp.CSS(`#email`), "both@example.com"),
			chromedp.SendKeys(chromedp.CSS(`#password`), pw),
			chromedp.Submit(chromedp.CSS(`#password`)),
			chromedp.WaitVisible(chromedp.CSS(`input[name=account][value="`+second.ID+`"]`)),
		)
		if got := get(t, ctx, chromedp.Value(chromedp.CSS(`#password`))); got != "" {
			t.Fatalf("the chooser came back with the password filled in: %q", got)
		}
		screenshots(t, ctx, "choose-account")
		run(t, ctx,
			chromedp.Click(chromedp.CSS(`input[name=account][value="`+second.ID+`"]`)),
			chromedp.SendKeys(chromedp.CSS(`#password`), pw),
			chromedp.Submit(chromedp.CSS(`#password`)),
			chromedp.WaitVisible(chromedp.CSS(`.who`)),
		)
		if got := text(t, ctx, ".who"); !strings.Contains(got, "both@example.com") || !strings.Contains(got, "Southwind") {
			t.Fatalf("after choosing: %q", got)
		}
	})

	t.Run("ExpiredSessionGoesToSignIn", func(t *testing.T) {
		ctx := tab(t, browser)
		signInBrowser(t, ctx, s, s.member(a.ID, keyplane.MemberDeveloper))
		s.clock.Add(service.DefaultSessionIdle + time.Minute)
		run(t, ctx, chromedp.Navigate(s.url+"/portal/keys"), chromedp.WaitVisible(chromedp.CSS(`#email`)))
		if got := text(t, ctx, ".notice"); !strings.Contains(got, "Your session has ended") {
			t.Fatalf("notice %q", got)
		}
	})
}

// The portal over plain HTTP on an address that is not loopback (as with
// --portal-cookie-secure=false on a LAN): Chromium sends no Sec-Fetch-Site
// to such an origin, so the cross-origin check rests on Origin, which the
// referrer policy must not blank to "null". A second loopback address with
// a host name that is not localhost stands in for the LAN address: Chromium
// treats neither as a secure context.
func TestBrowserPlainHTTP(t *testing.T) {
	s := newServerAt(t, service.Config{}, "127.0.0.2:0")
	_, port, _ := strings.Cut(strings.TrimPrefix(s.url, "http://"), ":")
	browser := startBrowser(t, chromedp.Flag("host-resolver-rules", "MAP portal.test 127.0.0.2"))
	m := s.member(s.account().ID, keyplane.MemberOwner)
	ctx := tab(t, browser)
	base := "http://portal.test:" + port
	run(t, ctx,
		chromedp.Navigate(base+"/portal/keys"),
		chromedp.WaitVisible(chromedp.CSS(`#email`)),
		chromedp.SendKeys(chromedp.CSS(`#email`), m.Email),
		chromedp.SendKeys(chromedp.CSS(`#password`), pw),
		chromedp.Submit(chromedp.CSS(`#password`)),
		chromedp.WaitVisible(chromedp.CSS(`.who, p.error`)),
	)
	if body := html(t, ctx); !strings.Contains(body, `class="who"`) {
		t.Fatalf("not signed in over plain HTTP on %s:\n%s", base, body)
	}
	// A form that needs the session works too (token and Origin both).
	run(t, ctx, chromedp.Navigate(base+"/portal/keys/new"), chromedp.WaitVisible(chromedp.CSS(`#name`)),
		chromedp.SendKeys(chromedp.CSS(`#name`), "lan key"),
		chromedp.Click(chromedp.CSS(`form button.primary`)),
		chromedp.WaitVisible(chromedp.CSS(`#secret`)))
}
