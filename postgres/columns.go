package postgres

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/keyplane/keyplane"
)

// How domain values map onto columns, chosen so that every value comes back
// exactly as the sqlite package returns it.

// utc returns a scanned time in time.UTC: pgx scans timestamptz in time.Local.
// PostgreSQL keeps microseconds, as SQLite's integers do.
func utc(t time.Time) time.Time { return t.UTC() }

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC()
	return &v
}

// nullIfEmpty stores "" as NULL, as SQLite's columns do for absent roll links.
func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func stringOrEmpty(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// stringsOrEmpty stores a nil list as an empty array: the columns are NOT NULL
// and pgx sends a nil slice as NULL. It reads back as an empty, non-nil slice.
func stringsOrEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// rateLimitsJSON and quotaJSON store nil as SQL NULL, "the plan's", and an
// empty list as []; pgx sends a nil []byte as NULL.
func rateLimitsJSON(p []keyplane.RateLimitPolicy) []byte {
	if p == nil {
		return nil
	}
	return mustJSON(p)
}

func quotaJSON(q *keyplane.Quota) []byte {
	if q == nil {
		return nil
	}
	return mustJSON(q)
}

func keyPolicyJSON(kp *keyplane.KeyPolicy) []byte {
	if kp == nil {
		return nil
	}
	return mustJSON(kp)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("postgres: encode %T: %v", v, err)) // only domain types of known shape reach here
	}
	return b
}
