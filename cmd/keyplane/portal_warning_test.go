package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// The portal on an address other than loopback without HTTPS sends
// passwords and session cookies in the clear: serve says so at start-up.
// (0.0.0.0 is every address, the usual way to serve a LAN; 127.0.0.2 would
// count as loopback.)
func TestServeWarnsPortalWithoutTLS(t *testing.T) {
	const warning = "the portal is served over plain HTTP"
	db := filepath.Join(t.TempDir(), "k.db")
	s := startServer(t, "--database", db, "--addr", "0.0.0.0:0", "--portal-cookie-secure=false")
	if !strings.Contains(s.logs.String(), warning) {
		t.Fatalf("no warning about plain HTTP in:\n%s", s.logs.String())
	}
	// Loopback, or HTTPS (a Secure cookie: TLS ends at a proxy in front), is quiet.
	for _, args := range [][]string{{"--database", filepath.Join(t.TempDir(), "k.db")}, {"--database", filepath.Join(t.TempDir(), "k.db"), "--addr", "0.0.0.0:0"}} {
		if s := startServer(t, args...); strings.Contains(s.logs.String(), warning) {
			t.Fatalf("%v: warned:\n%s", args, s.logs.String())
		}
	}
}
