package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of a delivery.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every endpoint secret.
const SecretPrefix = "whsec_"

// Tolerance is how far a delivery's timestamp may be from the receiver's
// clock: older deliveries may be replays.
const Tolerance = 5 * time.Minute

var (
	ErrSecret    = errors.New("verify: the secret is not a whsec_ secret")
	ErrHeaders   = errors.New("verify: missing or malformed webhook-id, webhook-timestamp or webhook-signature header")
	ErrTimestamp = errors.New("verify: the timestamp is too far from now")
	ErrSignature = errors.New("verify: no signature matches")
)

// DecodeSecret returns the key a "whsec_…" secret stands for.
func DecodeSecret(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil || len(key) == 0 {
		return nil, ErrSecret
	}
	return key, nil
}

// Sign returns the signature "v1,<base64>" of a delivery: HMAC-SHA256 with
// key over "{id}.{timestamp}.{body}".
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, timestamp, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Request verifies a delivery's headers and raw body with secret, at now.
// The webhook-signature header may carry several signatures separated by
// spaces (during a secret's rotation); one match is enough.
func Request(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := DecodeSecret(secret)
	if err != nil {
		return err
	}
	id, ts, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return ErrHeaders
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrHeaders
	}
	if d := now.Sub(time.Unix(secs, 0)); d > Tolerance || d < -Tolerance {
		return ErrTimestamp
	}
	want := []byte(Sign(key, id, secs, body))
	for _, sig := range strings.Fields(sigs) {
		if hmac.Equal([]byte(sig), want) { // constant time
			return nil
		}
	}
	return ErrSignature
}
