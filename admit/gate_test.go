package admit_test

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/keyplane/keyplane/admit"
)

func TestClientIP(t *testing.T) {
	g := admit.NewGate(admit.GateConfig{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}})
	for _, c := range []struct {
		name, peer string
		header     map[string][]string
		fromProxy  bool
		want       string
	}{
		{"no proxy: the peer, whatever the headers", "198.51.100.1:1234", map[string][]string{"X-Forwarded-For": {"203.0.113.1"}}, false, "198.51.100.1"},
		{"rightmost untrusted entry", "10.0.0.1:1", map[string][]string{"X-Forwarded-For": {"1.1.1.1, 203.0.113.1, 10.0.0.2"}}, true, "203.0.113.1"},
		{"several header lines", "10.0.0.1:1", map[string][]string{"X-Forwarded-For": {"1.1.1.1", "203.0.113.1, 10.0.0.2"}}, true, "203.0.113.1"},
		{"all trusted: the leftmost", "10.0.0.1:1", map[string][]string{"X-Forwarded-For": {"10.0.0.3, 10.0.0.2"}}, true, "10.0.0.3"},
		{"entries with ports, IPv6", "[fd00::1]:1", map[string][]string{"X-Forwarded-For": {"[2001:db8::7]:443, fd00::2"}}, true, "2001:db8::7"},
		{"garbage stops at the last vouched address", "10.0.0.1:1", map[string][]string{"X-Forwarded-For": {"203.0.113.1, nonsense, 10.0.0.2"}}, true, "10.0.0.2"},
		{"X-Real-IP without X-Forwarded-For", "10.0.0.1:1", map[string][]string{"X-Real-Ip": {"203.0.113.9"}}, true, "203.0.113.9"},
		{"X-Forwarded-For wins over X-Real-IP", "10.0.0.1:1", map[string][]string{"X-Real-Ip": {"203.0.113.9"}, "X-Forwarded-For": {"203.0.113.1"}}, true, "203.0.113.1"},
		{"IPv4-mapped peer", "[::ffff:198.51.100.1]:1", nil, false, "198.51.100.1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.peer
			for k, v := range c.header {
				r.Header[k] = v
			}
			if got := g.ClientIP(r, c.fromProxy); got.String() != c.want {
				t.Fatalf("ClientIP = %s, want %s", got, c.want)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := admit.ParseTrustedProxies([]string{"10.0.0.0/8", " 192.168.1.7 ", "", "fd00::1/8"})
	if err != nil || len(got) != 3 || got[1].String() != "192.168.1.7/32" || got[2].String() != "fd00::/8" {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := admit.ParseTrustedProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Fatal("a bad CIDR was accepted")
	}
}
