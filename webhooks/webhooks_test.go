package webhooks_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/teststore"
	"github.com/keyplane/keyplane/webhooks"
	"github.com/keyplane/keyplane/webhooks/verify"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// delivery is one request a receiver got.
type delivery struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is a real HTTP server on 127.0.0.1 that records what it gets
// and answers with the statuses it is given, in turn (the last one after).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	got      []delivery
	statuses []int
	arrived  chan struct{}
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses, arrived: make(chan struct{}, 1000)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, delivery{header: req.Header.Clone(), body: body, at: time.Now()})
		status := http.StatusOK
		if n := len(r.got); len(r.statuses) > 0 {
			status = r.statuses[min(n, len(r.statuses))-1]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, "answer "+http.StatusText(status))
		r.arrived <- struct{}{}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// waitFor waits until the receiver got n requests, at most within.
func (r *receiver) waitFor(t *testing.T, n int, within time.Duration) []delivery {
	t.Helper()
	deadline := time.After(within)
	for {
		if got := r.deliveries(); len(got) >= n {
			return got
		}
		select {
		case <-r.arrived:
		case <-deadline:
			t.Fatalf("the receiver got %d requests within %s, want %d", len(r.deliveries()), within, n)
		}
	}
}

type env struct {
	store      keyplane.Store
	svc        *service.Service
	dispatcher *webhooks.Dispatcher
	ctx        context.Context // an admin operator
}

// newEnv starts a service and a dispatcher with short retries on the
// store the run asks for.
func newEnv(t testing.TB, tune func(*webhooks.Config)) *env {
	t.Helper()
	store := teststore.New(t)
	key := make([]byte, 32)
	rand.Read(key)
	box, err := webhooks.NewSecretBox(key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := webhooks.Config{Store: store, Secrets: box, AllowPrivate: true, Timeout: 2 * time.Second,
		Schedule: []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}, PollInterval: 50 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	d := webhooks.NewDispatcher(cfg)
	svc, err := service.New(store, service.Config{WebhookSecrets: box, WebhooksAllowPrivate: true, WebhookWake: d.Wake})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &env{store: store, svc: svc, dispatcher: d,
		ctx: keyplane.NewContextWithActor(context.Background(), keyplane.Actor{Kind: "token", ID: "tok_test", Role: keyplane.RoleAdmin})}
}

func (e *env) account(t testing.TB) *keyplane.Account {
	t.Helper()
	a, err := e.svc.CreateAccount(e.ctx, service.AccountInput{Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (e *env) endpoint(t testing.TB, accountID, url string, events ...string) *service.CreatedWebhook {
	t.Helper()
	w, err := e.svc.CreateWebhook(e.ctx, accountID, service.WebhookInput{URL: url, Events: events})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// verifyIndependently checks a delivery with the Standard Webhooks
// reference library, not keyplane's own code.
func verifyIndependently(t *testing.T, secret string, d delivery) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(d.body, d.header); err != nil {
		t.Fatalf("the reference verifier refused the delivery: %v (signature %q)", err, d.header.Get("webhook-signature"))
	}
}

func TestRevokedKeyReachesSubscribedEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	a := e.account(t)
	r := newReceiver(t)
	w := e.endpoint(t, a.ID, r.URL+"/hooks", keyplane.EventKeyRevoked)
	k, err := e.svc.CreateKey(e.ctx, a.ID, service.KeyInput{Name: "production"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := e.svc.RevokeKey(e.ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	got := r.waitFor(t, 1, 5*time.Second)
	t.Logf("key.revoked arrived %s after the revocation", got[0].at.Sub(start).Round(time.Millisecond))
	verifyIndependently(t, w.Secret, got[0])
	if err := verify.Request(w.Secret, got[0].header, got[0].body, time.Now()); err != nil {
		t.Fatalf("keyplane's verify package refused it: %v", err)
	}
	var body struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      struct {
			Key webhooks.KeyData `json:"key"`
		} `json:"data"`
	}
	if err := json.Unmarshal(got[0].body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Type != keyplane.EventKeyRevoked || body.Data.Key.ID != k.ID || body.Data.Key.Status != "revoked" || body.Data.Key.Hint != k.Hint {
		t.Fatalf("payload %s", got[0].body)
	}
	if _, err := time.Parse(time.RFC3339, body.Timestamp); err != nil {
		t.Fatalf("timestamp %q: %v", body.Timestamp, err)
	}
	if strings.Contains(string(got[0].body), k.Plaintext) || strings.Contains(string(got[0].body), w.Secret) {
		t.Fatal("the payload carries the plaintext key or the secret")
	}
	h := got[0].header
	if h.Get("Content-Type") != "application/json" || !strings.HasPrefix(h.Get("webhook-id"), "msg_") {
		t.Fatalf("headers %v", h)
	}
	// key.created was raised too, but this endpoint did not subscribe to it.
	time.Sleep(300 * time.Millisecond)
	if n := len(r.deliveries()); n != 1 {
		t.Fatalf("the receiver got %d requests, want only key.revoked", n)
	}
}

func TestRetriesWithOneWebhookID(t *testing.T) {
	e := newEnv(t, nil)
	a := e.account(t)
	r := newReceiver(t, 500, 500, 200)
	w := e.endpoint(t, a.ID, r.URL, keyplane.EventKeyCreated)
	if _, err := e.svc.CreateKey(e.ctx, a.ID, service.KeyInput{Name: "k"}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, 3, 5*time.Second)
	time.Sleep(500 * time.Millisecond) // the schedule would retry within 100 ms: nothing more comes
	got := r.deliveries()
	if len(got) != 3 {
		t.Fatalf("%d attempts, want exactly 3", len(got))
	}
	id := got[0].header.Get("webhook-id")
	for i, d := range got {
		if d.header.Get("webhook-id") != id {
			t.Fatalf("attempt %d has webhook-id %q, the first %q", i, d.header.Get("webhook-id"), id)
		}
		verifyIndependently(t, w.Secret, d)
	}
	if gap := got[1].at.Sub(got[0].at); gap < 80*time.Millisecond {
		t.Fatalf("the first retry came %s after the attempt; the schedule says 100 ms ± 20 %%", gap)
	}
	ds, _, err := e.svc.WebhookDeliveries(e.ctx, w.ID, keyplane.Page{})
	if err != nil || len(ds) != 1 {
		t.Fatalf("message log: %v, %v", ds, err)
	}
	if d := ds[0]; d.Status != keyplane.DeliveryDelivered || len(d.History) != 3 || d.History[0].StatusCode != 500 || d.History[2].StatusCode != 200 ||
		d.History[0].Response != "answer Internal Server Error" {
		t.Fatalf("log: %+v", d)
	}
	if ep, _ := e.svc.Webhook(e.ctx, w.ID); ep.FailingSince != nil || !ep.Enabled {
		t.Fatalf("after a success the endpoint is failing since %v, enabled %v", ep.FailingSince, ep.Enabled)
	}
}

func TestRetriesExhausted(t *testing.T) {
	e := newEnv(t, nil)
	a := e.account(t)
	r := newReceiver(t, 503)
	w := e.endpoint(t, a.ID, r.URL)
	ev, err := e.svc.TestWebhook(e.ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, 4, 5*time.Second) // the first attempt and three retries
	time.Sleep(400 * time.Millisecond)
	if n := len(r.deliveries()); n != 4 {
		t.Fatalf("%d attempts; want 4 (a schedule of three retries)", n)
	}
	ds, _, _ := e.svc.WebhookDeliveries(e.ctx, w.ID, keyplane.Page{})
	if ds[0].Status != keyplane.DeliveryFailed {
		t.Fatalf("status %s after the schedule ran out", ds[0].Status)
	}
	// A retry by hand: one more attempt.
	if n, err := e.svc.RetryMessage(e.ctx, ev.ID); err != nil || n != 1 {
		t.Fatalf("RetryMessage = %d, %v", n, err)
	}
	r.waitFor(t, 5, 5*time.Second)
	time.Sleep(400 * time.Millisecond)
	if n := len(r.deliveries()); n != 5 {
		t.Fatalf("%d attempts after a retry by hand; want one more (5)", n)
	}
}

func TestRotationSignsWithBothSecrets(t *testing.T) {
	e := newEnv(t, nil)
	a := e.account(t)
	r := newReceiver(t)
	w := e.endpoint(t, a.ID, r.URL)
	rotated, err := e.svc.RotateWebhookSecret(e.ctx, w.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Secret == w.Secret || !strings.HasPrefix(rotated.Secret, "whsec_") {
		t.Fatalf("new secret %q", rotated.Secret)
	}
	if _, err := e.svc.TestWebhook(e.ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	got := r.waitFor(t, 1, 5*time.Second)
	if sigs := strings.Fields(got[0].header.Get("webhook-signature")); len(sigs) != 2 {
		t.Fatalf("during the overlap: %d signatures, want 2", len(sigs))
	}
	verifyIndependently(t, w.Secret, got[0])
	verifyIndependently(t, rotated.Secret, got[0])
	// Rotating again within the overlap: still two signatures, the newest
	// two secrets'; the first one ends.
	third, err := e.svc.RotateWebhookSecret(e.ctx, w.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.TestWebhook(e.ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	got = r.waitFor(t, 2, 5*time.Second)
	if sigs := strings.Fields(got[1].header.Get("webhook-signature")); len(sigs) != 2 {
		t.Fatalf("after a second rotation within the overlap: %d signatures, want 2", len(sigs))
	}
	verifyIndependently(t, rotated.Secret, got[1])
	verifyIndependently(t, third.Secret, got[1])
	if first, _ := standardwebhooks.NewWebhook(w.Secret); first.Verify(got[1].body, got[1].header) == nil {
		t.Fatal("the first secret still verifies after two rotations")
	}
	// Rotating with no overlap ends the old ones at once.
	again, err := e.svc.RotateWebhookSecret(e.ctx, w.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.TestWebhook(e.ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	got = r.waitFor(t, 3, 5*time.Second)
	if sigs := strings.Fields(got[2].header.Get("webhook-signature")); len(sigs) != 1 {
		t.Fatalf("after a rotation without overlap: %d signatures", len(sigs))
	}
	verifyIndependently(t, again.Secret, got[2])
	wh, _ := standardwebhooks.NewWebhook(third.Secret)
	if err := wh.Verify(got[2].body, got[2].header); err == nil {
		t.Fatal("a secret rotated out without overlap still verifies")
	}
}

func TestGoneDisablesEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	a := e.account(t)
	r := newReceiver(t, http.StatusGone)
	w := e.endpoint(t, a.ID, r.URL)
	if _, err := e.svc.CreateKey(e.ctx, a.ID, service.KeyInput{Name: "k"}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, 1, 5*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	var ep *keyplane.WebhookEndpoint
	for {
		var err error
		if ep, err = e.svc.Webhook(e.ctx, w.ID); err != nil {
			t.Fatal(err)
		}
		if !ep.Enabled || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ep.Enabled || ep.DisabledReason != "gone" {
		t.Fatalf("after a 410: enabled %v, reason %q", ep.Enabled, ep.DisabledReason)
	}
	events, _, err := e.store.ListAudit(e.ctx, keyplane.AuditFilter{AccountID: a.ID, Type: keyplane.AuditWebhookDisabled, Page: keyplane.Page{Limit: 10}})
	if err != nil || len(events) != 1 || !strings.Contains(string(events[0].Details), `"reason":"gone"`) {
		t.Fatalf("audit: %v, %v", events, err)
	}
	// Nothing more reaches a disabled endpoint.
	if _, err := e.svc.CreateKey(e.ctx, a.ID, service.KeyInput{Name: "k2"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(r.deliveries()); n != 1 {
		t.Fatalf("a disabled endpoint got %d requests", n)
	}
	// Enabling it again starts afresh.
	ep, err = e.svc.UpdateWebhook(e.ctx, w.ID, service.WebhookUpdate{Enabled: service.Optional[bool]{Set: true, Value: true}})
	if err != nil || !ep.Enabled || ep.DisabledReason != "" {
		t.Fatalf("enable: %+v, %v", ep, err)
	}
}

func TestFailingFiveDaysDisables(t *testing.T) {
	var mu sync.Mutex
	var offset time.Duration // the dispatcher's clock runs ahead of the service's by it
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(offset) }
	e := newEnv(t, func(c *webhooks.Config) { c.Now = clock })
	a := e.account(t)
	r := newReceiver(t, 500)
	w := e.endpoint(t, a.ID, r.URL)
	if _, err := e.svc.TestWebhook(e.ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, 1, 5*time.Second)
	mu.Lock()
	offset = 5*24*time.Hour + time.Minute
	mu.Unlock()
	r.waitFor(t, 2, 5*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		ep, _ := e.svc.Webhook(e.ctx, w.ID)
		if !ep.Enabled {
			if ep.DisabledReason != "failing" {
				t.Fatalf("reason %q", ep.DisabledReason)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("an endpoint failing for 5 days is still enabled")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSlowEndpointDoesNotDelayOthers(t *testing.T) {
	e := newEnv(t, func(c *webhooks.Config) { c.PerEndpoint, c.Concurrency = 2, 4 })
	a := e.account(t)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	fast := newReceiver(t)
	e.endpoint(t, a.ID, slow.URL, keyplane.EventKeyCreated)
	e.endpoint(t, a.ID, fast.URL, keyplane.EventKeyRevoked)
	for range 6 {
		if _, err := e.svc.CreateKey(e.ctx, a.ID, service.KeyInput{Name: "k"}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // the slow endpoint holds its two slots
	k, err := e.svc.CreateKey(e.ctx, a.ID, service.KeyInput{Name: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.RevokeKey(e.ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	fast.waitFor(t, 1, 2*time.Second)
}

func TestNoRedirectsAndBoundedAnswers(t *testing.T) {
	e := newEnv(t, nil)
	a := e.account(t)
	target := newReceiver(t)
	redirecting := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	t.Cleanup(redirecting.Close)
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 5000) + "\x00\xff"))
	}))
	t.Cleanup(big.Close)
	wr := e.endpoint(t, a.ID, redirecting.URL)
	wb := e.endpoint(t, a.ID, big.URL)
	for _, w := range []*service.CreatedWebhook{wr, wb} {
		if _, err := e.svc.TestWebhook(e.ctx, w.ID); err != nil {
			t.Fatal(err)
		}
	}
	waitStatus := func(id string, status keyplane.DeliveryStatus) *keyplane.WebhookDelivery {
		deadline := time.Now().Add(5 * time.Second)
		for {
			ds, _, err := e.svc.WebhookDeliveries(e.ctx, id, keyplane.Page{})
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) > 0 && len(ds[0].History) > 0 && (status == "" || ds[0].Status == status) {
				return ds[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("no attempt of %s reached %q", id, status)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	d := waitStatus(wr.ID, "")
	if d.History[0].StatusCode != http.StatusFound || d.Status == keyplane.DeliveryDelivered {
		t.Fatalf("a redirect: %+v", d)
	}
	if n := len(target.deliveries()); n != 0 {
		t.Fatalf("the redirect was followed (%d requests)", n)
	}
	d = waitStatus(wb.ID, keyplane.DeliveryDelivered)
	if len(d.History[0].Response) > keyplane.MaxAttemptResponse || !strings.HasPrefix(d.History[0].Response, "xxxx") {
		t.Fatalf("stored answer of %d bytes", len(d.History[0].Response))
	}
}

func TestTimeoutIsAFailure(t *testing.T) {
	e := newEnv(t, func(c *webhooks.Config) { c.Timeout, c.Schedule = 300*time.Millisecond, []time.Duration{} })
	a := e.account(t)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	w := e.endpoint(t, a.ID, hang.URL)
	if _, err := e.svc.TestWebhook(e.ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ds, _, _ := e.svc.WebhookDeliveries(e.ctx, w.ID, keyplane.Page{})
		if len(ds) == 1 && ds[0].Status == keyplane.DeliveryFailed {
			if a := ds[0].History[0]; a.Error != "timed out" || a.StatusCode != 0 || a.Duration > 2*time.Second {
				t.Fatalf("attempt %+v", a)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a hanging endpoint's delivery did not fail")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPrivateAddressesRefusedAtDial: without --webhooks-allow-private the
// client refuses loopback even when a name (localhost) leads there, which
// is what a DNS-rebinding attack relies on.
func TestPrivateAddressesRefusedAtDial(t *testing.T) {
	r := newReceiver(t)
	client := webhooks.NewClient(false, time.Second)
	for _, url := range []string{r.URL, strings.Replace(r.URL, "127.0.0.1", "localhost", 1)} {
		_, err := client.Post(url, "application/json", strings.NewReader("{}"))
		if !errors.Is(err, webhooks.ErrForbiddenAddress) {
			t.Errorf("POST %s: %v, want ErrForbiddenAddress", url, err)
		}
	}
	if n := len(r.deliveries()); n != 0 {
		t.Fatalf("the receiver got %d requests", n)
	}
	if _, err := webhooks.NewClient(true, time.Second).Post(r.URL, "application/json", strings.NewReader("{}")); err != nil {
		t.Fatalf("with private addresses allowed: %v", err)
	}
}
