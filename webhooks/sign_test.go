package webhooks_test

import (
	"bytes"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/webhooks"
	"github.com/keyplane/keyplane/webhooks/verify"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// The Standard Webhooks specification's published test vector (also in its
// reference libraries' tests).
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorPayload   = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignatureMatchesSpecVector(t *testing.T) {
	key, err := verify.DecodeSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := verify.Sign(key, vectorID, vectorTimestamp, []byte(vectorPayload)); got != vectorSignature {
		t.Fatalf("signature %s, want %s", got, vectorSignature)
	}
	if got := webhooks.SignatureHeader([][]byte{key}, vectorID, vectorTimestamp, []byte(vectorPayload)); got != vectorSignature {
		t.Fatalf("header %s, want %s", got, vectorSignature)
	}
	h := http.Header{}
	h.Set("webhook-id", vectorID)
	h.Set("webhook-timestamp", strconv.Itoa(vectorTimestamp))
	h.Set("webhook-signature", "v1,bm9wZQ== "+vectorSignature) // another first, as during a rotation
	if err := verify.Request(vectorSecret, h, []byte(vectorPayload), time.Unix(vectorTimestamp+60, 0)); err != nil {
		t.Fatalf("verify.Request: %v", err)
	}
	if err := verify.Request(vectorSecret, h, []byte(vectorPayload), time.Unix(vectorTimestamp+600, 0)); err != verify.ErrTimestamp {
		t.Fatalf("ten minutes later: %v, want ErrTimestamp", err)
	}
	if err := verify.Request(vectorSecret, h, []byte(vectorPayload+" "), time.Unix(vectorTimestamp, 0)); err != verify.ErrSignature {
		t.Fatalf("another body: %v, want ErrSignature", err)
	}
}

// TestSignaturesAgainstReferenceLibrary signs with keyplane's code and checks
// with the reference library, for new secrets and two at once.
func TestSignaturesAgainstReferenceLibrary(t *testing.T) {
	s1, k1 := webhooks.NewSecret()
	s2, k2 := webhooks.NewSecret()
	if !strings.HasPrefix(s1, "whsec_") || len(k1) != 32 || s1 == s2 {
		t.Fatalf("secrets %q, %q", s1, s2)
	}
	body := []byte(`{"type":"key.revoked","timestamp":"2026-01-02T03:04:05Z","data":{"key":{"id":"key_1"}}}`)
	now := time.Now().Unix()
	h := http.Header{}
	h.Set("webhook-id", webhooks.NewMessageID())
	h.Set("webhook-timestamp", strconv.FormatInt(now, 10))
	h.Set("webhook-signature", webhooks.SignatureHeader([][]byte{k2, k1}, h.Get("webhook-id"), now, body))
	for _, s := range []string{s1, s2} {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, h); err != nil {
			t.Fatalf("reference verifier with %s: %v", s[:10], err)
		}
		want, _ := wh.Sign(h.Get("webhook-id"), time.Unix(now, 0), body)
		if !strings.Contains(h.Get("webhook-signature"), want) {
			t.Fatalf("the reference signature %s is not among %s", want, h.Get("webhook-signature"))
		}
	}
}

func TestSecretBox(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	box, err := webhooks.NewSecretBox(key)
	if err != nil {
		t.Fatal(err)
	}
	_, secret := webhooks.NewSecret()
	sealed, err := box.Seal(secret, "whk_1")
	if err != nil || bytes.Contains(sealed, secret) {
		t.Fatalf("sealed %x, %v", sealed, err)
	}
	if got, err := box.Open(sealed, "whk_1"); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %x, %v", got, err)
	}
	if _, err := box.Open(sealed, "whk_2"); err == nil {
		t.Fatal("a secret opened bound to another endpoint")
	}
	other, _ := webhooks.NewSecretBox(bytes.Repeat([]byte{8}, 32))
	if _, err := other.Open(sealed, "whk_1"); err == nil {
		t.Fatal("a secret opened with another key")
	}
	if _, err := webhooks.NewSecretBox(key[:16]); err == nil {
		t.Fatal("a 16-byte key was accepted")
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyplane.db.secrets-key")
	if _, _, err := webhooks.LoadKeyFile(path, false); err == nil {
		t.Fatal("a missing key file loaded")
	}
	key, created, err := webhooks.LoadKeyFile(path, true)
	if err != nil || !created || len(key) != 32 {
		t.Fatalf("create: %d bytes, %v, %v", len(key), created, err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", info.Mode(), err)
	}
	again, created, err := webhooks.LoadKeyFile(path, true)
	if err != nil || created || !bytes.Equal(again, key) {
		t.Fatal("the key file was not read back as made")
	}
	os.WriteFile(path, []byte("short\n"), 0o600)
	if _, _, err := webhooks.LoadKeyFile(path, false); err == nil {
		t.Fatal("a malformed key file loaded")
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url          string
		allowPrivate bool
		ok           bool
	}{
		{"https://hooks.example.com/keyplane", false, true},
		{"https://hooks.example.com:8443/a?b=c", false, true},
		{"http://hooks.example.com/", false, false},
		{"http://127.0.0.1:9000/", true, true},
		{"https://127.0.0.1/", false, false},
		{"https://10.1.2.3/", false, false},
		{"https://169.254.169.254/latest/meta-data", false, false},
		{"https://[::1]/", false, false},
		{"https://[fd00::1]/", false, false},
		{"https://[::ffff:192.168.1.1]/", false, false},
		{"https://localhost/", false, false},
		{"https://a.localhost/", false, false},
		{"https://user:pw@hooks.example.com/", false, false},
		{"ftp://hooks.example.com/", true, false},
		{"hooks.example.com/path", false, false},
		{"https:///path", false, false},
		{"https://hooks.example.com/#frag", false, false},
		{"https://" + strings.Repeat("a", 2100) + ".com/", false, false},
	} {
		err := webhooks.CheckURL(tc.url, tc.allowPrivate)
		if (err == nil) != tc.ok {
			t.Errorf("CheckURL(%.60q, %v) = %v, want ok=%v", tc.url, tc.allowPrivate, err, tc.ok)
		}
	}
}

func TestPublicAddr(t *testing.T) {
	for addr, public := range map[string]bool{
		"93.184.216.34": true, "2606:2800:220:1::1": true,
		"127.0.0.1": false, "10.0.0.1": false, "172.16.0.1": false, "192.168.0.1": false, "169.254.169.254": false,
		"100.64.0.1": false, "0.0.0.0": false, "255.255.255.255": false, "224.0.0.1": false,
		"::1": false, "fe80::1": false, "fc00::1": false, "::ffff:10.0.0.1": false, "64:ff9b::a00:1": false, "::": false,
	} {
		if got := webhooks.PublicAddr(netip.MustParseAddr(addr)); got != public {
			t.Errorf("PublicAddr(%s) = %v, want %v", addr, got, public)
		}
	}
}
