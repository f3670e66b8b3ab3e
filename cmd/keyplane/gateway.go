package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/admit"
	"github.com/keyplane/keyplane/gateway"
	"github.com/keyplane/keyplane/httpapi"
	"github.com/keyplane/keyplane/routes"
	"github.com/keyplane/keyplane/service"
	"github.com/spf13/pflag"
)

// gateOptions are the flags of forward-auth and gateway mode.
type gateOptions struct {
	upstream, adminAddr                              string
	routesFile, keyHeader, keyQuery, forwardAuthMode string
	trustedProxies                                   []string
	nginxLimitedStatus                               int
}

func (o *gateOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.upstream, "upstream", "", "gateway mode: proxy admitted requests on --addr to this http(s) URL; the API moves to --admin-addr ($KEYPLANE_UPSTREAM)")
	f.StringVar(&o.adminAddr, "admin-addr", "127.0.0.1:8081", "gateway mode: address of keyplane's own API ($KEYPLANE_ADMIN_ADDR)")
	f.StringVar(&o.routesFile, "routes", "", "route rules file (YAML) mapping method and path to scope and cost, reloaded on SIGHUP; without one every valid key may call every path ($KEYPLANE_ROUTES)")
	f.StringVar(&o.keyHeader, "key-header", "", "another request header that carries the API key, besides Authorization: Bearer and X-API-Key ($KEYPLANE_KEY_HEADER)")
	f.StringVar(&o.keyQuery, "key-query", "", "a query parameter that carries the API key ($KEYPLANE_KEY_QUERY)")
	f.StringSliceVar(&o.trustedProxies, "trusted-proxies", nil, "CIDRs of proxies whose X-Forwarded-For is believed and that may call /v1/forward-auth without a token ($KEYPLANE_TRUSTED_PROXIES)")
	f.StringVar(&o.forwardAuthMode, "forward-auth-mode", httpapi.ModeStandard, "how /v1/forward-auth refuses when the call has no ?mode=: standard (401/403/429) or nginx (401/403 only) ($KEYPLANE_FORWARD_AUTH_MODE)")
	f.IntVar(&o.nginxLimitedStatus, "nginx-limited-status", 403, "the status forward-auth answers in nginx mode for a rate limit or quota: 403 or 401 ($KEYPLANE_NGINX_LIMITED_STATUS)")
}

func init() {
	for flag, env := range map[string]string{
		"upstream":             "KEYPLANE_UPSTREAM",
		"admin-addr":           "KEYPLANE_ADMIN_ADDR",
		"routes":               "KEYPLANE_ROUTES",
		"key-header":           "KEYPLANE_KEY_HEADER",
		"key-query":            "KEYPLANE_KEY_QUERY",
		"trusted-proxies":      "KEYPLANE_TRUSTED_PROXIES",
		"forward-auth-mode":    "KEYPLANE_FORWARD_AUTH_MODE",
		"nginx-limited-status": "KEYPLANE_NGINX_LIMITED_STATUS",
	} {
		envNames[flag] = env
	}
}

// gate checks the flags and builds the forward-auth configuration and the
// rules source.
func (o *gateOptions) gate(svc *service.Service, log *slog.Logger) (*admit.Gate, httpapi.ForwardAuthConfig, *routes.Source, error) {
	var fa httpapi.ForwardAuthConfig
	if o.forwardAuthMode != httpapi.ModeStandard && o.forwardAuthMode != httpapi.ModeNginx {
		return nil, fa, nil, fmt.Errorf("--forward-auth-mode %q: want standard or nginx", o.forwardAuthMode)
	}
	if o.nginxLimitedStatus != 401 && o.nginxLimitedStatus != 403 {
		return nil, fa, nil, fmt.Errorf("--nginx-limited-status %d: want 403 or 401, the only refusals nginx passes on", o.nginxLimitedStatus)
	}
	if o.keyHeader != "" && (!isToken(o.keyHeader) || strings.HasPrefix(strings.ToLower(o.keyHeader), "x-keyplane-")) {
		return nil, fa, nil, fmt.Errorf("--key-header %q: want a header name, not starting with X-Keyplane-", o.keyHeader)
	}
	if o.keyQuery != "" && !isToken(o.keyQuery) {
		return nil, fa, nil, fmt.Errorf("--key-query %q: want a parameter name", o.keyQuery)
	}
	if o.upstream != "" {
		if _, err := routes.ParseUpstream(o.upstream); err != nil {
			return nil, fa, nil, fmt.Errorf("--upstream: %w", err)
		}
	}
	trusted, err := admit.ParseTrustedProxies(o.trustedProxies)
	if err != nil {
		return nil, fa, nil, fmt.Errorf("--trusted-proxies: %s", keyplane.ErrorMessage(err))
	}
	src, err := routes.Open(o.routesFile)
	if err != nil {
		return nil, fa, nil, fmt.Errorf("--routes: %w", err)
	}
	if o.routesFile == "" {
		log.Info("no --routes file: every valid key may call every path, without a scope")
	} else {
		log.Info("route rules loaded", "file", o.routesFile, "routes", src.Rules().Len(), "unmatched", string(src.Rules().Unmatched))
	}
	fa = httpapi.ForwardAuthConfig{Mode: o.forwardAuthMode, NginxLimitedStatus: o.nginxLimitedStatus}
	g := admit.NewGate(admit.GateConfig{Service: svc, Rules: src, KeyHeader: o.keyHeader, KeyQuery: o.keyQuery, TrustedProxies: trusted, Logger: log})
	return g, fa, src, nil
}

// isToken reports whether s is an HTTP token (RFC 9110), as header names are.
func isToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c)) {
			return false
		}
	}
	return true
}

// reloadOnHangup reloads the route rules on each SIGHUP until ctx ends. A
// file with errors is logged and the rules in force stay.
func reloadOnHangup(ctx context.Context, src *routes.Source, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				rs, err := src.Reload()
				if err != nil {
					log.Error("route rules not reloaded; the previous ones stay in force", "error", err)
					continue
				}
				log.Info("route rules reloaded", "file", src.File(), "routes", rs.Len(), "unmatched", string(rs.Unmatched))
			}
		}
	}()
}

// apiAddr is where keyplane's own API listens: --addr, or in gateway mode
// --admin-addr, since --addr is then the gateway's.
func (o *serveOptions) apiAddr() string {
	if o.gate.upstream != "" {
		return o.gate.adminAddr
	}
	return o.addr
}

// gatewayServer is the gateway's listener and server, in gateway mode.
type gatewayServer struct {
	srv    *http.Server
	ln     net.Listener
	served chan error
}

// listenGateway opens --addr for the gateway; it returns nil without --upstream.
func (o *serveOptions) listenGateway(gate *admit.Gate, rules *routes.Source, usage keyplane.UsageRecorder, log *slog.Logger) (*gatewayServer, error) {
	if o.gate.upstream == "" {
		for _, r := range rules.Rules().Rules() {
			if r.Upstream != nil {
				log.Warn("route rules name upstreams, which only gateway mode (--upstream) uses", "line", r.Line)
				break
			}
		}
		return nil, nil
	}
	upstream, err := routes.ParseUpstream(o.gate.upstream)
	if err != nil {
		return nil, fmt.Errorf("--upstream: %w", err)
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return nil, err
	}
	return &gatewayServer{
		ln: ln,
		srv: &http.Server{
			Handler: gateway.New(gateway.Config{Gate: gate, Upstream: upstream, Usage: usage, Logger: log}),
			// No read or write timeout: uploads, downloads, server-sent
			// events and websockets last as long as they last.
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		served: make(chan error, 1),
	}, nil
}

func (g *gatewayServer) serve(log *slog.Logger, upstream string) {
	go func() { g.served <- g.srv.Serve(g.ln) }()
	log.Info("gateway listening", "addr", g.ln.Addr().String(), "upstream", redactURL(upstream))
}

// done is nil without a gateway, so a select on it waits forever.
func (g *gatewayServer) done() <-chan error {
	if g == nil {
		return nil
	}
	return g.served
}

// shutdown stops taking requests and waits for those in flight.
func (g *gatewayServer) shutdown(ctx context.Context) error {
	if g == nil {
		return nil
	}
	if err := g.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("gateway shutdown: %w", err)
	}
	if err := <-g.served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
