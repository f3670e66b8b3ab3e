package keyplane

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"
)

// UsageEvent is one request's outcome, as verification, the gateway, the
// forward-auth endpoint or an operator's API (POST /v1/usage) saw it.
// Events of a key that was never found carry no KeyID and are not metered.
//
// An event without a Status is a verification: it counts a request (let
// through when VALID, else a rejection by its code). An event with a Status
// is the upstream's outcome of a request whose verification was recorded
// already, so it counts no request: a 5xx is counted apart from the
// verifications, and makes one of the requests let through an error when
// read (see UsageCounts), and its latency joins the latency summary.
// Whoever verifies through the service and then proxies records both;
// nothing is counted twice.
type UsageEvent struct {
	KeyID     string
	AccountID string
	// Endpoint names what was called, e.g. "GET /v1/things/{id}"; may be empty.
	Endpoint string
	Time     time.Time
	// Code is the verification's outcome; VALID when the request was let through.
	Code VerifyCode
	// Status is the upstream's HTTP status when known (gateway, middleware,
	// POST /v1/usage), 0 when only verification was seen.
	Status int
	// Latency is the upstream's, when known; 0 when not measured.
	Latency time.Duration
}

// UsageRecorder counts usage events. Both methods run on the request path
// (RecordVerification on every verification): they must not block, do I/O
// or allocate per call; implementations count in memory and write to
// storage in batches.
type UsageRecorder interface {
	// Record counts an event the gateway, the middleware or an operator's
	// API reported.
	Record(ev UsageEvent)
	// RecordVerification is Record(UsageEvent{KeyID: k.ID, AccountID:
	// k.AccountID, Endpoint: endpoint, Time: at, Code: code}), the verify
	// path's call: k is the cached record's key, the same pointer call
	// after call, which lets the recorder compare pointers, not ids. k must
	// never be modified, nor its memory reused for another key.
	RecordVerification(k *Key, endpoint string, at time.Time, code VerifyCode)
}

// MaxUsageEndpoints bounds the endpoints metered per key: more would let
// one key's callers grow storage without bound. Endpoints beyond it are
// counted as OtherEndpoint.
const MaxUsageEndpoints = 100

// OtherEndpoint collects the endpoints of a key beyond MaxUsageEndpoints.
const OtherEndpoint = "(other)"

// MaxEndpointLength bounds an endpoint's name, in bytes.
const MaxEndpointLength = 200

// ValidEndpoint reports whether an endpoint name can be stored as it is:
// both stores take valid UTF-8 without NUL bytes, and names are bounded.
func ValidEndpoint(e string) bool {
	return len(e) <= MaxEndpointLength && utf8.ValidString(e) && strings.IndexByte(e, 0) < 0
}

// UsageGranularity is the width of a usage bucket. Every bucket is stored at
// all three: minutes for recent detail, hours and days so that long ranges
// read few rows.
type UsageGranularity string

const (
	UsageMinute UsageGranularity = "minute"
	UsageHour   UsageGranularity = "hour"
	UsageDay    UsageGranularity = "day"
)

// UsageGranularities lists the granularities, finest first.
var UsageGranularities = [...]UsageGranularity{UsageMinute, UsageHour, UsageDay}

// Valid reports whether g is a known granularity.
func (g UsageGranularity) Valid() bool { return g == UsageMinute || g == UsageHour || g == UsageDay }

// Seconds is the width of g's buckets.
func (g UsageGranularity) Seconds() int64 {
	switch g {
	case UsageMinute:
		return 60
	case UsageHour:
		return 60 * 60
	}
	return 24 * 60 * 60
}

// BucketStart returns the start of g's bucket that contains the Unix time
// secs, in Unix seconds: buckets are plain arithmetic on UTC.
func (g UsageGranularity) BucketStart(secs int64) int64 {
	w := g.Seconds()
	r := secs % w // one division: this runs on every metered verification
	if r < 0 {
		r += w
	}
	return secs - r
}

// UsageRejectionCodes are the verification codes counted as rejections, in
// the order of UsageCounts.Rejected. NOT_FOUND is not among them: a key that
// was not found has no usage.
var UsageRejectionCodes = [...]VerifyCode{VerifyRevoked, VerifyExpired, VerifyDisabled, VerifyForbidden,
	VerifyInsufficientScope, VerifyRateLimited, VerifyQuotaExceeded}

// RejectionIndex is code's index in UsageRejectionCodes, or -1.
func RejectionIndex(code VerifyCode) int {
	for i, c := range UsageRejectionCodes {
		if c == code {
			return i
		}
	}
	return -1
}

// UsageCounts are the counts of a usage bucket, or of any sum of buckets.
// Verifications and the upstream outcomes reported of them are counted
// apart, and only added: an outcome reported without its verification (to
// another keyplane, twice, or in another bucket than its verification) can
// never make a count negative. Successes and Errors are read from the sums.
type UsageCounts struct {
	Requests int64 // verifications
	Valid    int64 // verifications that let the request through
	Rejected [len(UsageRejectionCodes)]int64
	// UpstreamErrors are the 5xx answers the upstream reported of requests
	// let through; not a count of requests (see Errors).
	UpstreamErrors int64
}

// Add adds o to c.
func (c *UsageCounts) Add(o *UsageCounts) {
	c.Requests += o.Requests
	c.Valid += o.Valid
	c.UpstreamErrors += o.UpstreamErrors
	for i := range c.Rejected {
		c.Rejected[i] += o.Rejected[i]
	}
}

// Errors is how many of the requests let through the upstream answered with
// a 5xx: the 5xx reported, but never more than the requests let through, so
// that Requests = Successes + Errors + Rejections (with every code counted)
// and the error rate is at most 1 whatever was reported.
func (c *UsageCounts) Errors() int64 { return max(min(c.UpstreamErrors, c.Valid), 0) }

// Successes is how many requests were let through and not answered with a
// 5xx; never negative.
func (c *UsageCounts) Successes() int64 { return max(c.Valid, 0) - c.Errors() }

// Rejections is the number of requests verification refused.
func (c *UsageCounts) Rejections() int64 {
	var n int64
	for _, r := range c.Rejected {
		n += r
	}
	return n
}

// IsZero reports whether nothing was counted.
func (c *UsageCounts) IsZero() bool { return *c == UsageCounts{} }

// UsageRow is one subject's usage of one endpoint in one bucket. The subject
// is a key, or an account for the sum of its keys: account rows are written
// beside key rows so that an account's usage reads as few rows as a key's.
type UsageRow struct {
	Granularity UsageGranularity
	Subject     string // a key id or an account id
	AccountID   string
	Endpoint    string
	BucketStart time.Time
	UsageCounts
	// Latency is an encoded sketch of the upstream latencies in
	// milliseconds (see package usage); nil when none was measured.
	Latency []byte
}

// KeyUsageTotal is a key's usage over its life.
type KeyUsageTotal struct {
	KeyID      string
	AccountID  string
	Requests   int64
	LastUsedAt time.Time // zero when never used
}

// UsageQuery selects a subject's rows of one granularity whose buckets start
// in [From, To).
type UsageQuery struct {
	Subject     string
	Granularity UsageGranularity
	From, To    time.Time
}

// LatencyMerge merges two encoded latency sketches; the store calls it to
// add a flush's latencies to a stored row's inside its transaction.
type LatencyMerge func(stored, add []byte) ([]byte, error)

// UsageStore persists usage. Writes are additive, so instances flushing
// their counts to one database add up.
type UsageStore interface {
	// AddUsage adds each row's counts to the stored row (creating it),
	// merges its latency into the stored one with merge, and adds the
	// totals (keeping the latest LastUsedAt), all in one transaction. The
	// rows name distinct buckets; totals distinct keys.
	AddUsage(ctx context.Context, rows []UsageRow, totals []KeyUsageTotal, merge LatencyMerge) error
	// UsageRows returns the rows q selects, ordered by bucket then endpoint.
	UsageRows(ctx context.Context, q UsageQuery) ([]UsageRow, error)
	// KeyUsageTotals returns the totals of the keys, in order; a key never
	// used has zero Requests and LastUsedAt.
	KeyUsageTotals(ctx context.Context, keyIDs []string) ([]KeyUsageTotal, error)
	// KeyAccounts maps each of the ids that names a key to its account.
	KeyAccounts(ctx context.Context, keyIDs []string) (map[string]string, error)
	// PruneUsage deletes rows of granularity g whose buckets start before
	// before, and returns how many.
	PruneUsage(ctx context.Context, g UsageGranularity, before time.Time) (int64, error)
}

// UsageReport is a subject's usage over a range: a series of buckets (every
// bucket of the range, empty ones included), the totals, the latency over
// the whole range and the most used endpoints.
type UsageReport struct {
	Subject      string
	Granularity  UsageGranularity
	From, To     time.Time
	Series       []UsageBucket
	Totals       UsageCounts
	Latency      LatencySummary
	TopEndpoints []EndpointUsage
}

// UsageBucket is one bucket of a report's series.
type UsageBucket struct {
	Start time.Time
	UsageCounts
	Latency LatencySummary
}

// EndpointUsage is one endpoint's usage over a report's range.
type EndpointUsage struct {
	Endpoint string
	UsageCounts
	Latency LatencySummary
}

// LatencySummary are percentiles of measured upstream latencies, in
// milliseconds; all zero when Count is.
type LatencySummary struct {
	Count         int64
	P50, P95, P99 float64
}

// ErrorRate is the share of requests the upstream answered with a 5xx.
func (c *UsageCounts) ErrorRate() float64 {
	if c.Requests <= 0 {
		return 0
	}
	return float64(c.Errors()) / float64(c.Requests)
}

// UsageReporter builds usage reports from stored usage.
type UsageReporter interface {
	UsageReport(ctx context.Context, q UsageQuery) (*UsageReport, error)
}
