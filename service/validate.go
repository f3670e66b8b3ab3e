package service

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
)

// Input bounds. They keep rows small and verify records cheap to cache.
const (
	maxNameLen       = 100
	maxScopes        = 50
	maxCIDRs         = 100
	maxPolicies      = 10
	maxMetadataBytes = 4096
	maxWindow        = 366 * 24 * 3600
	maxLimit         = 1e12
	maxBucketSeconds = 100 * 366 * 24 * 3600
)

var (
	planPattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	policyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
)

// validName trims name and checks it is 1 to 100 printable characters.
func validName(v *keyplane.Validation, field, name string) string {
	name = strings.TrimSpace(name)
	switch n := utf8.RuneCountInString(name); {
	case !utf8.ValidString(name):
		v.Add(field, "must be valid UTF-8")
	case n == 0:
		v.Add(field, "must not be empty")
	case n > maxNameLen:
		v.Add(field, "must be at most %d characters, got %d", maxNameLen, n)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		v.Add(field, "must not contain control characters")
	}
	return name
}

// validScopes checks syntax and, when allowed is not nil, that each scope lies
// within it. It returns the scopes sorted without duplicates.
func validScopes(v *keyplane.Validation, field string, scopes, allowed []string) []string {
	if len(scopes) > maxScopes {
		v.Add(field, "at most %d scopes, got %d", maxScopes, len(scopes))
		return nil
	}
	out := make([]string, 0, len(scopes))
	for i, sc := range scopes {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case !scopePattern.MatchString(sc):
			v.Add(f, "%q is not a scope: want resource:action (lowercase), resource:* or *", sc)
		case allowed != nil && !granted(allowed, sc):
			v.Add(f, "%q is outside the account's allowed scopes %v", sc, allowed)
		default:
			out = append(out, sc)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// validCIDRs parses ranges; a bare address means just that address.
func validCIDRs(v *keyplane.Validation, cidrs []string) []netip.Prefix {
	if len(cidrs) > maxCIDRs {
		v.Add("allowed_cidrs", "at most %d ranges, got %d", maxCIDRs, len(cidrs))
		return nil
	}
	var out []netip.Prefix
	for i, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			a, aerr := netip.ParseAddr(c)
			if aerr != nil || a.Zone() != "" {
				v.Add(fmt.Sprintf("allowed_cidrs[%d]", i), "%q is not an IPv4 or IPv6 range such as 203.0.113.0/24 or 2001:db8::/32", c)
				continue
			}
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out
}

func validPolicies(v *keyplane.Validation, policies []keyplane.RateLimitPolicy) []keyplane.RateLimitPolicy {
	if policies == nil {
		return nil
	}
	if len(policies) > maxPolicies {
		v.Add("rate_limits", "at most %d policies, got %d", maxPolicies, len(policies))
		return nil
	}
	seen := map[string]bool{}
	for i, p := range policies {
		f := fmt.Sprintf("rate_limits[%d]", i)
		if !policyPattern.MatchString(p.Name) {
			v.Add(f+".name", "%q: want 1 to 32 lowercase letters, digits, - or _", p.Name)
		} else if seen[p.Name] {
			v.Add(f+".name", "%q is used by another policy of this key", p.Name)
		}
		seen[p.Name] = true
		if p.Limit != nil && (*p.Limit < 0 || *p.Limit > maxLimit) {
			v.Add(f+".limit", "must be between 0 and %d (null means unlimited)", int64(maxLimit))
		}
		if p.WindowSeconds < 1 || p.WindowSeconds > maxWindow {
			v.Add(f+".window_seconds", "must be between 1 and %d", maxWindow)
		}
		if p.Burst < 0 {
			v.Add(f+".burst", "must be at least 1")
		} else if p.Limit != nil && *p.Limit > 0 && p.WindowSeconds > 0 && p.Burst > 0 &&
			float64(p.WindowSeconds)/float64(*p.Limit)*float64(p.Burst) > maxBucketSeconds {
			v.Add(f+".burst", "holds more than 100 years of the limit's rate")
		}
		if p.Algorithm != keyplane.TokenBucket && p.Algorithm != keyplane.SlidingWindow {
			v.Add(f+".algorithm", "%q: want token_bucket or sliding_window", p.Algorithm)
		}
	}
	return policies
}

func validQuota(v *keyplane.Validation, q *keyplane.Quota) {
	if q == nil {
		return
	}
	if q.Limit < 0 {
		v.Add("quota.limit", "must not be negative")
	}
	if q.Period != keyplane.QuotaDay && q.Period != keyplane.QuotaMonth {
		v.Add("quota.period", "%q: want day or month", q.Period)
	}
	if q.ResetDay != 0 && (q.Period != keyplane.QuotaMonth || q.ResetDay < 1 || q.ResetDay > keyplane.MaxQuotaResetDay) {
		v.Add("quota.reset_day", "%d: want 1 to %d, on monthly quotas only", q.ResetDay, keyplane.MaxQuotaResetDay)
	}
}

// validMetadata checks metadata is a JSON object of at most 4 KiB and returns it compacted.
func validMetadata(v *keyplane.Validation, m json.RawMessage) json.RawMessage {
	if len(m) == 0 {
		return json.RawMessage("{}")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, m); err != nil || buf.Len() == 0 || buf.Bytes()[0] != '{' {
		v.Add("metadata", "must be a JSON object")
		return nil
	}
	if !utf8.Valid(buf.Bytes()) {
		v.Add("metadata", "must be valid UTF-8")
		return nil
	}
	if buf.Len() > maxMetadataBytes {
		v.Add("metadata", "must be at most %d bytes of JSON, got %d", maxMetadataBytes, buf.Len())
		return nil
	}
	return buf.Bytes()
}

func validExpiry(v *keyplane.Validation, t *time.Time, now time.Time) *time.Time {
	if t == nil {
		return nil
	}
	if !t.After(now) {
		v.Add("expires_at", "must be in the future")
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}
