package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/webhooks/verify"
)

// DefaultSchedule is the wait before each retry after a failed attempt:
// eight attempts over about 28 hours, as Svix does.
var DefaultSchedule = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}

// Defaults of a Dispatcher.
const (
	DefaultPollInterval = time.Second
	DefaultConcurrency  = 64
	DefaultPerEndpoint  = 8
	// DefaultDisableAfter is how long an endpoint may fail every attempt
	// before it is disabled.
	DefaultDisableAfter = 5 * 24 * time.Hour
)

// Config tunes a Dispatcher; zero values take the defaults.
type Config struct {
	Store   keyplane.Store
	Secrets keyplane.SecretSealer
	// AllowPrivate admits http URLs and private, loopback and link-local
	// addresses (--webhooks-allow-private).
	AllowPrivate bool
	// Client sends deliveries; default NewClient(AllowPrivate, Timeout).
	Client *http.Client
	// Timeout bounds one attempt, default 15 s. A claimed delivery is
	// leased for twice as long: if this instance dies, another takes it
	// once the lease ends.
	Timeout  time.Duration
	Schedule []time.Duration
	// PollInterval is how often the outbox is read for due deliveries;
	// changes made on this instance wake the dispatcher at once (Wake).
	PollInterval time.Duration
	// Concurrency bounds the deliveries in flight, PerEndpoint those to
	// one endpoint: a slow endpoint holds its own share only.
	Concurrency, PerEndpoint int
	DisableAfter             time.Duration
	Logger                   *slog.Logger
	Now                      func() time.Time
}

// Dispatcher delivers the outbox's messages. Every instance runs one;
// claims keep them from delivering the same message twice.
type Dispatcher struct {
	cfg   Config
	store keyplane.Store
	log   *slog.Logger
	now   func() time.Time
	lease time.Duration

	wake chan struct{}

	mu       sync.Mutex
	inflight int
	busy     map[string]int // endpoint id → deliveries in flight
	running  sync.WaitGroup
}

// NewDispatcher returns a dispatcher; Run starts it.
func NewDispatcher(cfg Config) *Dispatcher {
	if cfg.Timeout <= 0 {
		cfg.Timeout = RequestTimeout
	}
	if cfg.Client == nil {
		cfg.Client = NewClient(cfg.AllowPrivate, cfg.Timeout)
	}
	if cfg.Schedule == nil {
		cfg.Schedule = DefaultSchedule
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.PerEndpoint <= 0 {
		cfg.PerEndpoint = DefaultPerEndpoint
	}
	if cfg.DisableAfter <= 0 {
		cfg.DisableAfter = DefaultDisableAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Dispatcher{cfg: cfg, store: cfg.Store, log: cfg.Logger, now: cfg.Now, lease: 2 * cfg.Timeout,
		wake: make(chan struct{}, 1), busy: map[string]int{}}
}

// Wake makes the dispatcher look for due deliveries now: a change on this
// instance has just raised events. It never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, then waits for the deliveries in flight
// (each bounded by the timeout) so their outcome is recorded.
func (d *Dispatcher) Run(ctx context.Context) {
	defer closeIdle(d.cfg.Client)
	defer d.running.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-d.wake:
		}
		// When every slot is taken, a finished delivery wakes us.
		if err := d.claim(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("webhooks: cannot read the outbox; will retry", "error", err)
		}
		timer.Reset(d.cfg.PollInterval)
	}
}

// claim takes as many due deliveries as there are free slots and starts
// them.
func (d *Dispatcher) claim(ctx context.Context) error {
	d.mu.Lock()
	free := d.cfg.Concurrency - d.inflight
	busy := make(map[string]int, len(d.busy))
	for id, n := range d.busy {
		busy[id] = n
	}
	d.mu.Unlock()
	if free <= 0 {
		return nil
	}
	due, err := d.store.ClaimWebhookDeliveries(ctx, keyplane.ClaimRequest{Now: d.now(), Lease: d.lease, Limit: free,
		PerEndpoint: d.cfg.PerEndpoint, Busy: busy})
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.inflight += len(due)
	for _, dl := range due {
		d.busy[dl.EndpointID]++
	}
	d.mu.Unlock()
	for _, dl := range due {
		d.running.Add(1)
		go d.deliver(dl)
	}
	if len(due) > 0 {
		d.Wake() // there may be more due: look again at once
	}
	return nil
}

// deliver makes one attempt and records it. It runs on a context of its
// own: a shutdown lets attempts under way finish and be recorded.
func (d *Dispatcher) deliver(dl *keyplane.WebhookDelivery) {
	defer d.running.Done()
	defer func() {
		d.mu.Lock()
		d.inflight--
		if d.busy[dl.EndpointID]--; d.busy[dl.EndpointID] <= 0 {
			delete(d.busy, dl.EndpointID)
		}
		d.mu.Unlock()
		d.Wake()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Timeout+10*time.Second)
	defer cancel()
	ep, err := d.store.WebhookEndpoint(ctx, dl.EndpointID)
	if err != nil {
		if keyplane.ErrorCode(err) != keyplane.ENOTFOUND { // a deleted endpoint took its deliveries along
			d.log.Warn("webhooks: cannot read an endpoint; the delivery will be retried", "endpoint_id", dl.EndpointID, "error", err)
		}
		return
	}
	if !ep.Enabled {
		return // stays pending until the endpoint is enabled again
	}
	attempt := d.attempt(ctx, ep, dl)
	out := keyplane.AttemptOutcome{Attempt: attempt, Claim: dl.Claim, Delivered: attempt.StatusCode >= 200 && attempt.StatusCode < 300}
	if !out.Delivered && !dl.LastTry && dl.Round < len(d.cfg.Schedule) {
		next := attempt.Time.Add(jitter(d.cfg.Schedule[dl.Round]))
		out.Next = &next
	}
	ep, err = d.store.RecordWebhookAttempt(ctx, out)
	if err != nil {
		d.log.Warn("webhooks: cannot record an attempt; the delivery will be retried when its claim ends", "message_id", dl.Message.ID,
			"endpoint_id", dl.EndpointID, "error", err)
		return
	}
	switch {
	case attempt.StatusCode == http.StatusGone:
		d.disable(ctx, ep, "gone", "the endpoint answered 410 Gone")
	case !out.Delivered && ep.FailingSince != nil && attempt.Time.Sub(*ep.FailingSince) >= d.cfg.DisableAfter:
		d.disable(ctx, ep, "failing", fmt.Sprintf("every attempt failed since %s", ep.FailingSince.Format(time.RFC3339)))
	}
}

// jitter spreads a retry over ±20 % of its delay, so deliveries that failed
// together (an endpoint down) do not all come back at the same instant.
func jitter(delay time.Duration) time.Duration {
	return time.Duration(float64(delay) * (0.8 + 0.4*rand.Float64()))
}

// attempt sends the delivery once and says how it went.
func (d *Dispatcher) attempt(ctx context.Context, ep *keyplane.WebhookEndpoint, dl *keyplane.WebhookDelivery) keyplane.WebhookAttempt {
	start := d.now()
	a := keyplane.WebhookAttempt{ID: newID("att"), MessageID: dl.Message.ID, EndpointID: ep.ID, Time: start.UTC().Truncate(time.Microsecond)}
	fail := func(format string, args ...any) keyplane.WebhookAttempt {
		a.Error, a.Duration = fmt.Sprintf(format, args...), d.now().Sub(start)
		return a
	}
	if err := CheckURL(ep.URL, d.cfg.AllowPrivate); err != nil {
		return fail("url %v", err)
	}
	keys, err := d.openSecrets(ep, start)
	if err != nil {
		return fail("%v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(dl.Message.Payload))
	if err != nil {
		return fail("request: %v", err)
	}
	ts := start.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "keyplane-webhooks/1")
	req.Header.Set(verify.HeaderID, dl.Message.ID)
	req.Header.Set(verify.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(verify.HeaderSignature, SignatureHeader(keys, dl.Message.ID, ts, dl.Message.Payload))
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		return fail("%s", describeError(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, keyplane.MaxAttemptResponse))
	a.StatusCode, a.Response, a.Duration = resp.StatusCode, cleanText(body), d.now().Sub(start)
	return a
}

// SignatureHeader is the webhook-signature header: one "v1,…" signature per
// key, separated by spaces.
func SignatureHeader(keys [][]byte, id string, timestamp int64, body []byte) string {
	sigs := make([]string, len(keys))
	for i, k := range keys {
		sigs[i] = verify.Sign(k, id, timestamp, body)
	}
	return strings.Join(sigs, " ")
}

// openSecrets returns the keys that sign at now, newest first.
func (d *Dispatcher) openSecrets(ep *keyplane.WebhookEndpoint, now time.Time) ([][]byte, error) {
	if d.cfg.Secrets == nil {
		return nil, errors.New("no secrets key: start keyplane with --secrets-key-file")
	}
	active := ep.ActiveSecrets(now)
	if len(active) == 0 {
		return nil, errors.New("the endpoint has no secret")
	}
	keys := make([][]byte, 0, len(active))
	for i := len(active) - 1; i >= 0; i-- {
		k, err := d.cfg.Secrets.Open(active[i].Sealed, ep.ID)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// describeError names why no answer came, without the URL (which the
// endpoint's record has already).
func describeError(err error) string {
	switch {
	case errors.Is(err, ErrForbiddenAddress):
		return "refused: the host resolves to a private or loopback address (allowed only with --webhooks-allow-private)"
	case errors.Is(err, context.DeadlineExceeded), strings.Contains(err.Error(), "Client.Timeout"):
		return "timed out"
	}
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		err = ue.Unwrap()
	}
	return err.Error()
}

// cleanText makes an answer storable: valid UTF-8 without NUL bytes.
func cleanText(b []byte) string {
	s := string(b)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.ReplaceAll(s, "\x00", "")
}

// disable turns an endpoint off and records why in the audit log, in one
// transaction. Its pending deliveries wait until it is enabled again.
func (d *Dispatcher) disable(ctx context.Context, ep *keyplane.WebhookEndpoint, reason, detail string) {
	ctx, trail := keyplane.WithAuditTrail(keyplane.NewContextWithActor(ctx, keyplane.Actor{Kind: "system", ID: "webhooks"}))
	_, err := d.store.UpdateWebhookEndpoint(ctx, ep.ID, func(e *keyplane.WebhookEndpoint) error {
		if !e.Enabled {
			return nil
		}
		e.Enabled, e.DisabledReason, e.UpdatedAt = false, reason, d.now().UTC().Truncate(time.Microsecond)
		details, _ := json.Marshal(map[string]string{"endpoint_id": e.ID, "reason": reason, "detail": detail})
		trail.Add(&keyplane.AuditEvent{ID: newID("evt"), Time: e.UpdatedAt, Type: keyplane.AuditWebhookDisabled, AccountID: e.AccountID,
			Actor: keyplane.AuditActor{Kind: "system", ID: "webhooks"}, Details: details})
		return nil
	})
	if err != nil {
		d.log.Warn("webhooks: cannot disable an endpoint", "endpoint_id", ep.ID, "error", err)
		return
	}
	d.log.Info("webhooks: endpoint disabled", "endpoint_id", ep.ID, "reason", reason)
}
