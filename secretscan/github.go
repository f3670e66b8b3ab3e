package secretscan

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// DefaultKeysURL is where GitHub publishes its secret scanning keys.
const DefaultKeysURL = "https://api.github.com/meta/public_keys/secret_scanning"

// The request headers GitHub signs with.
const (
	HeaderKeyID     = "Github-Public-Key-Identifier"
	HeaderSignature = "Github-Public-Key-Signature"
)

// MaxBodyBytes bounds a request: GitHub sends batches of matches, each a
// few hundred bytes.
const MaxBodyBytes = 1 << 20

// Match is one found token of GitHub's request.
type Match struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

// Labels GitHub understands in the answer.
const (
	TruePositive  = "true_positive"
	FalsePositive = "false_positive"
)

// Answer is the reply for one match.
type Answer struct {
	TokenRaw  string `json:"token_raw"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}

// ErrSignature is returned for a missing, malformed or wrong signature, or
// an unknown key identifier.
var ErrSignature = errors.New("secretscan: bad or missing signature")

// KeysConfig configures a KeySet.
type KeysConfig struct {
	URL    string       // default DefaultKeysURL
	Client *http.Client // default one with a 10 s timeout
	// MinRefetch is the least time between two fetches caused by unknown
	// identifiers (default 1 min), so unsigned junk cannot make keyplane
	// hammer GitHub.
	MinRefetch time.Duration
	Now        func() time.Time
}

// KeySet holds GitHub's public keys by identifier.
type KeySet struct {
	cfg KeysConfig

	mu      sync.Mutex
	keys    map[string]*ecdsa.PublicKey
	fetched time.Time // last fetch attempt; zero: never
}

// NewKeySet returns an empty set; keys are fetched on first use.
func NewKeySet(cfg KeysConfig) *KeySet {
	if cfg.URL == "" {
		cfg.URL = DefaultKeysURL
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.MinRefetch <= 0 {
		cfg.MinRefetch = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &KeySet{cfg: cfg}
}

// Verify checks sigB64 (base64 of an ASN.1 DER ECDSA signature) over body
// with the key named keyID. It returns ErrSignature for anything wrong with
// the request, or another error if the keys could not be fetched.
func (ks *KeySet) Verify(ctx context.Context, keyID, sigB64 string, body []byte) error {
	if keyID == "" || sigB64 == "" || len(keyID) > 256 || len(sigB64) > 512 {
		return ErrSignature
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		return ErrSignature
	}
	pub, err := ks.key(ctx, keyID)
	if err != nil {
		return err
	}
	digest := sha256.Sum256(body)
	if !ecdsa.VerifyASN1(pub, digest[:], sig) {
		return ErrSignature
	}
	return nil
}

// key returns the key named id, fetching the set if it is not held and the
// last fetch is older than MinRefetch (or there was none).
func (ks *KeySet) key(ctx context.Context, id string) (*ecdsa.PublicKey, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if k, ok := ks.keys[id]; ok {
		return k, nil
	}
	now := ks.cfg.Now()
	if !ks.fetched.IsZero() && now.Sub(ks.fetched) < ks.cfg.MinRefetch {
		return nil, ErrSignature
	}
	ks.fetched = now
	keys, err := ks.fetch(ctx)
	if err != nil {
		return nil, err
	}
	ks.keys = keys
	if k, ok := keys[id]; ok {
		return k, nil
	}
	return nil, ErrSignature
}

// fetch reads GitHub's meta JSON: {"public_keys": [{"key_identifier",
// "key" (PEM), "is_current"}]}. Keys that are not current still verify:
// GitHub rotates by publishing the next key before it signs with it.
func (ks *KeySet) fetch(ctx context.Context) (map[string]*ecdsa.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ks.cfg.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("secretscan: keys: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := ks.cfg.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("secretscan: fetching keys: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("secretscan: fetching keys: %s", resp.Status)
	}
	var doc struct {
		PublicKeys []struct {
			KeyIdentifier string `json:"key_identifier"`
			Key           string `json:"key"`
			IsCurrent     bool   `json:"is_current"`
		} `json:"public_keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("secretscan: keys: %w", err)
	}
	keys := make(map[string]*ecdsa.PublicKey, len(doc.PublicKeys))
	for _, k := range doc.PublicKeys {
		block, _ := pem.Decode([]byte(k.Key))
		if block == nil {
			continue
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			continue
		}
		if ec, ok := pub.(*ecdsa.PublicKey); ok && ec.Curve.Params().Name == "P-256" {
			keys[k.KeyIdentifier] = ec
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("secretscan: keys: no P-256 key in the document")
	}
	return keys, nil
}
