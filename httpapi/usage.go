package httpapi

import (
	"bytes"
	"context"
	"encoding/csv"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
)

// maxUsageReportBytes bounds POST /v1/usage: 1,000 events of the longest
// fields fit.
const maxUsageReportBytes = 512 << 10

// UsageEventBody is one request's outcome, reported by the API that
// verified its key through POST /v1/verify.
type UsageEventBody struct {
	KeyID     string     `json:"key_id" maxLength:"64" doc:"The key the request was verified with"`
	Endpoint  string     `json:"endpoint,omitempty" maxLength:"200" doc:"As sent to /v1/verify, e.g. GET /v1/things/{id}"`
	Status    int        `json:"status" minimum:"100" maximum:"599" doc:"The HTTP status the API answered"`
	LatencyMs float64    `json:"latency_ms,omitempty" minimum:"0" maximum:"3600000" doc:"How long the API took; absent or 0: not measured"`
	Time      *time.Time `json:"time,omitempty" doc:"When the request was made; default now. At most 24 hours old, 5 minutes ahead"`
}

type reportUsageInput struct {
	Body struct {
		Events []UsageEventBody `json:"events" minItems:"1" maxItems:"1000" doc:"Recorded whole, or refused whole with every problem named"`
	}
}

type reportUsageOutput struct {
	Body struct {
		Accepted int `json:"accepted" doc:"Events recorded; they reach the analytics within the usage flush interval"`
	}
}

// OptionalTime is a time query parameter that tells absent from given: a
// plain time.Time reads 0001-01-01T00:00:00Z, a time like any other, as
// absent.
type OptionalTime struct {
	Time time.Time
	Set  bool
}

// Receiver lets huma parse the parameter into Time, as a time.Time.
func (o *OptionalTime) Receiver() reflect.Value { return reflect.ValueOf(o).Elem().Field(0) }

// OnParamSet records whether the parameter was given.
func (o *OptionalTime) OnParamSet(isSet bool, _ any) { o.Set = isSet }

// Schema describes the parameter as the time it holds.
func (OptionalTime) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeString, Format: "date-time"}
}

// Ptr is the time when given, else nil.
func (o OptionalTime) Ptr() *time.Time {
	if !o.Set {
		return nil
	}
	return &o.Time
}

// UsageQuery selects the range and form of a usage report.
type UsageQuery struct {
	From        OptionalTime `query:"from" doc:"RFC 3339, rounded down to its bucket; default: to minus an hour (minute), a day (hour) or 30 days (day), but not before 0000-01-01T00:00:00Z"`
	To          OptionalTime `query:"to" doc:"RFC 3339, exclusive, rounded up to a bucket's end, which must not pass 9999-12-31T23:59:59Z; default now"`
	Granularity string       `query:"granularity" enum:"minute,hour,day" default:"hour" doc:"Ranges span at most 1 day of minutes, 31 days of hours, 732 days of days"`
	Format      string       `query:"format" enum:"json,csv" doc:"csv: the series as CSV, as Accept: text/csv also asks"`
	Accept      string       `header:"Accept"`
}

func (q *UsageQuery) service() service.UsageQuery {
	return service.UsageQuery{From: q.From.Ptr(), To: q.To.Ptr(), Granularity: keyplane.UsageGranularity(q.Granularity)}
}

func (q *UsageQuery) csv() bool {
	return q.Format == "csv" || q.Format == "" && strings.Contains(q.Accept, "text/csv")
}

type keyUsageInput struct {
	KeyPath
	UsageQuery
}

type accountUsageInput struct {
	AccountPath
	UsageQuery
}

// usageOutput is a report as JSON (a *UsageReportBody) or as CSV ([]byte).
type usageOutput struct {
	ContentType        string `header:"Content-Type"`
	ContentDisposition string `header:"Content-Disposition"`
	Body               any
}

// RejectionsBody counts requests verification refused, by code.
type RejectionsBody struct {
	Revoked           int64 `json:"REVOKED"`
	Expired           int64 `json:"EXPIRED"`
	Disabled          int64 `json:"DISABLED"`
	Forbidden         int64 `json:"FORBIDDEN"`
	InsufficientScope int64 `json:"INSUFFICIENT_SCOPE"`
	RateLimited       int64 `json:"RATE_LIMITED"`
	QuotaExceeded     int64 `json:"QUOTA_EXCEEDED"`
}

// LatencyBody are upstream latency percentiles in milliseconds, within 1 %
// of the exact ones; absent when no latency was reported.
type LatencyBody struct {
	Count int64    `json:"count" doc:"Latencies measured"`
	P50   *float64 `json:"p50,omitempty"`
	P95   *float64 `json:"p95,omitempty"`
	P99   *float64 `json:"p99,omitempty"`
}

// UsageCountsBody are the counts of a bucket, an endpoint or a range.
type UsageCountsBody struct {
	Requests   int64          `json:"requests" doc:"Verifications of the key(s)"`
	Successes  int64          `json:"successes" doc:"VALID, and the upstream did not answer 5xx (when reported)"`
	Errors     int64          `json:"errors" doc:"VALID, and the upstream answered 5xx (as reported, but at most the VALID requests)"`
	Rejected   int64          `json:"rejected" doc:"Refused by verification"`
	Rejections RejectionsBody `json:"rejections"`
	ErrorRate  float64        `json:"error_rate" doc:"errors / requests"`
	LatencyMs  LatencyBody    `json:"latency_ms"`
}

type UsageBucketBody struct {
	Start time.Time `json:"start"`
	UsageCountsBody
}

type EndpointUsageBody struct {
	Endpoint string `json:"endpoint" doc:"(other) collects a key's endpoints past its first 100"`
	UsageCountsBody
}

// UsageReportBody is a key's or an account's usage over a range.
type UsageReportBody struct {
	SubjectID    string              `json:"subject_id" doc:"The key, or the account"`
	Granularity  string              `json:"granularity" enum:"minute,hour,day"`
	From         time.Time           `json:"from"`
	To           time.Time           `json:"to"`
	Totals       UsageCountsBody     `json:"totals"`
	Series       []UsageBucketBody   `json:"series" doc:"Every bucket of the range, oldest first, empty ones included"`
	TopEndpoints []EndpointUsageBody `json:"top_endpoints" doc:"The 10 endpoints with the most requests"`
}

func countsBody(c *keyplane.UsageCounts, l keyplane.LatencySummary) UsageCountsBody {
	r := c.Rejected
	b := UsageCountsBody{Requests: c.Requests, Successes: c.Successes(), Errors: c.Errors(), Rejected: c.Rejections(), ErrorRate: c.ErrorRate(),
		Rejections: RejectionsBody{Revoked: r[0], Expired: r[1], Disabled: r[2], Forbidden: r[3], InsufficientScope: r[4], RateLimited: r[5], QuotaExceeded: r[6]},
		LatencyMs:  LatencyBody{Count: l.Count}}
	if l.Count > 0 {
		b.LatencyMs.P50, b.LatencyMs.P95, b.LatencyMs.P99 = &l.P50, &l.P95, &l.P99
	}
	return b
}

func reportBody(r *keyplane.UsageReport) *UsageReportBody {
	b := &UsageReportBody{SubjectID: r.Subject, Granularity: string(r.Granularity), From: r.From, To: r.To,
		Totals: countsBody(&r.Totals, r.Latency), Series: make([]UsageBucketBody, len(r.Series)), TopEndpoints: make([]EndpointUsageBody, len(r.TopEndpoints))}
	for i := range r.Series {
		b.Series[i] = UsageBucketBody{Start: r.Series[i].Start, UsageCountsBody: countsBody(&r.Series[i].UsageCounts, r.Series[i].Latency)}
	}
	for i := range r.TopEndpoints {
		b.TopEndpoints[i] = EndpointUsageBody{Endpoint: r.TopEndpoints[i].Endpoint, UsageCountsBody: countsBody(&r.TopEndpoints[i].UsageCounts, r.TopEndpoints[i].Latency)}
	}
	return b
}

// csvHeader names the CSV columns; rejection columns follow
// keyplane.UsageRejectionCodes.
var csvHeader = func() []string {
	h := []string{"subject_id", "granularity", "bucket_start", "requests", "successes", "errors"}
	for _, c := range keyplane.UsageRejectionCodes {
		h = append(h, "rejected_"+strings.ToLower(string(c)))
	}
	return append(h, "error_rate", "latency_count", "p50_ms", "p95_ms", "p99_ms")
}()

// reportCSV is the series as CSV, one row a bucket: what usage-based
// billing imports.
func reportCSV(r *keyplane.UsageReport) []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write(csvHeader)
	num := func(v int64) string { return strconv.FormatInt(v, 10) }
	ms := func(v float64, l keyplane.LatencySummary) string {
		if l.Count == 0 {
			return ""
		}
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
	for _, b := range r.Series {
		row := []string{r.Subject, string(r.Granularity), b.Start.Format(time.RFC3339), num(b.Requests), num(b.Successes()), num(b.Errors())}
		for _, n := range b.Rejected {
			row = append(row, num(n))
		}
		row = append(row, strconv.FormatFloat(b.ErrorRate(), 'f', 6, 64), num(b.Latency.Count),
			ms(b.Latency.P50, b.Latency), ms(b.Latency.P95, b.Latency), ms(b.Latency.P99, b.Latency))
		w.Write(row)
	}
	w.Flush()
	return buf.Bytes()
}

func usageOutputFor(r *keyplane.UsageReport, q *UsageQuery) *usageOutput {
	if q.csv() {
		name := r.Subject + "-usage-" + r.From.Format("20060102T1504Z") + ".csv"
		return &usageOutput{ContentType: "text/csv; charset=utf-8", ContentDisposition: `attachment; filename="` + name + `"`, Body: reportCSV(r)}
	}
	return &usageOutput{ContentType: "application/json", Body: reportBody(r)}
}

// usageResponses documents the two forms of a report: the handler's body is
// typed any, which huma cannot describe.
func (s *Server) usageResponses() map[string]*huma.Response {
	schema := s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[UsageReportBody](), true, "")
	return map[string]*huma.Response{"200": {
		Description: "The report, as JSON or (format=csv, Accept: text/csv) as CSV with one row per bucket",
		Content: map[string]*huma.MediaType{
			"application/json": {Schema: schema},
			"text/csv":         {Schema: &huma.Schema{Type: huma.TypeString}},
		},
	}}
}

func (s *Server) usageRoutes() {
	tags := []string{"Usage"}
	notFound := []int{http.StatusNotFound}
	register(s, keyplane.RoleVerify, huma.Operation{OperationID: "reportUsage", Method: http.MethodPost, Path: "/v1/usage",
		Summary: "Report the outcomes (status, latency) of requests whose keys were verified through /v1/verify",
		Description: "Admin and verify tokens. Each event is the upstream's answer to a request already counted by its verification: " +
			"a 5xx makes it an error rather than a success (errors never exceed the requests let through), a latency joins the percentiles. Batches of up to 1,000 events, recorded whole or refused whole (400, naming each bad event; " +
			"an unknown key_id is one).",
		Tags: tags, DefaultStatus: http.StatusAccepted, MaxBodyBytes: maxUsageReportBytes},
		func(ctx context.Context, in *reportUsageInput) (*reportUsageOutput, error) {
			reqs := make([]service.ReportedRequest, len(in.Body.Events))
			for i, e := range in.Body.Events {
				reqs[i] = service.ReportedRequest{KeyID: e.KeyID, Endpoint: e.Endpoint, Status: e.Status,
					Latency: time.Duration(e.LatencyMs * float64(time.Millisecond))}
				if e.Time != nil {
					reqs[i].Time = *e.Time
				}
			}
			if err := s.svc.ReportUsage(ctx, reqs); err != nil {
				return nil, err
			}
			out := &reportUsageOutput{}
			out.Body.Accepted = len(reqs)
			return out, nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "getKeyUsage", Method: http.MethodGet, Path: "/v1/keys/{id}/usage",
		Summary: "A key's usage over a range: series, totals, latency percentiles, top endpoints; JSON or CSV", Tags: tags, Errors: notFound,
		Responses: s.usageResponses()},
		func(ctx context.Context, in *keyUsageInput) (*usageOutput, error) {
			r, err := s.svc.KeyUsage(ctx, in.ID, in.service())
			if err != nil {
				return nil, err
			}
			return usageOutputFor(r, &in.UsageQuery), nil
		})
	register(s, keyplane.RoleAdmin, huma.Operation{OperationID: "getAccountUsage", Method: http.MethodGet, Path: "/v1/accounts/{id}/usage",
		Summary: "An account's usage (all its keys together) over a range; JSON or CSV", Tags: tags, Errors: notFound,
		Responses: s.usageResponses()},
		func(ctx context.Context, in *accountUsageInput) (*usageOutput, error) {
			r, err := s.svc.AccountUsage(ctx, in.ID, in.service())
			if err != nil {
				return nil, err
			}
			return usageOutputFor(r, &in.UsageQuery), nil
		})
}
