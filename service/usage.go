package service

import (
	"context"
	"time"

	"github.com/keyplane/keyplane"
)

// UsageQuery asks for usage over [From, To) in buckets of Granularity.
// Zero values take defaults: hourly buckets, the last day.
type UsageQuery struct {
	From, To    time.Time
	Granularity keyplane.UsageGranularity
}

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
	to, from := q.To, q.From
	if to.IsZero() {
		to = s.now()
	}
	if from.IsZero() {
		from = to.Add(-defaultUsageRange[g])
	}
	width := g.Seconds()
	start := g.BucketStart(from.Unix())
	end := g.BucketStart(to.Unix())
	if end < to.Unix() || to.Nanosecond() > 0 {
		end += width
	}
	switch {
	case !from.Before(to):
		v.Add("from", "must be before to")
	case time.Duration(end-start)*time.Second > maxUsageRange[g]:
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
