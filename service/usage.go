package service

import (
	"context"
	"fmt"
	"time"

	"github.com/keyplane/keyplane"
)

// UsageQuery asks for usage over [From, To) in buckets of Granularity.
// Absent (nil or empty) values take defaults: hourly buckets, the last day.
// A given time is a bound whatever its value, the zero time.Time included.
type UsageQuery struct {
	From, To    *time.Time
	Granularity keyplane.UsageGranularity
}

// A report's range, widened to whole buckets, must lie within the years
// RFC 3339 (and so JSON) can write: its ends are written in the report.
// Checking the given times against these before any arithmetic also keeps
// the bucket arithmetic in Unix seconds far from overflowing.
var (
	minUsageTime = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	maxUsageTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// Usage ranges are bounded per granularity, so a report has at most about
// 1,500 buckets and reads rows of the right size: a long range must use
// coarse buckets.
var maxUsageRange = map[keyplane.UsageGranularity]time.Duration{
	keyplane.UsageMinute: 24 * time.Hour,
	keyplane.UsageHour:   31 * 24 * time.Hour,
	keyplane.UsageDay:    732 * 24 * time.Hour,
}

var defaultUsageRange = map[keyplane.UsageGranularity]time.Duration{
	keyplane.UsageMinute: time.Hour,
	keyplane.UsageHour:   24 * time.Hour,
	keyplane.UsageDay:    30 * 24 * time.Hour,
}

// KeyUsage reports a key's usage.
func (s *Service) KeyUsage(ctx context.Context, keyID string, q UsageQuery) (*keyplane.UsageReport, error) {
	k, err := s.Key(ctx, keyID)
	if err != nil {
		return nil, err
	}
	return s.usageReport(ctx, k.ID, q)
}

// AccountUsage reports the usage of all of an account's keys together.
func (s *Service) AccountUsage(ctx context.Context, accountID string, q UsageQuery) (*keyplane.UsageReport, error) {
	a, err := s.Account(ctx, accountID)
	if err != nil {
		return nil, err
	}
	return s.usageReport(ctx, a.ID, q)
}

func (s *Service) usageReport(ctx context.Context, subject string, q UsageQuery) (*keyplane.UsageReport, error) {
	uq, err := s.usageRange(q)
	if err != nil {
		return nil, err
	}
	if s.reports == nil {
		return nil, keyplane.Errorf(keyplane.EUNAVAILABLE, "usage is not reported by this instance")
	}
	uq.Subject = subject
	return s.reports.UsageReport(ctx, uq)
}

// usageRange applies the defaults and bounds of a usage query and widens it
// to whole buckets: From down to its bucket's start, To up to its bucket's end.
func (s *Service) usageRange(q UsageQuery) (keyplane.UsageQuery, error) {
	var v keyplane.Validation
	g := q.Granularity
	if g == "" {
		g = keyplane.UsageHour
	}
	if !g.Valid() {
		v.Add("granularity", "%q: want minute, hour or day", g)
		return keyplane.UsageQuery{}, v.Err()
	}
	for _, b := range []struct {
		field string
		t     *time.Time
	}{{"from", q.From}, {"to", q.To}} {
		if b.t != nil && (b.t.Before(minUsageTime) || b.t.After(maxUsageTime)) {
			v.Add(b.field, "must be within 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the years RFC 3339 can write")
		}
	}
	if err := v.Err(); err != nil {
		return keyplane.UsageQuery{}, err
	}
	to := s.now()
	if q.To != nil {
		to = *q.To
	}
	var from time.Time
	switch {
	case q.From != nil:
		from = *q.From
	case to.Sub(minUsageTime) < defaultUsageRange[g]:
		from = minUsageTime // the default stops at the first time a report can write
	default:
		from = to.Add(-defaultUsageRange[g])
	}
	if !from.Before(to) {
		if q.From != nil {
			v.Add("from", "must be before to")
		} else {
			v.Add("to", "must be after 0000-01-01T00:00:00Z, where the default from stops")
		}
		return keyplane.UsageQuery{}, v.Err()
	}
	width := g.Seconds()
	start := g.BucketStart(from.Unix())
	end := g.BucketStart(to.Unix())
	if end < to.Unix() || to.Nanosecond() > 0 {
		end += width
	}
	switch {
	case end > maxUsageTime.Unix():
		v.Add("to", "rounded up to a whole %s, must not pass 9999-12-31T23:59:59Z, the last time RFC 3339 can write", g)
	case end-start > int64(maxUsageRange[g]/time.Second): // in seconds: a Duration of far-apart times overflows
		v.Add("to", "a range of %s buckets spans at most %d days; ask for coarser buckets", g, maxUsageRange[g]/(24*time.Hour))
	}
	if err := v.Err(); err != nil {
		return keyplane.UsageQuery{}, err
	}
	return keyplane.UsageQuery{Granularity: g, From: time.Unix(start, 0).UTC(), To: time.Unix(end, 0).UTC()}, nil
}

// withUsage fills the keys' last use and total requests from the usage
// totals: they are written by usage flushes, never with the key's row.
func (s *Service) withUsage(ctx context.Context, keys ...*keyplane.Key) error {
	if len(keys) == 0 {
		return nil
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	totals, err := s.store.KeyUsageTotals(ctx, ids)
	if err != nil {
		return err
	}
	for i, k := range keys {
		k.TotalRequests, k.LastUsedAt = totals[i].Requests, nil
		if t := totals[i].LastUsedAt; !t.IsZero() {
			k.LastUsedAt = &t
		}
	}
	return nil
}

// MaxReportedRequests bounds a batch of ReportUsage.
const MaxReportedRequests = 1000

// Reported times may lie this far in the past (a batch held back by a
// retrying client) or future (clock skew) of the server's clock.
const (
	maxReportedAge  = 24 * time.Hour
	maxReportedSkew = 5 * time.Minute
)

// maxReportedLatency bounds a reported latency: longer is a mistake in
// units, not a request.
const maxReportedLatency = time.Hour

// ReportedRequest is the upstream's outcome of a request whose key was
// verified through keyplane: what the operator's API reports.
type ReportedRequest struct {
	KeyID    string
	Endpoint string
	Status   int           // the HTTP status the API answered
	Latency  time.Duration // 0 when not measured
	Time     time.Time     // when the request was made; zero means now
}

// ReportUsage records the outcomes of requests verified earlier (see
// keyplane.UsageEvent: a 5xx makes a request let through an error, never
// more errors than such requests; a latency joins the percentiles). Operator tokens of either role may report.
// The batch is validated whole and recorded whole, or refused with every
// problem named: a key id that names no key is one.
func (s *Service) ReportUsage(ctx context.Context, reqs []ReportedRequest) error {
	a, err := actor(ctx)
	if err != nil {
		return err
	}
	if a.Kind != "token" && a.Kind != "system" || a.AccountID != "" {
		return keyplane.Errorf(keyplane.EFORBIDDEN, "only operator tokens may report usage")
	}
	var v keyplane.Validation
	switch {
	case len(reqs) == 0:
		v.Add("events", "must not be empty")
	case len(reqs) > MaxReportedRequests:
		v.Add("events", "at most %d events a batch", MaxReportedRequests)
	}
	if err := v.Err(); err != nil {
		return err
	}
	now := s.now()
	ids := make([]string, 0, len(reqs))
	for i, r := range reqs {
		field := func(name string) string { return fmt.Sprintf("events[%d].%s", i, name) }
		if !validID(r.KeyID) {
			v.Add(field("key_id"), "is not a key id")
		} else {
			ids = append(ids, r.KeyID)
		}
		if !keyplane.ValidEndpoint(r.Endpoint) {
			v.Add(field("endpoint"), "must be valid UTF-8 without NUL bytes, at most %d bytes", keyplane.MaxEndpointLength)
		}
		if r.Status < 100 || r.Status > 599 {
			v.Add(field("status"), "must be an HTTP status, 100 to 599")
		}
		if r.Latency < 0 || r.Latency > maxReportedLatency {
			v.Add(field("latency_ms"), "must be between 0 and %d", maxReportedLatency.Milliseconds())
		}
		if !r.Time.IsZero() && (r.Time.Before(now.Add(-maxReportedAge)) || r.Time.After(now.Add(maxReportedSkew))) {
			v.Add(field("time"), "must be within the last 24 hours (and at most 5 minutes ahead of the server's clock)")
		}
	}
	accounts, err := s.store.KeyAccounts(ctx, ids)
	if err != nil {
		return err
	}
	for i, r := range reqs {
		if account, found := accounts[r.KeyID]; validID(r.KeyID) && (!found || !a.CanSee(account)) {
			v.Add(fmt.Sprintf("events[%d].key_id", i), "no such key")
		}
	}
	if err := v.Err(); err != nil {
		return err
	}
	if s.usage == nil {
		return keyplane.Errorf(keyplane.EUNAVAILABLE, "usage is not metered by this instance")
	}
	for _, r := range reqs {
		at := r.Time
		if at.IsZero() {
			at = now
		}
		s.usage.Record(keyplane.UsageEvent{KeyID: r.KeyID, AccountID: accounts[r.KeyID], Endpoint: r.Endpoint, Time: at,
			Code: keyplane.VerifyValid, Status: r.Status, Latency: r.Latency})
	}
	return nil
}
