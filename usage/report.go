package usage

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/keyplane/keyplane"
)

// TopEndpoints is how many endpoints a report lists.
const TopEndpoints = 10

// Reporter implements keyplane.UsageReporter on a keyplane.UsageStore.
type Reporter struct {
	store keyplane.UsageStore
}

var _ keyplane.UsageReporter = (*Reporter)(nil)

// NewReporter returns a Reporter reading store.
func NewReporter(store keyplane.UsageStore) *Reporter { return &Reporter{store: store} }

// UsageReport reads the rows of q, whose From and To must be bucket starts
// of its granularity, and sums them into a report.
func (r *Reporter) UsageReport(ctx context.Context, q keyplane.UsageQuery) (*keyplane.UsageReport, error) {
	rows, err := r.store.UsageRows(ctx, q)
	if err != nil {
		return nil, err
	}
	width := q.Granularity.Seconds()
	from := q.From.Unix()
	n := max((q.To.Unix()-from)/width, 0)
	rep := &keyplane.UsageReport{Subject: q.Subject, Granularity: q.Granularity, From: q.From, To: q.To,
		Series: make([]keyplane.UsageBucket, n)}
	for i := range rep.Series {
		rep.Series[i].Start = time.Unix(from+int64(i)*width, 0).UTC()
	}
	bucketSketches := make([]*ddsketch.DDSketch, n)
	endpoints := map[string]*keyplane.EndpointUsage{}
	endpointSketches := map[string]*ddsketch.DDSketch{}
	total := newSketch()
	for i := range rows {
		row := &rows[i]
		b := (row.BucketStart.Unix() - from) / width
		if b < 0 || b >= n {
			continue // the store returns only the range; defensive
		}
		rep.Series[b].Add(&row.UsageCounts)
		rep.Totals.Add(&row.UsageCounts)
		e := endpoints[row.Endpoint]
		if e == nil {
			e = &keyplane.EndpointUsage{Endpoint: row.Endpoint}
			endpoints[row.Endpoint] = e
		}
		e.Add(&row.UsageCounts)
		if row.Latency == nil {
			continue
		}
		s, err := DecodeSketch(row.Latency)
		if err != nil {
			return nil, keyplane.Errorf(keyplane.EINTERNAL, "%v", err)
		}
		total.MergeWith(s)
		if bucketSketches[b] == nil {
			bucketSketches[b] = newSketch()
		}
		bucketSketches[b].MergeWith(s)
		if endpointSketches[row.Endpoint] == nil {
			endpointSketches[row.Endpoint] = newSketch()
		}
		endpointSketches[row.Endpoint].MergeWith(s)
	}
	for i, s := range bucketSketches {
		rep.Series[i].Latency = Summarize(s)
	}
	rep.Latency = Summarize(total)
	for name, e := range endpoints {
		e.Latency = Summarize(endpointSketches[name])
		rep.TopEndpoints = append(rep.TopEndpoints, *e)
	}
	slices.SortFunc(rep.TopEndpoints, func(a, b keyplane.EndpointUsage) int {
		return cmp.Or(cmp.Compare(b.Requests, a.Requests), cmp.Compare(a.Endpoint, b.Endpoint))
	})
	if len(rep.TopEndpoints) > TopEndpoints {
		rep.TopEndpoints = rep.TopEndpoints[:TopEndpoints]
	}
	return rep, nil
}

// Summarize reads the percentiles of a sketch; nil or empty gives zeros.
func Summarize(s *ddsketch.DDSketch) keyplane.LatencySummary {
	if s == nil || s.IsEmpty() {
		return keyplane.LatencySummary{}
	}
	q, err := s.GetValuesAtQuantiles([]float64{0.5, 0.95, 0.99})
	if err != nil {
		return keyplane.LatencySummary{}
	}
	return keyplane.LatencySummary{Count: int64(s.GetCount()), P50: q[0], P95: q[1], P99: q[2]}
}
