package webhooks

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/webhooks/verify"
)

// SecretBytes is the length of an endpoint secret's key.
const SecretBytes = 32

// NewSecret returns a new endpoint secret, "whsec_" and the base64 of 32
// random bytes, and its key.
func NewSecret() (string, []byte) {
	key := make([]byte, SecretBytes)
	rand.Read(key) // never fails (crypto/rand panics rather)
	return verify.SecretPrefix + base64.StdEncoding.EncodeToString(key), key
}

// EncodeSecret is the "whsec_…" form of a key.
func EncodeSecret(key []byte) string {
	return verify.SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// SecretBox seals endpoint secrets with AES-256-GCM under the secrets key.
type SecretBox struct{ aead cipher.AEAD }

var _ keyplane.SecretSealer = (*SecretBox)(nil)

// NewSecretBox returns a box for a 32-byte key.
func NewSecretBox(key []byte) (*SecretBox, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("webhooks: the secrets key has %d bytes; want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &SecretBox{aead: aead}, nil
}

// Seal encrypts plaintext with a random nonce, bound to binding (the
// endpoint's id) as additional data: a sealed secret copied onto another
// endpoint's row does not open there.
func (b *SecretBox) Seal(plaintext []byte, binding string) ([]byte, error) {
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	rand.Read(nonce)
	return b.aead.Seal(nonce, nonce, plaintext, []byte(binding)), nil
}

// Open decrypts what Seal sealed with the same binding.
func (b *SecretBox) Open(sealed []byte, binding string) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n+b.aead.Overhead() {
		return nil, errors.New("webhooks: sealed secret too short")
	}
	plain, err := b.aead.Open(nil, sealed[:n], sealed[n:], []byte(binding))
	if err != nil {
		return nil, errors.New("webhooks: the secret does not open with this secrets key (was --secrets-key-file changed?)")
	}
	return plain, nil
}

// LoadKeyFile reads the secrets key from path: the base64 of 32 bytes on
// one line. With create, a missing file is made with a new random key,
// readable by its owner only (0600); it is never overwritten.
func LoadKeyFile(path string, create bool) (key []byte, created bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		key = make([]byte, 32)
		rand.Read(key)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return LoadKeyFile(path, false) // another process made it first
		}
		if err != nil {
			return nil, false, fmt.Errorf("create the secrets key file: %w", err)
		}
		_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return nil, false, fmt.Errorf("write the secrets key file %s: %w", path, err)
		}
		return key, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read the secrets key file: %w", err)
	}
	key, err = base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(key) != 32 {
		return nil, false, fmt.Errorf("the secrets key file %s must hold the base64 of 32 bytes (e.g. from: openssl rand -base64 32)", path)
	}
	return key, false, nil
}
