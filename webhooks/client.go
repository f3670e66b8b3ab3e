package webhooks

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// Timeouts of a delivery.
const (
	ConnectTimeout = 5 * time.Second
	RequestTimeout = 15 * time.Second
)

// ErrForbiddenAddress is a dial refused: the host resolved to an address
// that is not public, without --webhooks-allow-private.
var ErrForbiddenAddress = errors.New("webhooks: the address is private, loopback or otherwise not public")

// nonPublic are ranges IsPrivate and friends do not cover but that are no
// place for a webhook either.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: may reach IPv4 private space
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2002::/16"),       // 6to4: embeds any IPv4
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("fec0::/10"),       // site-local, deprecated
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
}

// PublicAddr reports whether a delivery may go to ip without
// --webhooks-allow-private: not loopback, private, link-local (cloud
// metadata lives there), multicast or otherwise special.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// CheckURL says what is wrong with an endpoint URL, or nil: absolute,
// https (or http with allowPrivate), no credentials, a host, and for an IP
// literal or localhost a public address unless allowPrivate. Names are
// checked again, resolved, at each dial.
func CheckURL(raw string, allowPrivate bool) error {
	if len(raw) > 2048 {
		return errors.New("is longer than 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return errors.New("is not an absolute http(s) URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowPrivate:
	case u.Scheme == "http":
		return errors.New("must use https (http only with --webhooks-allow-private)")
	default:
		return fmt.Errorf("scheme %q: want https", u.Scheme)
	}
	if u.User != nil {
		return errors.New("must not carry credentials; the signature authenticates deliveries")
	}
	if u.Fragment != "" {
		return errors.New("must not have a fragment")
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("has no host")
	}
	if allowPrivate {
		return nil
	}
	if host == "localhost" || len(host) > len(".localhost") && host[len(host)-len(".localhost"):] == ".localhost" {
		return errors.New("is a private address (allowed only with --webhooks-allow-private)")
	}
	if ip, err := netip.ParseAddr(host); err == nil && !PublicAddr(ip) {
		return errors.New("is a private address (allowed only with --webhooks-allow-private)")
	}
	return nil
}

// NewClient returns the HTTP client deliveries go through. Every address
// it connects to is checked after DNS resolution, in the dialer's Control
// hook, so a name that resolves (or re-resolves) to a private address is
// refused: no DNS-rebinding bypass. It follows no redirects, uses no proxy
// from the environment (which would dial for it, unchecked), connects
// within 5 s and gives up on a request after timeout.
func NewClient(allowPrivate bool, timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = RequestTimeout
	}
	dialer := &net.Dialer{Timeout: ConnectTimeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !PublicAddr(ap.Addr()) {
				return ErrForbiddenAddress
			}
			return nil
		}
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   ConnectTimeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a 3xx is an answer, not a 2xx
		},
	}
}

// closeIdle lets go of the client's idle connections.
func closeIdle(c *http.Client) {
	if t, ok := c.Transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}
