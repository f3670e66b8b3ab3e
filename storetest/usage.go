package storetest

import (
	"bytes"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
)

// minute is a usage bucket start.
var minute = time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC)

// concat stands in for merging sketches: it shows which stored value each
// merge saw, so a lost update shows as a missing byte.
func concat(stored, add []byte) ([]byte, error) { return append(slices.Clone(stored), add...), nil }

func usageRow(g keyplane.UsageGranularity, subject, endpoint string, start time.Time, requests int64) keyplane.UsageRow {
	r := keyplane.UsageRow{Granularity: g, Subject: subject, AccountID: "acc_x", Endpoint: endpoint, BucketStart: start}
	r.Requests, r.Valid, r.UpstreamErrors = requests, requests-1, 1
	for i := range r.Rejected {
		r.Rejected[i] = int64(i + 1)
	}
	return r
}

func addUsage(t *testing.T, s keyplane.Store, rows []keyplane.UsageRow, totals ...keyplane.KeyUsageTotal) {
	t.Helper()
	if err := s.AddUsage(ctx, rows, totals, concat); err != nil {
		t.Fatalf("AddUsage: %v", err)
	}
}

func usageRows(t *testing.T, s keyplane.Store, subject string, g keyplane.UsageGranularity, from, to time.Time) []keyplane.UsageRow {
	t.Helper()
	rows, err := s.UsageRows(ctx, keyplane.UsageQuery{Subject: subject, Granularity: g, From: from, To: to})
	if err != nil {
		t.Fatalf("UsageRows: %v", err)
	}
	return rows
}

func testUsageAddsUp(t *testing.T, s keyplane.Store) {
	key := id("key")
	rows := []keyplane.UsageRow{
		usageRow(keyplane.UsageMinute, key, "GET /b", minute, 5),
		usageRow(keyplane.UsageMinute, key, "GET /a", minute, 3),
		usageRow(keyplane.UsageMinute, key, "GET /a", minute.Add(time.Minute), 2),
		usageRow(keyplane.UsageHour, key, "GET /a", minute.Truncate(time.Hour), 5),
	}
	addUsage(t, s, rows)
	addUsage(t, s, rows[:1])
	got := usageRows(t, s, key, keyplane.UsageMinute, minute, minute.Add(time.Hour))
	if len(got) != 3 {
		t.Fatalf("got %d rows: %+v", len(got), got)
	}
	// Ordered by bucket, then endpoint.
	want := []struct {
		endpoint string
		start    time.Time
		requests int64
	}{{"GET /a", minute, 3}, {"GET /b", minute, 10}, {"GET /a", minute.Add(time.Minute), 2}}
	for i, w := range want {
		r := got[i]
		if r.Endpoint != w.endpoint || !r.BucketStart.Equal(w.start) || r.Requests != w.requests || r.BucketStart.Location() != time.UTC ||
			r.Subject != key || r.AccountID != "acc_x" || r.Granularity != keyplane.UsageMinute || r.Latency != nil {
			t.Errorf("row %d = %+v, want %s %s %d", i, r, w.endpoint, w.start, w.requests)
		}
	}
	// Every count adds up, not only requests.
	b := got[1]
	if b.Valid != 8 || b.UpstreamErrors != 2 || b.Rejected != [len(keyplane.UsageRejectionCodes)]int64{2, 4, 6, 8, 10, 12, 14} {
		t.Errorf("counts = %+v", b.UsageCounts)
	}
	// [from, to): a bucket starting at to is not in the range.
	if got := usageRows(t, s, key, keyplane.UsageMinute, minute, minute.Add(time.Minute)); len(got) != 2 {
		t.Errorf("first minute: %d rows, want 2", len(got))
	}
	// Granularities are apart.
	if got := usageRows(t, s, key, keyplane.UsageHour, minute.Add(-time.Hour), minute.Add(time.Hour)); len(got) != 1 || got[0].Requests != 5 {
		t.Errorf("hours: %+v", got)
	}
	if got := usageRows(t, s, key, keyplane.UsageDay, minute.Add(-48*time.Hour), minute.Add(48*time.Hour)); len(got) != 0 {
		t.Errorf("days: %+v", got)
	}
	if got := usageRows(t, s, id("key"), keyplane.UsageMinute, minute, minute.Add(time.Hour)); len(got) != 0 {
		t.Errorf("another subject: %+v", got)
	}
}

// Upstream outcomes are stored apart from verifications: a batch of 5xx
// reported without verifications is kept as it is, and later verifications
// add to their own column, whatever the order.
func testUsageOutcomesApart(t *testing.T, s keyplane.Store) {
	key := id("key")
	reported := keyplane.UsageRow{Granularity: keyplane.UsageMinute, Subject: key, AccountID: "acc_x", Endpoint: "GET /a", BucketStart: minute}
	reported.UpstreamErrors = 1000
	verified := reported
	verified.UsageCounts = keyplane.UsageCounts{Requests: 3, Valid: 3}
	addUsage(t, s, []keyplane.UsageRow{reported})
	got := usageRows(t, s, key, keyplane.UsageMinute, minute, minute.Add(time.Minute))
	if len(got) != 1 || got[0].UsageCounts != reported.UsageCounts {
		t.Fatalf("outcomes alone read back as %+v, want %+v", got, reported.UsageCounts)
	}
	addUsage(t, s, []keyplane.UsageRow{verified})
	addUsage(t, s, []keyplane.UsageRow{reported})
	got = usageRows(t, s, key, keyplane.UsageMinute, minute, minute.Add(time.Minute))
	want := keyplane.UsageCounts{Requests: 3, Valid: 3, UpstreamErrors: 2000}
	if len(got) != 1 || got[0].UsageCounts != want {
		t.Fatalf("read back %+v, want %+v", got, want)
	}
}

func testUsageLatencyMerge(t *testing.T, s keyplane.Store) {
	key := id("key")
	row := usageRow(keyplane.UsageDay, key, "", minute.Truncate(24*time.Hour), 1)
	withLatency := func(b string) keyplane.UsageRow { r := row; r.Latency = []byte(b); return r }
	addUsage(t, s, []keyplane.UsageRow{withLatency("a")})
	addUsage(t, s, []keyplane.UsageRow{row}) // no latency measured: the stored one stays
	addUsage(t, s, []keyplane.UsageRow{withLatency("b")})
	got := usageRows(t, s, key, keyplane.UsageDay, row.BucketStart, row.BucketStart.Add(time.Second))
	if len(got) != 1 || string(got[0].Latency) != "ab" || got[0].Requests != 3 {
		t.Fatalf("got %+v, want latency ab and 3 requests", got)
	}
	// A failing merge aborts the whole batch.
	other := usageRow(keyplane.UsageDay, id("key"), "", row.BucketStart, 1)
	err := s.AddUsage(ctx, []keyplane.UsageRow{other, withLatency("c")}, nil, func(_, _ []byte) ([]byte, error) {
		return nil, keyplane.Errorf(keyplane.EINTERNAL, "corrupt sketch")
	})
	if err == nil {
		t.Fatal("a failing merge was not reported")
	}
	if got := usageRows(t, s, other.Subject, keyplane.UsageDay, row.BucketStart, row.BucketStart.Add(time.Second)); len(got) != 0 {
		t.Fatalf("the batch of a failed merge was partly written: %+v", got)
	}
}

// Two writers merging latencies into the same rows lose none: each merge
// sees every earlier one.
func testUsageConcurrentMerges(t *testing.T, s keyplane.Store) {
	keys := []string{id("key"), id("key")}
	const writers, rounds = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				var rows []keyplane.UsageRow
				// Opposite orders, which must not deadlock.
				for i := range keys {
					k := keys[i]
					if w%2 == 1 {
						k = keys[len(keys)-1-i]
					}
					r := usageRow(keyplane.UsageMinute, k, "GET /x", minute, 1)
					r.Latency = []byte{'a' + byte(w)}
					rows = append(rows, r)
				}
				if err := s.AddUsage(ctx, rows, nil, concat); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("AddUsage: %v", err)
	}
	for _, k := range keys {
		got := usageRows(t, s, k, keyplane.UsageMinute, minute, minute.Add(time.Minute))
		if len(got) != 1 || got[0].Requests != writers*rounds || len(got[0].Latency) != writers*rounds {
			t.Fatalf("%s: %d requests, %d merged latencies, want %d of each", k, got[0].Requests, len(got[0].Latency), writers*rounds)
		}
		for w := range writers {
			if n := bytes.Count(got[0].Latency, []byte{'a' + byte(w)}); n != rounds {
				t.Errorf("writer %d: %d latencies kept, want %d", w, n, rounds)
			}
		}
	}
}

func testUsageTotals(t *testing.T, s keyplane.Store) {
	k1, k2, never := id("key"), id("key"), id("key")
	t1 := base.Truncate(time.Microsecond)
	addUsage(t, s, nil, keyplane.KeyUsageTotal{KeyID: k1, AccountID: "acc_1", Requests: 3, LastUsedAt: t1},
		keyplane.KeyUsageTotal{KeyID: k2, AccountID: "acc_2", Requests: 1, LastUsedAt: t1})
	// Another instance flushes later with an older last use: it adds, never moves back.
	addUsage(t, s, nil, keyplane.KeyUsageTotal{KeyID: k1, AccountID: "acc_1", Requests: 4, LastUsedAt: t1.Add(-time.Hour)},
		keyplane.KeyUsageTotal{KeyID: k2, AccountID: "acc_2", Requests: 2, LastUsedAt: t1.Add(time.Second)})
	got, err := s.KeyUsageTotals(ctx, []string{k2, never, k1})
	if err != nil {
		t.Fatal(err)
	}
	want := []keyplane.KeyUsageTotal{
		{KeyID: k2, AccountID: "acc_2", Requests: 3, LastUsedAt: t1.Add(time.Second)},
		{KeyID: never},
		{KeyID: k1, AccountID: "acc_1", Requests: 7, LastUsedAt: t1},
	}
	for i := range want {
		if got[i].KeyID != want[i].KeyID || got[i].AccountID != want[i].AccountID || got[i].Requests != want[i].Requests ||
			!got[i].LastUsedAt.Equal(want[i].LastUsedAt) || !got[i].LastUsedAt.IsZero() && got[i].LastUsedAt.Location() != time.UTC {
			t.Errorf("total %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if got, err := s.KeyUsageTotals(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("no keys: %v %v", got, err)
	}
	if err := s.AddUsage(ctx, nil, nil, concat); err != nil {
		t.Errorf("empty batch: %v", err)
	}
}

func testUsageKeyAccounts(t *testing.T, s keyplane.Store) {
	a, b := newAccount(t, s), newAccount(t, s)
	ka, kb := mustCreateKey(t, s, newKey(a.ID)), mustCreateKey(t, s, newKey(b.ID))
	got, err := s.KeyAccounts(ctx, []string{ka.ID, "key_unknown", kb.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[ka.ID] != a.ID || got[kb.ID] != b.ID {
		t.Fatalf("KeyAccounts = %v", got)
	}
}

func testUsagePrune(t *testing.T, s keyplane.Store) {
	key := id("key")
	var rows []keyplane.UsageRow
	for i := range 5 {
		rows = append(rows, usageRow(keyplane.UsageMinute, key, "", minute.Add(time.Duration(i)*time.Minute), 1))
	}
	rows = append(rows, usageRow(keyplane.UsageHour, key, "", minute.Truncate(time.Hour), 5))
	addUsage(t, s, rows)
	n, err := s.PruneUsage(ctx, keyplane.UsageMinute, minute.Add(3*time.Minute))
	if err != nil || n != 3 {
		t.Fatalf("PruneUsage = %d, %v; want 3", n, err)
	}
	got := usageRows(t, s, key, keyplane.UsageMinute, minute.Add(-time.Hour), minute.Add(time.Hour))
	if len(got) != 2 || !got[0].BucketStart.Equal(minute.Add(3*time.Minute)) {
		t.Fatalf("left %+v", got)
	}
	// Other granularities keep theirs.
	if got := usageRows(t, s, key, keyplane.UsageHour, minute.Add(-time.Hour), minute.Add(time.Hour)); len(got) != 1 {
		t.Fatalf("hours after pruning minutes: %+v", got)
	}
	if n, err := s.PruneUsage(ctx, keyplane.UsageMinute, minute.Add(3*time.Minute)); err != nil || n != 0 {
		t.Fatalf("second prune = %d, %v", n, err)
	}
}
