package keyplanemw

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// UsageEvent is one request's outcome, as the middleware saw it.
type UsageEvent struct {
	KeyID     string
	AccountID string
	// Endpoint is the name the request was verified under (Config.Endpoint).
	Endpoint string
	Time     time.Time
	Code     string        // VALID for an admitted request, else the refusal
	Status   int           // the HTTP status the client got
	Latency  time.Duration // the handler's; 0 for a refusal
	// Verified is true when keyplane verified this very request (a cache
	// miss, a metered key, a refusal): keyplane counted it then. A request
	// answered from the cache is false: keyplane never saw it.
	Verified bool
}

// UsageReporter receives usage events. Report is called on the request path
// after the response: it must not block.
type UsageReporter interface {
	Report(UsageEvent)
}

// UsageBatcherConfig tunes a UsageBatcher; zero values take the defaults.
type UsageBatcherConfig struct {
	// FlushInterval is how often events are sent; default 1 s.
	FlushInterval time.Duration
	// MaxPending bounds the events kept while keyplane does not take them;
	// past it new events are dropped (and counted in the log). Default 100 000.
	MaxPending int
	// HTTPClient sends the batches; nil is a client with a 10 s timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// maxBatch is what POST /v1/usage takes at once.
const maxBatch = 1000

// maxEventAge keeps events keyplane would refuse (over 24 hours old) out of a
// batch: a batch is refused whole.
const maxEventAge = 23 * time.Hour

// UsageBatcher sends the outcomes of admitted requests to keyplane's
// POST /v1/usage in batches: each request's status (a 5xx counts as an
// error) and the handler's latency, for keyplane's usage analytics.
//
// keyplane counts a request when it verifies it; /v1/usage only adds the
// outcome. So the batcher sends only events of requests keyplane verified
// (Verified, Code VALID): requests answered from the middleware's cache are
// not in keyplane's usage at all. Set Config.CacheTTL negative when
// keyplane's counts must include every request of unmetered keys.
type UsageBatcher struct {
	url, auth string
	client    *http.Client
	log       *slog.Logger
	interval  time.Duration
	max       int

	mu      sync.Mutex
	pending []usageEventBody
	dropped int
	wake    chan struct{}
	done    chan struct{}
	stop    context.CancelFunc
}

// usageEventBody is an event as POST /v1/usage takes it.
type usageEventBody struct {
	KeyID     string    `json:"key_id"`
	Endpoint  string    `json:"endpoint,omitempty"`
	Status    int       `json:"status"`
	LatencyMs float64   `json:"latency_ms,omitempty"`
	Time      time.Time `json:"time"`
}

// NewUsageBatcher starts a batcher for the keyplane at serverURL with an
// operator token (role verify is enough). Close it to send what is left.
func NewUsageBatcher(serverURL, token string, cfg UsageBatcherConfig) *UsageBatcher {
	b := &UsageBatcher{url: strings.TrimRight(serverURL, "/") + "/v1/usage", auth: "Bearer " + token, client: cfg.HTTPClient, log: cfg.Logger,
		interval: cfg.FlushInterval, max: cfg.MaxPending, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if b.client == nil {
		b.client = &http.Client{Timeout: 10 * time.Second}
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.interval <= 0 {
		b.interval = time.Second
	}
	if b.max <= 0 {
		b.max = 100_000
	}
	ctx, stop := context.WithCancel(context.Background())
	b.stop = stop
	go b.run(ctx)
	return b
}

// Report implements UsageReporter: it queues the event and never blocks.
func (b *UsageBatcher) Report(ev UsageEvent) {
	if !ev.Verified || ev.Code != "VALID" || ev.KeyID == "" {
		return // keyplane did not count it, or counted the refusal already
	}
	body := usageEventBody{KeyID: ev.KeyID, Endpoint: ev.Endpoint, Status: ev.Status, LatencyMs: float64(ev.Latency) / float64(time.Millisecond), Time: ev.Time.UTC()}
	b.mu.Lock()
	if len(b.pending) >= b.max {
		b.dropped++
		b.mu.Unlock()
		return
	}
	b.pending = append(b.pending, body)
	full := len(b.pending) >= maxBatch
	b.mu.Unlock()
	if full {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

func (b *UsageBatcher) run(ctx context.Context) {
	defer close(b.done)
	t := time.NewTicker(b.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.wake:
		}
		b.Flush(ctx)
	}
}

// Flush sends what is queued now, in batches of up to 1,000. Events that
// could not be sent stay queued for the next flush.
func (b *UsageBatcher) Flush(ctx context.Context) error {
	b.mu.Lock()
	batch := b.pending
	b.pending = nil
	dropped := b.dropped
	b.dropped = 0
	b.mu.Unlock()
	if dropped > 0 {
		b.log.WarnContext(ctx, "keyplane usage events dropped: keyplane did not take them fast enough", "dropped", dropped)
	}
	cutoff := time.Now().Add(-maxEventAge)
	fresh := batch[:0]
	for _, ev := range batch {
		if ev.Time.After(cutoff) {
			fresh = append(fresh, ev)
		}
	}
	batch = fresh
	for len(batch) > 0 {
		n := min(len(batch), maxBatch)
		retry, err := b.send(ctx, batch[:n])
		if err != nil {
			if retry {
				b.requeue(batch)
			}
			b.log.WarnContext(ctx, "keyplane usage report failed", "error", err, "events", len(batch), "kept", retry)
			return err
		}
		batch = batch[n:]
	}
	return nil
}

// requeue puts unsent events back in front of those queued since.
func (b *UsageBatcher) requeue(events []usageEventBody) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending = append(events, b.pending...)
	if over := len(b.pending) - b.max; over > 0 {
		b.pending = b.pending[over:] // the oldest go first
		b.dropped += over
	}
}

// send posts one batch; retry says whether keyplane may take it later (it
// was down) or refused it for good (a 4xx: resending would not help).
func (b *UsageBatcher) send(ctx context.Context, events []usageEventBody) (retry bool, err error) {
	body, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", b.auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusAccepted {
		io.Copy(io.Discard, resp.Body)
		return false, nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests,
		fmt.Errorf("keyplane answered %s: %s", resp.Status, bytes.TrimSpace(msg))
}

// Close stops the batcher and sends what is queued, within ctx.
func (b *UsageBatcher) Close(ctx context.Context) error {
	b.stop()
	<-b.done
	return b.Flush(ctx)
}
