package keyplanemw

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// VerifyRequest is what the middleware asks keyplane for each request.
type VerifyRequest struct {
	Key      string `json:"key"`
	Scope    string `json:"scope,omitempty"`
	IP       string `json:"ip,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	Cost     int64  `json:"cost"`
}

// Result is keyplane's answer, the body of POST /v1/verify.
type Result struct {
	Valid       bool            `json:"valid"`
	Code        string          `json:"code"` // VALID, NOT_FOUND, REVOKED, …
	KeyID       string          `json:"key_id,omitempty"`
	AccountID   string          `json:"account_id,omitempty"`
	Name        string          `json:"name,omitempty"`
	Environment string          `json:"environment,omitempty"`
	Scopes      []string        `json:"scopes,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	ExpiresAt   *time.Time      `json:"expires_at,omitempty"`
	RateLimit   *RateLimit      `json:"ratelimit,omitempty"`
	Quota       *Quota          `json:"quota,omitempty"`
	// RetryAfterSeconds comes with RATE_LIMITED and QUOTA_EXCEEDED.
	RetryAfterSeconds int64 `json:"retry_after_seconds,omitempty"`
}

// RateLimit is the state of the key's tightest rate-limit policy.
type RateLimit struct {
	Policy        string `json:"policy"`
	Limit         int64  `json:"limit"`
	Remaining     int64  `json:"remaining"`
	ResetSeconds  int64  `json:"reset_seconds"`
	WindowSeconds int64  `json:"window_seconds"`
}

// Quota is the state of the key's quota.
type Quota struct {
	Limit     int64     `json:"limit"`
	Used      int64     `json:"used"`
	Remaining int64     `json:"remaining"`
	Period    string    `json:"period"`
	ResetsAt  time.Time `json:"resets_at"`
}

// metered reports whether keyplane counts this key's requests (rate limits or
// a quota): then every request must reach keyplane, and none is answered from the cache.
func (r *Result) metered() bool { return r.RateLimit != nil || r.Quota != nil }

// Verifier asks keyplane about a key. An error means keyplane could not
// answer (down, overloaded, the token refused); a refusal is a Result.
type Verifier interface {
	Verify(ctx context.Context, req VerifyRequest) (*Result, error)
}

// HTTPVerifier calls POST /v1/verify with JSON: the default transport.
type HTTPVerifier struct {
	url, auth string
	client    *http.Client
}

// NewHTTPVerifier returns a Verifier for the keyplane server at serverURL
// (e.g. "http://127.0.0.1:8080"), with an operator token of role verify.
// A nil client is a default one with a 5 s timeout.
func NewHTTPVerifier(serverURL, token string, client *http.Client) *HTTPVerifier {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return &HTTPVerifier{url: strings.TrimRight(serverURL, "/") + "/v1/verify", auth: "Bearer " + token, client: client}
}

// Verify implements Verifier.
func (v *HTTPVerifier) Verify(ctx context.Context, in VerifyRequest) (*Result, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", v.auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// keyplane's problem details say why; the body is small and never has the key.
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("keyplane answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	var res Result
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&res); err != nil {
		return nil, fmt.Errorf("keyplane's answer: %w", err)
	}
	if res.Code == "" {
		return nil, errors.New("keyplane's answer has no code")
	}
	return &res, nil
}
