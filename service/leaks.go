package service

import (
	"context"
	"errors"
	"net/url"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/webhooks"
)

// GitHubScanner is the actor of reports from GitHub's secret scanning: the
// partner endpoint authenticates GitHub by its signature, not by a token.
var GitHubScanner = keyplane.Actor{Kind: "system", ID: "github-secret-scanning"}

// MaxLeakURLLength bounds the URL a leak report names.
const MaxLeakURLLength = 2048

// LeakReport says that a key was found where it should not be.
type LeakReport struct {
	Key    string // the plaintext as found
	Source string // keyplane.LeakSourceGitHub or keyplane.LeakSourceReport
	URL    string // where it was found; may be empty
	// Details for the audit event, such as GitHub's token type and
	// source ("commit", "content"); never the key.
	Details map[string]any
}

// LeakResult is what became of a report.
type LeakResult struct {
	Key *keyplane.Key
	// First is true for the first report of this key; a later one changes
	// nothing.
	First  bool
	Action keyplane.LeakAction
}

// ReportLeak records that a key of this deployment leaked and acts on it as
// configured (revoke, disable or notify): it sets leaked_at and leak_source,
// appends key.leaked to the audit log and raises the key.leaked webhook in
// the same transaction. The key must parse with this deployment's prefix
// and checksum (EINVALID on field "key") and exist (ENOTFOUND). Operator
// admin tokens and the system (GitHub's secret scanning) may report.
func (s *Service) ReportLeak(ctx context.Context, in LeakReport) (*LeakResult, error) {
	a, err := actor(ctx)
	if err != nil {
		return nil, err
	}
	if a.Kind != "system" {
		if err := requireOperator(ctx); err != nil {
			return nil, err
		}
		if err := requireManager(a); err != nil {
			return nil, err
		}
	}
	var v keyplane.Validation
	if _, ok := apikey.Parse(in.Key, s.prefix); !ok {
		// Say nothing of the text: it may be a real key of another kind.
		v.Add("key", "not a key of this deployment (prefix %q) with a valid checksum", s.prefix)
	}
	if a.Kind == "system" {
		// GitHub's report stands even if its URL is odd: keep the URL out.
		var uv keyplane.Validation
		if in.URL = validLeakURL(&uv, in.URL); uv.Err() != nil {
			in.URL = ""
		}
	} else {
		in.URL = validLeakURL(&v, in.URL)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	r, err := s.store.VerifyRecord(ctx, apikey.Hash(in.Key))
	if err != nil {
		var kerr *keyplane.Error
		if errors.As(err, &kerr) && kerr.Code == keyplane.ENOTFOUND {
			return nil, keyplane.Errorf(keyplane.ENOTFOUND, "key not found")
		}
		return nil, err
	}
	if r.Key.LeakedAt != nil { // reported before: nothing more to do
		k := r.Key
		return &LeakResult{Key: &k, Action: s.leakAction}, nil
	}
	now := s.now()
	first := false
	ctx, trail := audited(ctx)
	k, err := s.updateKey(ctx, r.Key.ID, func(k *keyplane.Key) error {
		if k.LeakedAt != nil { // a concurrent report won
			return nil
		}
		first = true
		k.LeakedAt, k.LeakSource, k.LeakURL, k.UpdatedAt = &now, in.Source, in.URL, now
		details := map[string]any{"source": in.Source, "url": in.URL, "action": string(s.leakAction)}
		for name, val := range in.Details {
			details[name] = val
		}
		trail.Add(s.event(ctx, keyplane.AuditKeyLeaked, k.AccountID, k.ID, details))
		switch s.leakAction {
		case keyplane.LeakRevoke:
			if k.RevokedAt == nil {
				k.RevokedAt = &now
				trail.Add(s.event(ctx, keyplane.AuditKeyRevoked, k.AccountID, k.ID, map[string]any{"reason": "leaked"}))
				raise(trail, webhooks.KeyEvent(keyplane.EventKeyRevoked, k, now, map[string]any{"reason": "leaked"}))
			}
		case keyplane.LeakDisable:
			if k.Enabled && k.RevokedAt == nil {
				k.Enabled = false
				trail.Add(s.event(ctx, keyplane.AuditKeyDisabled, k.AccountID, k.ID, map[string]any{"reason": "leaked"}))
			}
		}
		raise(trail, webhooks.KeyEvent(keyplane.EventKeyLeaked, k, now, map[string]any{
			"source": in.Source, "url": in.URL, "action": string(s.leakAction)}))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &LeakResult{Key: k, First: first, Action: s.leakAction}, nil
}

// validLeakURL accepts an empty URL or an absolute http(s) one of bounded
// length that holds no key.
func validLeakURL(v *keyplane.Validation, raw string) string {
	if raw == "" {
		return ""
	}
	if len(raw) > MaxLeakURLLength {
		v.Add("source_url", "at most %d bytes", MaxLeakURLLength)
		return ""
	}
	if apikey.ContainsSecret(raw) {
		v.Add("source_url", "must not contain a key")
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		v.Add("source_url", "want an absolute http or https URL")
		return ""
	}
	return raw
}
