package keyplanemw

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/problem"
	"github.com/maypok86/otter/v2"
)

// DefaultCacheTTL is how long a valid answer is reused when Config.CacheTTL is 0.
const DefaultCacheTTL = 10 * time.Second

// Config configures the middleware. ServerURL and Token are required unless
// Verifier is set.
type Config struct {
	// ServerURL is keyplane's base URL, e.g. "http://127.0.0.1:8080".
	ServerURL string
	// Token is an operator token of role verify (keyplane token create --role verify).
	Token string
	// Verifier is how keyplane is asked; nil means POST /v1/verify over HTTP
	// (NewHTTPVerifier). NewConnectVerifier speaks the gRPC API instead.
	Verifier Verifier
	// HTTPClient is used by the default Verifier; nil is a client with a 5 s timeout.
	HTTPClient *http.Client

	// Scope returns the scope a request needs ("" for none); nil means none.
	// ScopeByRoute builds one from ServeMux patterns.
	Scope func(*http.Request) string
	// Cost returns what the request is charged against rate limits and
	// quota; nil means 1.
	Cost func(*http.Request) int64
	// Endpoint names the request for usage reports; nil means the ServeMux
	// pattern that matched (when the middleware wraps a single route), else
	// the method alone, so paths with ids do not make every request an endpoint.
	Endpoint func(*http.Request) string
	// KeyFrom returns the request's API key; nil means X-API-Key, else
	// Authorization: Bearer.
	KeyFrom func(*http.Request) string
	// ClientIP returns the client's address, checked against the key's
	// allowed ranges; nil means the connection's remote address. Behind a
	// proxy, return the address the proxy reports.
	ClientIP func(*http.Request) netip.Addr

	// CacheTTL bounds how long a valid answer is reused; 0 means
	// DefaultCacheTTL and a negative value turns the cache off.
	CacheTTL time.Duration
	// CacheSize bounds the cached answers; 0 means 10 000.
	CacheSize int

	// FailOpen lets requests through, without an identity, when keyplane
	// cannot answer; by default they get 503 (fail closed).
	FailOpen bool
	// Usage receives an event for each request after the handler ran (or
	// was refused); nil reports nothing. NewUsageBatcher sends them to
	// keyplane's POST /v1/usage.
	Usage  UsageReporter
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Identity is the key an admitted request carries.
type Identity struct {
	KeyID       string
	AccountID   string
	Name        string
	Environment string // live or test
	Scopes      []string
	Metadata    json.RawMessage // the key's metadata, a JSON object
	ExpiresAt   *time.Time
}

type identityKey struct{}

// FromContext returns the identity of the request's key; false when the
// request was not admitted by the middleware (or was let through by FailOpen).
func FromContext(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(*Identity)
	return id, ok
}

// cacheKey is what a valid answer depends on: the key (by its hash, so the
// plaintext is not kept), the scope asked and the client address.
type cacheKey struct {
	hash  [32]byte
	scope string
	ip    netip.Addr
}

type cached struct {
	identity *Identity
	expires  time.Time
}

type middleware struct {
	cfg      Config
	verifier Verifier
	cache    *otter.Cache[cacheKey, cached]
	ttl      time.Duration
	log      *slog.Logger
	now      func() time.Time
	lastWarn atomic.Int64 // unix seconds of the last "keyplane unavailable" log
}

// New returns the middleware.
func New(cfg Config) (func(http.Handler) http.Handler, error) {
	m := &middleware{cfg: cfg, verifier: cfg.Verifier, ttl: cfg.CacheTTL, log: cfg.Logger, now: cfg.Now}
	if m.verifier == nil {
		if cfg.ServerURL == "" || cfg.Token == "" {
			return nil, errors.New("keyplanemw: ServerURL and Token are required")
		}
		m.verifier = NewHTTPVerifier(cfg.ServerURL, cfg.Token, cfg.HTTPClient)
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.ttl == 0 {
		m.ttl = DefaultCacheTTL
	}
	if m.ttl > 0 {
		size := cfg.CacheSize
		if size <= 0 {
			size = 10_000
		}
		c, err := otter.New(&otter.Options[cacheKey, cached]{
			MaximumSize: size,
			// Entries go when they stop being valid; reads check too, on the middleware's clock.
			ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[cacheKey, cached]) time.Duration {
				return e.Value.expires.Sub(m.now())
			}),
		})
		if err != nil {
			return nil, err
		}
		m.cache = c
	}
	return m.wrap, nil
}

func (m *middleware) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := m.now()
		key := m.keyOf(r)
		if key == "" {
			problem.Write(w, problem.New(http.StatusUnauthorized, "missing_key", "no API key: send X-API-Key: <key> or Authorization: Bearer <key>", nil))
			return
		}
		req := VerifyRequest{Key: key, Cost: 1}
		if m.cfg.Scope != nil {
			req.Scope = m.cfg.Scope(r)
		}
		ip := m.clientIP(r)
		ck := cacheKey{hash: apikey.Hash(key), scope: req.Scope, ip: ip}
		if id, ok := m.lookup(ck, now); ok {
			m.serve(w, r, next, id, nil, "")
			return
		}
		if len(key) > 256 {
			// keyplane would reject the request itself; no key is this long.
			problem.Write(w, problem.Refusal(keyplane.VerifyNotFound, ""))
			return
		}
		if ip.IsValid() {
			req.IP = ip.String()
		}
		if m.cfg.Cost != nil {
			req.Cost = m.cfg.Cost(r)
		}
		req.Endpoint = m.endpoint(r)
		res, err := m.verifier.Verify(r.Context(), req)
		if err != nil {
			m.unavailable(w, r, next, err, now)
			return
		}
		if !res.Valid {
			m.refuse(w, res, req.Scope, req.Endpoint)
			return
		}
		id := &Identity{KeyID: res.KeyID, AccountID: res.AccountID, Name: res.Name, Environment: res.Environment,
			Scopes: res.Scopes, Metadata: res.Metadata, ExpiresAt: res.ExpiresAt}
		if m.cache != nil && !res.metered() {
			expires := now.Add(m.ttl)
			if res.ExpiresAt != nil && res.ExpiresAt.Before(expires) {
				expires = *res.ExpiresAt
			}
			m.cache.Set(ck, cached{identity: id, expires: expires})
		}
		m.serve(w, r, next, id, res, req.Endpoint)
	})
}

// lookup returns a cached identity still valid at now.
func (m *middleware) lookup(ck cacheKey, now time.Time) (*Identity, bool) {
	if m.cache == nil {
		return nil, false
	}
	c, ok := m.cache.GetIfPresent(ck)
	if !ok || !now.Before(c.expires) {
		return nil, false
	}
	return c.identity, true
}

// serve runs the handler for an admitted request. res is keyplane's answer,
// nil when the cache answered; endpoint is what the verification was sent.
func (m *middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler, id *Identity, res *Result, endpoint string) {
	if res != nil {
		rateLimitHeaders(w.Header(), res)
	}
	r = r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
	if m.cfg.Usage == nil {
		next.ServeHTTP(w, r)
		return
	}
	if res == nil {
		endpoint = m.endpoint(r)
	}
	rec := &statusRecorder{ResponseWriter: w}
	start := m.now()
	next.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	m.cfg.Usage.Report(UsageEvent{KeyID: id.KeyID, AccountID: id.AccountID, Endpoint: endpoint, Time: start, Code: "VALID",
		Status: rec.status, Latency: m.now().Sub(start), Verified: res != nil})
}

func (m *middleware) refuse(w http.ResponseWriter, res *Result, scope, endpoint string) {
	// A code newer than this package is refused with 403.
	p := problem.Refusal(keyplane.VerifyCode(res.Code), scope)
	status := p.Status
	rateLimitHeaders(p.Header(), res)
	problem.Write(w, p)
	if m.cfg.Usage != nil && res.KeyID != "" {
		m.cfg.Usage.Report(UsageEvent{KeyID: res.KeyID, AccountID: res.AccountID, Endpoint: endpoint, Time: m.now(), Code: res.Code,
			Status: status, Verified: true})
	}
}

// unavailable answers a request keyplane could not verify: 503 (fail
// closed), or the handler without an identity when FailOpen.
func (m *middleware) unavailable(w http.ResponseWriter, r *http.Request, next http.Handler, err error, now time.Time) {
	// One line a second at most: an outage must not flood the logs.
	if sec := now.Unix(); m.lastWarn.Swap(sec) != sec {
		m.log.WarnContext(r.Context(), "keyplane could not verify a key", "error", err, "fail_open", m.cfg.FailOpen)
	}
	if m.cfg.FailOpen {
		next.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Retry-After", "1")
	problem.Write(w, problem.New(http.StatusServiceUnavailable, "unavailable", "the API key could not be verified; try again", nil))
}

func (m *middleware) keyOf(r *http.Request) string {
	if m.cfg.KeyFrom != nil {
		return m.cfg.KeyFrom(r)
	}
	// Canonical names read straight from the map: Header.Get would
	// canonicalise them again on every request.
	if v := firstValue(r.Header, "X-Api-Key"); v != "" {
		return strings.TrimSpace(v)
	}
	if v, ok := strings.CutPrefix(firstValue(r.Header, "Authorization"), "Bearer "); ok {
		return strings.TrimSpace(v)
	}
	return ""
}

func firstValue(h http.Header, canonicalKey string) string {
	if v := h[canonicalKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (m *middleware) clientIP(r *http.Request) netip.Addr {
	if m.cfg.ClientIP != nil {
		return m.cfg.ClientIP(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, _ := netip.ParseAddr(host)
	return ip.Unmap()
}

// maxEndpoint is the longest endpoint name keyplane's usage keeps; a longer
// one would make /v1/verify and /v1/usage refuse the request.
const maxEndpoint = 200

func (m *middleware) endpoint(r *http.Request) string {
	if m.cfg.Endpoint != nil {
		e := m.cfg.Endpoint(r)
		if len(e) > maxEndpoint {
			e = strings.ToValidUTF8(e[:maxEndpoint], "")
		}
		return e
	}
	if r.Pattern != "" {
		return r.Pattern
	}
	return r.Method
}

// rateLimitHeaders writes the IETF RateLimit fields, the common
// X-RateLimit-* ones and, for a refusal, Retry-After, as keyplane's own
// forward-auth and gateway do.
func rateLimitHeaders(h http.Header, res *Result) {
	if res.RetryAfterSeconds > 0 {
		h.Set("Retry-After", strconv.FormatInt(res.RetryAfterSeconds, 10))
	}
	rl := res.RateLimit
	if rl == nil {
		return
	}
	policy := strconv.Quote(rl.Policy)
	h.Set("RateLimit-Policy", policy+";q="+strconv.FormatInt(rl.Limit, 10)+";w="+strconv.FormatInt(rl.WindowSeconds, 10))
	h.Set("RateLimit", policy+";r="+strconv.FormatInt(rl.Remaining, 10)+";t="+strconv.FormatInt(rl.ResetSeconds, 10))
	h.Set("X-RateLimit-Limit", strconv.FormatInt(rl.Limit, 10))
	h.Set("X-RateLimit-Remaining", strconv.FormatInt(rl.Remaining, 10))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(rl.ResetSeconds, 10))
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and the like.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
