package keyplane

import (
	"context"
	"time"
)

// QuotaPeriod is how often a quota resets.
type QuotaPeriod string

const (
	QuotaDay   QuotaPeriod = "day"
	QuotaMonth QuotaPeriod = "month"
)

// Quota caps requests (or cost units) per period. Periods are UTC: a day
// starts at midnight, a month on its ResetDay (default the 1st).
type Quota struct {
	Limit    int64       `json:"limit"`
	Period   QuotaPeriod `json:"period"`
	ResetDay int         `json:"reset_day,omitempty"` // 1–28, monthly quotas only
	Shared   bool        `json:"shared,omitempty"`    // counted across the account's keys
}

// MaxQuotaResetDay keeps every month's reset day a real date.
const MaxQuotaResetDay = 28

// PeriodAt returns the start and end of the period that contains t.
func (q *Quota) PeriodAt(t time.Time) (start, end time.Time) {
	if q.Period != QuotaMonth {
		// Days are plain arithmetic on Unix time: UTC has no DST, and this
		// runs on every verification of a key with a daily quota.
		const day = 24 * 60 * 60
		secs := t.Unix()
		secs -= ((secs % day) + day) % day
		start = time.Unix(secs, 0).UTC()
		return start, start.Add(day * time.Second)
	}
	y, m, d := t.UTC().Date()
	resetDay := max(q.ResetDay, 1)
	if d < resetDay {
		m-- // time.Date normalises month 0 to December of the year before
	}
	start = time.Date(y, m, resetDay, 0, 0, 0, 0, time.UTC)
	return start, start.AddDate(0, 1, 0)
}

// QuotaFor returns the quota that applies to the record's key and the
// subject it is counted on: the key's own quota, else its plan's; shared
// quotas count on the account.
func (r *VerifyRecord) QuotaFor() (q *Quota, subject string) {
	q = r.Key.Quota
	if q == nil {
		q = r.PlanQuota
	}
	if q == nil {
		return nil, ""
	}
	if q.Shared {
		return q, r.Key.AccountID
	}
	return q, r.Key.ID
}

// QuotaRef names one subject's usage in one period. The subject is a key id,
// or an account id for shared quotas.
type QuotaRef struct {
	Subject     string
	PeriodStart time.Time
}

// QuotaDelta is usage to add to a period's count.
type QuotaDelta struct {
	QuotaRef
	Used int64
}

// QuotaStore persists quota usage. Counts are written in batches, never once
// per request.
type QuotaStore interface {
	// AddQuotaUsage adds each delta to its count in one transaction and
	// returns the new totals, in order: counts other instances added are in them.
	AddQuotaUsage(ctx context.Context, deltas []QuotaDelta) ([]int64, error)
	// QuotaUsage returns the counts of refs, in order; 0 for none recorded.
	QuotaUsage(ctx context.Context, refs []QuotaRef) ([]int64, error)
	// ResetQuotaUsage sets a count to zero.
	ResetQuotaUsage(ctx context.Context, ref QuotaRef) error
}

// QuotaMeter counts quota usage for verification and for the admin API.
type QuotaMeter interface {
	// Charge adds cost to subject's usage in the period containing now,
	// unless that would pass q's limit; it reports the state after.
	Charge(ctx context.Context, q *Quota, subject string, cost int64, now time.Time) (QuotaState, bool, error)
	// Refund takes back a charge whose request another check then refused.
	Refund(q *Quota, subject string, cost int64, now time.Time)
	// Usage returns subject's current state without charging.
	Usage(ctx context.Context, q *Quota, subject string, now time.Time) (QuotaState, error)
	// Reset sets subject's usage in the current period to zero.
	Reset(ctx context.Context, q *Quota, subject string, now time.Time) error
}
