package usage

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
)

// Retention is how long usage rows are kept, per granularity.
type Retention struct {
	Minute, Hour, Day time.Duration
}

const day = 24 * time.Hour

// DefaultRetention keeps minutes a week, hours 90 days and days two years.
var DefaultRetention = Retention{Minute: 7 * day, Hour: 90 * day, Day: 730 * day}

func (r Retention) of(g keyplane.UsageGranularity) time.Duration {
	switch g {
	case keyplane.UsageMinute:
		return r.Minute
	case keyplane.UsageHour:
		return r.Hour
	}
	return r.Day
}

// String formats r as ParseRetention reads it.
func (r Retention) String() string {
	return fmt.Sprintf("minute=%s,hour=%s,day=%s", formatDays(r.Minute), formatDays(r.Hour), formatDays(r.Day))
}

func formatDays(d time.Duration) string {
	if d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}

// ParseRetention reads "minute=7d,hour=90d,day=730d": durations in days
// ("7d") or as Go writes them ("36h"); granularities not named keep their
// default. Each must be at least its bucket's width.
func ParseRetention(s string) (Retention, error) {
	r := DefaultRetention
	if strings.TrimSpace(s) == "" {
		return r, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return r, fmt.Errorf("usage retention %q: want granularity=duration, e.g. minute=7d", part)
		}
		d, err := parseDays(value)
		if err != nil {
			return r, fmt.Errorf("usage retention %s: %w", name, err)
		}
		g := keyplane.UsageGranularity(name)
		if !g.Valid() {
			return r, fmt.Errorf("usage retention %q: want minute, hour or day", name)
		}
		if d < time.Duration(g.Seconds())*time.Second {
			return r, fmt.Errorf("usage retention %s=%s: shorter than one %s", name, value, name)
		}
		switch g {
		case keyplane.UsageMinute:
			r.Minute = d
		case keyplane.UsageHour:
			r.Hour = d
		default:
			r.Day = d
		}
	}
	return r, nil
}

func parseDays(v string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.ParseInt(n, 10, 32)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("%q: want a number of days such as 7d", v)
		}
		return time.Duration(days) * day, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q: want a duration such as 7d or 36h", v)
	}
	return d, nil
}
