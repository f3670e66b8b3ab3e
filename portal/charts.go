package portal

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
)

// Charts are inline SVG drawn here, on the server: no chart library, no
// script. The plot stretches to its box (preserveAspectRatio="none", with
// strokes that do not scale), and every label is HTML around it, so text
// stays readable at phone widths. Each chart has a text description and
// the numbers are also in a table, for screen readers.

const (
	plotW = 600.0
	plotH = 160.0
)

// series is one line of a line chart.
type series struct {
	Name   string
	Class  string // CSS class that colours it
	Points string // SVG polyline points
	Total  string
}

// lineChart is a chart of values over time.
type lineChart struct {
	Title  string
	Desc   string
	YMax   string
	XStart string
	XEnd   string
	Series []series
	Empty  bool
}

// newLineChart plots each values slice (all of the same length) on one
// scale from zero to the largest value.
func newLineChart(title, unit string, start, end time.Time, names, classes []string, values [][]float64, totals []string) lineChart {
	c := lineChart{Title: title, XStart: start.UTC().Format("Jan 2 15:04"), XEnd: end.UTC().Format("Jan 2 15:04 UTC")}
	maxV := 0.0
	for _, vs := range values {
		for _, v := range vs {
			maxV = max(maxV, v)
		}
	}
	c.Empty = maxV == 0
	if maxV == 0 {
		maxV = 1
	}
	c.YMax = formatNumber(maxV) + unit
	var desc []string
	for i, vs := range values {
		var pts strings.Builder
		for j, v := range vs {
			x := plotW / 2
			if len(vs) > 1 {
				x = float64(j) / float64(len(vs)-1) * plotW
			}
			y := plotH - v/maxV*(plotH-8)
			fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
		}
		s := series{Name: names[i], Class: classes[i], Points: strings.TrimSpace(pts.String())}
		if totals != nil {
			s.Total = totals[i]
			desc = append(desc, names[i]+": "+totals[i])
		}
		c.Series = append(c.Series, s)
	}
	c.Desc = fmt.Sprintf("%s from %s to %s; highest value %s. %s", title, c.XStart, c.XEnd, c.YMax, strings.Join(desc, ", "))
	return c
}

// bar is one row of a bar chart: a label, a value and its share of the
// largest, as a width out of 100.
type bar struct {
	Label string
	Value string
	Extra string
	Width string
}

func formatNumber(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	case v == float64(int64(v)):
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func rejected(c *keyplane.UsageCounts) int64 {
	var n int64
	for _, r := range c.Rejected {
		n += r
	}
	return n
}

// usageView is what the usage page shows of a report.
type usageView struct {
	Key      *keyplane.Key
	Range    string
	Ranges   []usageRange
	Report   *keyplane.UsageReport
	Requests lineChart
	Latency  lineChart
	Rejected int64
	ErrRate  string
	Bars     []bar
	Rows     []usageRow
}

type usageRow struct {
	Start                      string
	Requests, Errors, Rejected int64
	P50, P95, P99              string
}

// usageRange is a choice on the usage page: a span and the bucket width
// that suits it.
type usageRange struct {
	Name        string
	Label       string
	Span        time.Duration
	Granularity keyplane.UsageGranularity
}

var usageRanges = []usageRange{
	{"1h", "Last hour", time.Hour, keyplane.UsageMinute},
	{"24h", "Last 24 hours", 24 * time.Hour, keyplane.UsageHour},
	{"7d", "Last 7 days", 7 * 24 * time.Hour, keyplane.UsageHour},
	{"30d", "Last 30 days", 30 * 24 * time.Hour, keyplane.UsageDay},
}

func newUsageView(k *keyplane.Key, rng string, rep *keyplane.UsageReport) *usageView {
	v := &usageView{Key: k, Range: rng, Ranges: usageRanges, Report: rep, Rejected: rejected(&rep.Totals)}
	v.ErrRate = strconv.FormatFloat(rep.Totals.ErrorRate()*100, 'f', 1, 64) + " %"
	n := len(rep.Series)
	req, errs, rej := make([]float64, n), make([]float64, n), make([]float64, n)
	p50, p95, p99 := make([]float64, n), make([]float64, n), make([]float64, n)
	layout := "Jan 2 15:04"
	if rep.Granularity == keyplane.UsageDay {
		layout = "Jan 2"
	}
	for i, b := range rep.Series {
		req[i], errs[i], rej[i] = float64(b.Requests), float64(b.Errors()), float64(rejected(&b.UsageCounts))
		p50[i], p95[i], p99[i] = b.Latency.P50, b.Latency.P95, b.Latency.P99
		if b.Requests > 0 {
			row := usageRow{Start: b.Start.UTC().Format(layout), Requests: b.Requests, Errors: b.Errors(), Rejected: rejected(&b.UsageCounts)}
			if b.Latency.Count > 0 {
				row.P50, row.P95, row.P99 = ms(b.Latency.P50), ms(b.Latency.P95), ms(b.Latency.P99)
			}
			v.Rows = append(v.Rows, row)
		}
	}
	t := rep.Totals
	v.Requests = newLineChart("Requests per "+string(rep.Granularity), "", rep.From, rep.To,
		[]string{"Requests", "Errors (5xx)", "Rejected"}, []string{"s-requests", "s-errors", "s-rejected"},
		[][]float64{req, errs, rej}, []string{formatNumber(float64(t.Requests)), formatNumber(float64(t.Errors())), formatNumber(float64(v.Rejected))})
	l := rep.Latency
	v.Latency = newLineChart("Upstream latency", " ms", rep.From, rep.To,
		[]string{"p50", "p95", "p99"}, []string{"s-p50", "s-p95", "s-p99"},
		[][]float64{p50, p95, p99}, []string{ms(l.P50), ms(l.P95), ms(l.P99)})
	var top int64
	for _, e := range rep.TopEndpoints {
		top = max(top, e.Requests)
	}
	for _, e := range rep.TopEndpoints {
		b := bar{Label: e.Endpoint, Value: formatNumber(float64(e.Requests)), Width: "0"}
		if top > 0 {
			b.Width = strconv.FormatFloat(float64(e.Requests)/float64(top)*100, 'f', 1, 64)
		}
		if e.Errors() > 0 {
			b.Extra = formatNumber(float64(e.Errors())) + " errors"
		}
		if b.Label == "" {
			b.Label = "(no endpoint given)"
		}
		v.Bars = append(v.Bars, b)
	}
	return v
}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + " ms" }
