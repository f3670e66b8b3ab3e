package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/admit"
	"github.com/keyplane/keyplane/problem"
)

// Config configures a Gateway.
type Config struct {
	Gate *admit.Gate
	// Upstream receives every admitted request whose route rule names no
	// upstream of its own.
	Upstream *url.URL
	// Usage is told each admitted request's upstream status and latency;
	// nil meters none (verification itself is metered by the service).
	Usage  keyplane.UsageRecorder
	Logger *slog.Logger
	// Transport reaches the upstreams; nil is a transport that keeps enough
	// idle connections per upstream for a busy gateway.
	Transport http.RoundTripper
}

// Gateway is the reverse proxy.
type Gateway struct {
	gate     *admit.Gate
	upstream *url.URL
	usage    keyplane.UsageRecorder
	log      *slog.Logger
	proxy    *httputil.ReverseProxy
}

// New returns a Gateway.
func New(cfg Config) *Gateway {
	g := &Gateway{gate: cfg.Gate, upstream: cfg.Upstream, usage: cfg.Usage, log: cfg.Logger}
	if g.log == nil {
		g.log = slog.Default()
	}
	transport := cfg.Transport
	if transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// The default keeps 2 idle connections per host: under load the
		// gateway would open and close one per request.
		t.MaxIdleConns, t.MaxIdleConnsPerHost = 1024, 256
		transport = t
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      transport,
		FlushInterval:  -1, // every write reaches the client at once: streams stay streams
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.upstreamFailed,
		ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
		// Without a pool each response allocates a 32 KiB copy buffer.
		BufferPool: &bufferPool{},
	}
	return g
}

// bufferPool reuses ReverseProxy's copy buffers.
type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) Get() []byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, 32<<10)
}

func (p *bufferPool) Put(b []byte) { p.pool.Put(&b) }

// exchange is what the gateway knows of one request while it is proxied.
type exchange struct {
	admission admit.Admission
	target    *url.URL
	fromProxy bool
	start     time.Time
}

type exchangeKey struct{}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fromProxy := g.gate.TrustedPeer(r)
	a := g.gate.Admit(r.Context(), r.Method, r.URL, r.Header, g.gate.ClientIP(r, fromProxy))
	if !a.Admitted() {
		problem.Write(w, a.Problem)
		return
	}
	x := &exchange{admission: a, target: g.upstream, fromProxy: fromProxy, start: time.Now()}
	if a.Rule != nil && a.Rule.Upstream != nil {
		x.target = a.Rule.Upstream
	}
	g.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, x)))
}

// rewrite makes the upstream's request. ReverseProxy has already removed
// hop-by-hop and X-Forwarded-* headers from it.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	x := pr.In.Context().Value(exchangeKey{}).(*exchange)
	pr.SetURL(x.target)
	if xff := pr.In.Header["X-Forwarded-For"]; x.fromProxy && len(xff) > 0 {
		// A trusted proxy's chain goes on; an untrusted client's is dropped.
		pr.Out.Header["X-Forwarded-For"] = xff
	}
	pr.SetXForwarded()
	g.gate.StripCredentials(&x.admission, pr.Out.Header, pr.Out.URL)
	admit.SetIdentity(pr.Out.Header, &x.admission)
}

// modifyResponse adds the rate-limit fields and meters the upstream's answer.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	x := resp.Request.Context().Value(exchangeKey{}).(*exchange)
	admit.RateLimitHeaders(resp.Header, x.admission.Result)
	g.record(x, resp.StatusCode)
	return nil
}

// upstreamFailed answers 502 when the upstream could not be reached or broke
// off, unless the client itself went away.
func (g *Gateway) upstreamFailed(w http.ResponseWriter, r *http.Request, err error) {
	x := r.Context().Value(exchangeKey{}).(*exchange)
	if r.Context().Err() != nil {
		return // the client left: no one to answer, nothing the upstream did wrong
	}
	g.record(x, http.StatusBadGateway)
	detail := "the upstream did not answer"
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		detail = "the upstream timed out"
	}
	g.log.WarnContext(r.Context(), "upstream failed", "upstream", x.target.Redacted(), "method", r.Method, "error", err)
	problem.Write(w, problem.New(http.StatusBadGateway, "bad_gateway", detail, nil))
}

func (g *Gateway) record(x *exchange, status int) {
	k := x.admission.Result.Key
	if g.usage == nil || k == nil {
		return
	}
	g.usage.Record(keyplane.UsageEvent{KeyID: k.ID, AccountID: k.AccountID, Endpoint: x.admission.Endpoint(), Time: time.Now(),
		Code: x.admission.Result.Code, Status: status, Latency: time.Since(x.start)})
}
