package apikey

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	key, other, token := New(DefaultPrefix, "live"), New("acme2", "test"), NewToken()
	badChecksum := key[:len(key)-1] + string(Alphabet[(strings.IndexByte(Alphabet, key[len(key)-1])+1)%62])
	for _, tc := range []struct{ in, want string }{
		{"/v1/keys/" + key, "/v1/keys/[redacted key]"},
		{"/v1/keys/" + key + "/revoke", "/v1/keys/[redacted key]/revoke"},
		{"/v1/keys/" + other, "/v1/keys/[redacted key]"},
		{"/v1/keys/" + badChecksum, "/v1/keys/[redacted key]"},
		{"/v1/keys/" + key + "x", "/v1/keys/[redacted key]"},        // one character too many
		{"/v1/keys/" + key[:len(key)-3], "/v1/keys/[redacted key]"}, // or too few
		{"/v1/keys/" + token, "/v1/keys/[redacted token]"},
		{"/v1/accounts/x" + token + "/keys", "/v1/accounts/x[redacted token]/keys"},
		{"/v1/forward-auth/things/" + key + "/" + token, "/v1/forward-auth/things/[redacted key]/[redacted token]"},
		{"/things/id=" + key, "/things/id=[redacted key]"},
		{"/v1/keys/key_01jd7e7x3m4a1ekn6wq2hmz1vc", "/v1/keys/key_01jd7e7x3m4a1ekn6wq2hmz1vc"},
		{"/v1/plans/my_test_plan", "/v1/plans/my_test_plan"},
		{"/v1/tokens/kpt_short", "/v1/tokens/kpt_short"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Every request's path goes through Redact before its log line.
func TestRedactCleanPathDoesNotAllocate(t *testing.T) {
	path := "/v1/accounts/acc_01jd7e7x3m4a1ekn6wq2hmz1vc/keys"
	if n := testing.AllocsPerRun(100, func() { Redact(path) }); n != 0 {
		t.Fatalf("Redact of a path without secrets allocates %v times", n)
	}
}
