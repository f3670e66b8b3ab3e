package service

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/keyplane/keyplane/password"
	"github.com/keyplane/keyplane/teststore"
)

// The throttle remembers an email per failed sign-in; a form may send tens
// of kilobytes as one, so what it keeps is bounded, or a flood from many
// addresses would hold gigabytes.
func TestSignInThrottleKeysAreBounded(t *testing.T) {
	s, err := New(teststore.New(t), Config{PasswordParams: password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 60<<10) + "@example.com"
	if _, err := s.SignIn(context.Background(), long, "wrong password!!", netip.MustParseAddr("192.0.2.1")); err == nil {
		t.Fatal("signed in")
	}
	for k := range s.signins.tat {
		if len(k) > 300 {
			t.Fatalf("the throttle keeps a key of %d bytes", len(k))
		}
	}
}
