package keyplane_test

import (
	"testing"
	"time"

	"github.com/keyplane/keyplane"
)

func TestQuotaPeriodAt(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name       string
		quota      keyplane.Quota
		now        string
		start, end string
	}{
		{"day", keyplane.Quota{Period: keyplane.QuotaDay}, "2026-11-23T15:04:05Z", "2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z"},
		{"day at midnight", keyplane.Quota{Period: keyplane.QuotaDay}, "2026-11-23T00:00:00Z", "2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z"},
		{"day in another zone is UTC's", keyplane.Quota{Period: keyplane.QuotaDay}, "2026-11-23T23:30:00-05:00", "2026-11-24T00:00:00Z", "2026-11-25T00:00:00Z"},
		{"day before 1970", keyplane.Quota{Period: keyplane.QuotaDay}, "1969-12-31T12:00:00Z", "1969-12-31T00:00:00Z", "1970-01-01T00:00:00Z"},
		{"month", keyplane.Quota{Period: keyplane.QuotaMonth}, "2026-11-23T15:04:05Z", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"},
		{"month after its reset day", keyplane.Quota{Period: keyplane.QuotaMonth, ResetDay: 15}, "2026-11-23T15:04:05Z", "2026-11-15T00:00:00Z", "2026-12-15T00:00:00Z"},
		{"month before its reset day", keyplane.Quota{Period: keyplane.QuotaMonth, ResetDay: 28}, "2026-11-23T15:04:05Z", "2026-10-28T00:00:00Z", "2026-11-28T00:00:00Z"},
		{"month across the year", keyplane.Quota{Period: keyplane.QuotaMonth, ResetDay: 10}, "2027-01-05T00:00:00Z", "2026-12-10T00:00:00Z", "2027-01-10T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, end := tt.quota.PeriodAt(at(tt.now))
			if !start.Equal(at(tt.start)) || !end.Equal(at(tt.end)) {
				t.Fatalf("PeriodAt(%s) = %s, %s; want %s, %s", tt.now, start, end, tt.start, tt.end)
			}
		})
	}
}
