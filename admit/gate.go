package admit

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/problem"
	"github.com/keyplane/keyplane/routes"
)

// Identity headers: what forward-auth answers and the gateway adds to each
// admitted request, for the operator's API to read. Anything a client sends
// with the prefix is removed first, so an upstream can trust them.
const (
	HeaderKeyID      = "X-Keyplane-Key-Id"
	HeaderAccountID  = "X-Keyplane-Account-Id"
	HeaderScopes     = "X-Keyplane-Scopes"
	IdentityPrefix   = "X-Keyplane-"
	HeaderProxyToken = "X-Keyplane-Token" // a forward-auth caller's operator token
)

// Verifier answers a verification: the service.
type Verifier interface {
	Verify(ctx context.Context, req keyplane.VerifyRequest) (keyplane.VerifyResult, error)
}

// Gate admits or refuses one request to the operator's API, for forward-auth
// and for gateway mode: it finds the request's key, route rule and client
// address, verifies, and says what to answer.
type Gate struct {
	svc       Verifier
	rules     *routes.Source
	keyHeader string
	keyQuery  string
	trusted   []netip.Prefix
	log       *slog.Logger
}

// GateConfig configures a Gate.
type GateConfig struct {
	Service Verifier
	// Rules maps routes to scopes and costs; nil means no rules file: every
	// valid key may call every path.
	Rules *routes.Source
	// KeyHeader and KeyQuery name another header and a query parameter that
	// carry the key, besides Authorization: Bearer and X-API-Key.
	KeyHeader, KeyQuery string
	// TrustedProxies are the peers whose X-Forwarded-For and X-Real-IP are
	// believed, and who may call forward-auth without a token.
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
}

// NewGate returns a Gate.
func NewGate(cfg GateConfig) *Gate {
	g := &Gate{svc: cfg.Service, rules: cfg.Rules, keyHeader: http.CanonicalHeaderKey(cfg.KeyHeader), keyQuery: cfg.KeyQuery,
		trusted: cfg.TrustedProxies, log: cfg.Logger}
	if g.rules == nil {
		g.rules = routes.Static(routes.AllowAll())
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	return g
}

// keySource is where a request carried its key.
type keySource uint8

const (
	keyNowhere keySource = iota
	keyInHeader
	keyInAPIKeyHeader
	keyInAuthorization
	keyInQuery
)

// Admission is a Gate's answer for one request.
type Admission struct {
	Result keyplane.VerifyResult
	// Rule is the route rule that matched; nil when none did.
	Rule *routes.Rule
	// Problem is the refusal, nil when the request is admitted.
	Problem *problem.Problem
	keyFrom keySource
}

// Admitted reports whether the request may go on to the operator's API.
func (a *Admission) Admitted() bool { return a.Problem == nil }

// Endpoint names the route for usage: the rule's pattern, "" when no rule matched.
func (a *Admission) Endpoint() string {
	if a.Rule == nil {
		return ""
	}
	return a.Rule.Pattern
}

// Admit decides whether a request of method to u, with header h, from the
// client at ip may go on.
func (g *Gate) Admit(ctx context.Context, method string, u *url.URL, h http.Header, ip netip.Addr) Admission {
	var a Admission
	if !routes.Canonical(u.Path) || encodedSlash(u.RawPath) {
		a.Problem = problem.New(http.StatusBadRequest, keyplane.EINVALID, "the request path is not canonical (it has //, . or .. segments, or an encoded /)", nil)
		return a
	}
	key, from := g.findKey(h, u)
	if from == keyNowhere {
		a.Problem = problem.New(http.StatusUnauthorized, "missing_key", g.missingKeyDetail(), nil)
		return a
	}
	a.keyFrom = from
	req := keyplane.VerifyRequest{Key: key, IP: ip, Cost: 1}
	rules := g.rules.Rules()
	if a.Rule = rules.Match(method, u); a.Rule != nil {
		req.Scope, req.Cost, req.Endpoint = a.Rule.Scope, a.Rule.Cost, a.Rule.Pattern
	} else {
		switch rules.Unmatched {
		case routes.NotFound:
			a.Problem = problem.New(http.StatusNotFound, keyplane.ENOTFOUND, "no route matches "+method+" "+u.Path, nil)
			return a
		case routes.Deny:
			a.Problem = problem.New(http.StatusForbidden, "no_route", "no route rule allows "+method+" "+u.Path, nil)
			return a
		}
	}
	res, err := g.svc.Verify(ctx, req)
	if err != nil && problem.ClientGone(ctx) {
		a.Problem = problem.ClientClosed("the client closed the connection before the answer")
		return a
	} else if err != nil {
		p := problem.FromError(err)
		if p.Status >= 500 {
			g.log.ErrorContext(ctx, "verification failed", "error", err, "request_id", keyplane.RequestInfoFromContext(ctx).RequestID)
		}
		a.Problem = p
		return a
	}
	a.Result = res
	if !res.Valid {
		a.Problem = Refusal(res, req.Scope)
	}
	return a
}

// encodedSlash reports whether a raw path has %2F: rules match it inside one
// segment, but an API that decodes the path first sees two, and so a route
// whose rule may differ. RawPath is set whenever the path has one.
func encodedSlash(raw string) bool {
	for {
		i := strings.IndexByte(raw, '%')
		if i < 0 || i+2 >= len(raw) {
			return false
		}
		if raw[i+1] == '2' && raw[i+2]|0x20 == 'f' {
			return true
		}
		raw = raw[i+1:]
	}
}

func (g *Gate) missingKeyDetail() string {
	where := "Authorization: Bearer <key> or X-API-Key: <key>"
	if g.keyHeader != "" {
		where = g.keyHeader + ": <key>, " + where
	}
	if g.keyQuery != "" {
		where += ", or the query parameter " + g.keyQuery
	}
	return "no API key: send " + where
}

// findKey looks for the key in the configured header, X-API-Key,
// Authorization: Bearer, then the configured query parameter; the first
// place that has one wins.
func (g *Gate) findKey(h http.Header, u *url.URL) (string, keySource) {
	if g.keyHeader != "" {
		if v := strings.TrimSpace(HeaderValue(h, g.keyHeader)); v != "" {
			return v, keyInHeader
		}
	}
	if v := strings.TrimSpace(HeaderValue(h, "X-Api-Key")); v != "" {
		return v, keyInAPIKeyHeader
	}
	if v, ok := strings.CutPrefix(HeaderValue(h, "Authorization"), "Bearer "); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v), keyInAuthorization
	}
	if g.keyQuery != "" && u.RawQuery != "" {
		if v := u.Query().Get(g.keyQuery); v != "" {
			return v, keyInQuery
		}
	}
	return "", keyNowhere
}

// HeaderValue is h.Get for a key already in canonical form, without
// canonicalising it again.
func HeaderValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// StripCredentials removes the key from a request that goes on to the
// operator's API, wherever keyplane looks for one: the configured header,
// X-API-Key, the configured query parameter, and Authorization when it
// carried the key (otherwise it may be meant for the upstream). It also
// removes every X-Keyplane-* header a client sent, which only keyplane may set.
func (g *Gate) StripCredentials(a *Admission, h http.Header, u *url.URL) {
	for name := range h {
		if strings.HasPrefix(name, IdentityPrefix) {
			delete(h, name)
		}
	}
	if g.keyHeader != "" {
		delete(h, g.keyHeader)
	}
	delete(h, "X-Api-Key")
	if a.keyFrom == keyInAuthorization {
		delete(h, "Authorization")
	}
	if g.keyQuery != "" && u.RawQuery != "" {
		if q := u.Query(); q.Has(g.keyQuery) {
			q.Del(g.keyQuery)
			u.RawQuery = q.Encode()
		}
	}
}

// SetIdentity writes the identity headers of an admitted request.
func SetIdentity(h http.Header, a *Admission) {
	k := a.Result.Key
	if k == nil {
		return
	}
	h[HeaderKeyID] = []string{k.ID}
	h[HeaderAccountID] = []string{k.AccountID}
	h[HeaderScopes] = []string{strings.Join(k.Scopes, ",")}
}

// TrustedPeer reports whether the request comes straight from a trusted proxy.
func (g *Gate) TrustedPeer(r *http.Request) bool {
	return g.trustedAddr(PeerAddr(r))
}

func (g *Gate) trustedAddr(ip netip.Addr) bool {
	for _, p := range g.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ClientIP is the address of the client a request came from. Only when the
// request came through a proxy keyplane trusts (fromProxy) does it read
// X-Forwarded-For, right to left, skipping trusted proxies: the rightmost
// entries are the ones those proxies added, the leftmost anyone could have
// written. Without X-Forwarded-For it reads X-Real-IP.
func (g *Gate) ClientIP(r *http.Request, fromProxy bool) netip.Addr {
	peer := PeerAddr(r)
	if !fromProxy {
		return peer
	}
	xff := r.Header["X-Forwarded-For"]
	if len(xff) == 0 {
		if ip := parseIP(HeaderValue(r.Header, "X-Real-Ip")); ip.IsValid() {
			return ip
		}
		return peer
	}
	client := peer
	for i := len(xff) - 1; i >= 0; i-- {
		list := xff[i]
		for list != "" {
			entry := list
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				entry, list = list[j+1:], list[:j]
			} else {
				list = ""
			}
			ip := parseIP(entry)
			if !ip.IsValid() {
				return client // garbage: stop at the last address a trusted hop vouched for
			}
			client = ip
			if !g.trustedAddr(ip) {
				return client
			}
		}
	}
	return client
}

// PeerAddr is the address of the connection's other end.
func PeerAddr(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	return parseIP(r.RemoteAddr)
}

// parseIP reads an address as proxies write them: bare, or with a port.
func parseIP(s string) netip.Addr {
	s = strings.TrimSpace(s)
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.Unmap()
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// ParseTrustedProxies reads CIDRs (a bare address is itself).
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		} else if ip, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
		} else {
			return nil, keyplane.Errorf(keyplane.EINVALID, "trusted proxy %q: want a CIDR like 10.0.0.0/8 or an address", s)
		}
	}
	return out, nil
}

// Refusal is the problem for a verification that did not pass, with the
// rate-limit headers the operator's client is owed.
func Refusal(res keyplane.VerifyResult, scope string) *problem.Problem {
	p := problem.Refusal(res.Code, scope)
	RateLimitHeaders(p.Header(), res)
	return p
}
