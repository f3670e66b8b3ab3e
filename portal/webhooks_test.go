package portal_test

import (
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/webhooks"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// hookReceiver records the deliveries a real receiver on 127.0.0.1 gets.
type hookReceiver struct {
	mu     sync.Mutex
	ids    []string
	bodies [][]byte
	heads  []http.Header
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.ids, h.bodies, h.heads = append(h.ids, r.Header.Get("webhook-id")), append(h.bodies, body), append(h.heads, r.Header.Clone())
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// at returns the i-th delivery's id, body and headers.
func (h *hookReceiver) at(i int) (string, []byte, http.Header) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ids[i], h.bodies[i], h.heads[i]
}

func (h *hookReceiver) wait(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		h.mu.Lock()
		got := len(h.ids)
		h.mu.Unlock()
		if got >= n {
			return
		}
	}
	t.Fatalf("the receiver did not get %d deliveries", n)
}

// newWebhookServer is the portal with webhooks on, and a dispatcher
// delivering to loopback.
func newWebhookServer(t *testing.T) *server {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	box, err := webhooks.NewSecretBox(key)
	if err != nil {
		t.Fatal(err)
	}
	var d *webhooks.Dispatcher
	wake := func() {
		if d != nil {
			d.Wake()
		}
	}
	s := newServerWith(t, service.Config{WebhookSecrets: box, WebhooksAllowPrivate: true, WebhookWake: wake})
	d = webhooks.NewDispatcher(webhooks.Config{Store: s.store, Secrets: box, AllowPrivate: true, PollInterval: 50 * time.Millisecond, Timeout: 2 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func TestBrowserWebhooks(t *testing.T) {
	browser := startBrowser(t)
	s := newWebhookServer(t)
	a := s.account("orders:*")
	rcv := &hookReceiver{}
	receiver := httptest.NewServer(rcv)
	t.Cleanup(receiver.Close)
	ctx := tab(t, browser)
	dev := s.member(a.ID, keyplane.MemberDeveloper)
	signInBrowser(t, ctx, s, dev)

	// Add an endpoint; its secret is shown once.
	run(t, ctx, chromedp.Navigate(s.url+"/portal/webhooks"), chromedp.WaitVisible(chromedp.CSS(`#url`)))
	if got := text(t, ctx, ".empty h2"); got != "No endpoints yet" {
		t.Fatalf("empty state %q", got)
	}
	screenshots(t, ctx, "webhooks-empty")
	run(t, ctx,
		chromedp.SendKeys(chromedp.CSS(`#url`), "ftp://nope.example.com/"),
		chromedp.Click(chromedp.CSS(`form.stack button.primary`)),
		chromedp.WaitVisible(chromedp.CSS(`#url-err`)),
	)
	screenshots(t, ctx, "webhooks-error")
	run(t, ctx,
		chromedp.SetValue(chromedp.CSS(`#url`), receiver.URL+"/hooks"),
		chromedp.SendKeys(chromedp.CSS(`#events`), "webhook.test, key.*"),
		chromedp.SendKeys(chromedp.CSS(`#description`), "Orders service"),
		chromedp.Click(chromedp.CSS(`form.stack button.primary`)),
		chromedp.WaitVisible(chromedp.CSS(`#webhook-secret`)),
	)
	secret := get(t, ctx, chromedp.Value(chromedp.CSS(`#webhook-secret`)))
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("shown secret %q", secret)
	}
	screenshots(t, ctx, "webhook-created")

	// Its page: send a test event, which arrives signed with that secret.
	run(t, ctx, chromedp.Click(chromedp.CSS(`.secret a.button`)), chromedp.WaitVisible(chromedp.CSS(`#send-test`)))
	if strings.Contains(html(t, ctx), secret) {
		t.Fatal("the endpoint page shows the secret")
	}
	run(t, ctx, chromedp.Click(chromedp.CSS(`#send-test`)), chromedp.WaitVisible(chromedp.CSS(`.notice`)))
	rcv.wait(t, 1)
	firstID, body, header := rcv.at(0)
	wh, _ := standardwebhooks.NewWebhook(secret)
	if err := wh.Verify(body, header); err != nil {
		t.Fatalf("the test event does not verify: %v", err)
	}
	// The log shows it delivered, with its attempt.
	var page string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		run(t, ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#send-test`)))
		if page = text(t, ctx, "main"); strings.Contains(page, "delivered") {
			break
		}
	}
	if !strings.Contains(page, "webhook.test") || !strings.Contains(page, "delivered") || !strings.Contains(page, "HTTP 204") || !strings.Contains(page, firstID) {
		t.Fatalf("message log: %s", page)
	}
	screenshots(t, ctx, "webhook-log")

	// Retry: the same message again, with the same webhook-id.
	run(t, ctx, chromedp.Click(chromedp.CSS(`table.messages button`)), chromedp.WaitVisible(chromedp.CSS(`.notice`)))
	rcv.wait(t, 2)
	if id, _, _ := rcv.at(1); id != firstID {
		t.Fatalf("the retry came with webhook-id %s, the first %s", id, firstID)
	}

	// Rotate: a new secret, shown once; both sign during the overlap.
	run(t, ctx,
		chromedp.Navigate(s.url+"/portal/webhooks"),
		chromedp.Click(chromedp.CSS(`table.webhooks a`)),
		chromedp.WaitVisible(chromedp.CSS(`#rotate`)),
		chromedp.Click(chromedp.CSS(`#rotate`)),
		chromedp.WaitVisible(chromedp.CSS(`#webhook-secret`)),
	)
	rotated := get(t, ctx, chromedp.Value(chromedp.CSS(`#webhook-secret`)))
	if rotated == secret || !strings.HasPrefix(rotated, "whsec_") {
		t.Fatalf("rotated secret %q", rotated)
	}
	s.key(a.ID, "triggers key.created")
	rcv.wait(t, 3)
	_, body, header = rcv.at(2)
	for _, sec := range []string{secret, rotated} {
		wh, _ := standardwebhooks.NewWebhook(sec)
		if err := wh.Verify(body, header); err != nil {
			t.Fatalf("during the overlap %s…: %v", sec[:12], err)
		}
	}

	// A viewer reads the list but has no form.
	viewer := s.member(a.ID, keyplane.MemberViewer)
	vctx := tab(t, browser)
	signInBrowser(t, vctx, s, viewer)
	run(t, vctx, chromedp.Navigate(s.url+"/portal/webhooks"), chromedp.WaitVisible(chromedp.CSS(`table.webhooks`)))
	if strings.Contains(html(t, vctx), `id="url"`) {
		t.Fatal("a viewer sees the add form")
	}
}
