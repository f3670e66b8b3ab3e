package service_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/teststore"
)

func (e *env) flushUsage(t testing.TB) {
	t.Helper()
	if err := e.meter.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestVerificationsAreMetered(t *testing.T) {
	e := newEnv(t)
	acc := e.account(t, "data:*")
	k := e.key(t, acc.ID, service.KeyInput{Scopes: []string{"data:read"}})
	other := e.key(t, acc.ID, service.KeyInput{})
	for range 5 {
		e.verify(t, keyplane.VerifyRequest{Key: k.Plaintext, Endpoint: "GET /things", Cost: 1})
	}
	if code := e.verify(t, keyplane.VerifyRequest{Key: k.Plaintext, Scope: "data:write", Endpoint: "POST /things", Cost: 1}); code != keyplane.VerifyInsufficientScope {
		t.Fatal(code)
	}
	e.verify(t, keyplane.VerifyRequest{Key: other.Plaintext, Cost: 1})
	e.verify(t, keyplane.VerifyRequest{Key: apikeyNew(), Endpoint: "GET /things", Cost: 1}) // not found: not metered
	e.flushUsage(t)

	rep, err := e.svc.KeyUsage(e.ctx, k.ID, service.UsageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	scope := keyplane.RejectionIndex(keyplane.VerifyInsufficientScope)
	if rep.Totals.Requests != 6 || rep.Totals.Successes() != 5 || rep.Totals.Rejected[scope] != 1 || rep.Subject != k.ID {
		t.Fatalf("key totals = %+v", rep.Totals)
	}
	if len(rep.TopEndpoints) != 2 || rep.TopEndpoints[0].Endpoint != "GET /things" || rep.TopEndpoints[0].Requests != 5 {
		t.Fatalf("top endpoints = %+v", rep.TopEndpoints)
	}
	// The default: the last day in hours, the current hour included.
	now := e.clock.Now()
	if rep.Granularity != keyplane.UsageHour || len(rep.Series) != 25 || !rep.To.Equal(now.Truncate(time.Hour).Add(time.Hour)) {
		t.Fatalf("default range: %s %s–%s, %d buckets", rep.Granularity, rep.From, rep.To, len(rep.Series))
	}
	if last := rep.Series[24]; last.Requests != 6 || !last.Start.Equal(now.Truncate(time.Hour)) {
		t.Fatalf("last bucket = %+v", last)
	}
	accRep, err := e.svc.AccountUsage(e.ctx, acc.ID, service.UsageQuery{Granularity: keyplane.UsageDay})
	if err != nil {
		t.Fatal(err)
	}
	if accRep.Totals.Requests != 7 || accRep.Subject != acc.ID {
		t.Fatalf("account totals = %+v", accRep.Totals)
	}
	// The key shows its total and last use.
	got, err := e.svc.Key(e.ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.TotalRequests != 6 || got.LastUsedAt == nil || !got.LastUsedAt.Equal(now) {
		t.Fatalf("key: %d requests, last used %v; want 6, %v", got.TotalRequests, got.LastUsedAt, now)
	}
	keys, _, err := e.svc.ListKeys(e.ctx, acc.ID, "", keyplane.Page{})
	if err != nil {
		t.Fatal(err)
	}
	for _, listed := range keys {
		if want := map[string]int64{k.ID: 6, other.ID: 1}[listed.ID]; listed.TotalRequests != want {
			t.Errorf("listed %s: %d requests, want %d", listed.ID, listed.TotalRequests, want)
		}
	}
}

// Two instances on one database, each with its own meter: N verifications
// spread over both read back as exactly N.
func TestTwoInstancesAddUp(t *testing.T) {
	store := teststore.New(t)
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	a, b := newEnvOn(t, store, c), newEnvOn(t, store, c)
	acc := a.account(t)
	k := a.key(t, acc.ID, service.KeyInput{})
	const n = 1000
	var wg sync.WaitGroup
	for w := range 4 {
		e := []*env{a, b}[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / 4 {
				if res, err := e.svc.Verify(e.ctx, keyplane.VerifyRequest{Key: k.Plaintext, Endpoint: "GET /", Cost: 1}); err != nil || !res.Valid {
					t.Errorf("verify: %v %s", err, res.Code)
					return
				}
			}
		}()
		if w == 1 {
			a.flushUsage(t) // flushes mid-load add up too
		}
	}
	wg.Wait()
	a.flushUsage(t)
	b.flushUsage(t)
	for _, e := range []*env{a, b} {
		rep, err := e.svc.KeyUsage(e.ctx, k.ID, service.UsageQuery{Granularity: keyplane.UsageMinute})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Totals.Requests != n || rep.Totals.Successes() != n {
			t.Fatalf("%d requests, %d successes; want %d", rep.Totals.Requests, rep.Totals.Successes(), n)
		}
		got, err := e.svc.Key(e.ctx, k.ID)
		if err != nil || got.TotalRequests != n {
			t.Fatalf("key total %d, %v; want %d", got.TotalRequests, err, n)
		}
	}
}

func TestUsageIsolationAndValidation(t *testing.T) {
	e := newEnv(t)
	mine, theirs := e.account(t), e.account(t)
	myKey, theirKey := e.key(t, mine.ID, service.KeyInput{}), e.key(t, theirs.ID, service.KeyInput{})
	member := keyplane.NewContextWithActor(context.Background(), keyplane.Actor{Kind: "member", ID: "mem_1", AccountID: mine.ID})
	if _, err := e.svc.KeyUsage(member, myKey.ID, service.UsageQuery{}); err != nil {
		t.Fatalf("own key: %v", err)
	}
	if _, err := e.svc.AccountUsage(member, mine.ID, service.UsageQuery{}); err != nil {
		t.Fatalf("own account: %v", err)
	}
	_, err := e.svc.KeyUsage(member, theirKey.ID, service.UsageQuery{})
	wantCode(t, err, keyplane.ENOTFOUND)
	_, err = e.svc.AccountUsage(member, theirs.ID, service.UsageQuery{})
	wantCode(t, err, keyplane.ENOTFOUND)
	verifier := keyplane.NewContextWithActor(context.Background(), keyplane.Actor{Kind: "token", ID: "tok_v", Role: keyplane.RoleVerify})
	_, err = e.svc.KeyUsage(verifier, myKey.ID, service.UsageQuery{})
	wantCode(t, err, keyplane.EFORBIDDEN)

	now := e.clock.Now()
	for _, tc := range []struct {
		field string
		q     service.UsageQuery
	}{
		{"granularity", service.UsageQuery{Granularity: "week"}},
		{"from", service.UsageQuery{From: &now, To: new(now.Add(-time.Hour))}},
		{"to", service.UsageQuery{From: new(now.Add(-25 * time.Hour)), To: &now, Granularity: keyplane.UsageMinute}},
		// Far apart enough that their difference overflows a Duration.
		{"to", service.UsageQuery{From: new(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Second)), To: new(time.Date(2047, 1, 1, 0, 0, 0, 0, time.UTC)), Granularity: keyplane.UsageDay}},
		// The zero time.Time is a bound when given, not the default: from
		// year 1 to now is too long.
		{"to", service.UsageQuery{From: &time.Time{}, Granularity: keyplane.UsageDay}},
		// Bounded to the years RFC 3339 writes, 0000 to 9999, after
		// widening to whole buckets, and before any arithmetic.
		{"to", service.UsageQuery{From: new(time.Date(9999, 12, 1, 0, 0, 0, 0, time.UTC)), To: new(time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)), Granularity: keyplane.UsageDay}},
		{"to", service.UsageQuery{To: new(time.Date(9999, 12, 31, 23, 0, 1, 0, time.UTC))}},
		{"to", service.UsageQuery{From: new(time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC)), To: new(time.Date(9999, 12, 31, 23, 59, 0, 1, time.UTC)), Granularity: keyplane.UsageMinute}},
		{"to", service.UsageQuery{To: new(time.Unix(1<<62, 0))}},
		{"to", service.UsageQuery{To: new(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC))}},
		{"from", service.UsageQuery{From: new(time.Unix(-1<<62, 0)), To: &now}},
		{"from", service.UsageQuery{From: new(time.Date(-1, 12, 31, 23, 59, 59, 0, time.UTC)), To: new(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC))}},
	} {
		_, err := e.svc.KeyUsage(e.ctx, myKey.ID, tc.q)
		var ke *keyplane.Error
		if !asError(err, &ke) || ke.Code != keyplane.EINVALID || len(ke.Fields) == 0 || ke.Fields[0].Field != tc.field {
			t.Errorf("%+v: %v, want a problem with %s", tc.q, err, tc.field)
		}
	}
	// Ranges widen to whole buckets; the widest allowed passes.
	rep, err := e.svc.KeyUsage(e.ctx, myKey.ID, service.UsageQuery{From: new(now.Add(-730 * 24 * time.Hour)), To: &now, Granularity: keyplane.UsageDay})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.From.Equal(now.Add(-730*24*time.Hour).Truncate(24*time.Hour)) || !rep.To.Equal(now.Truncate(24*time.Hour).Add(24*time.Hour)) || len(rep.Series) != 731 {
		t.Fatalf("range %s–%s with %d buckets", rep.From, rep.To, len(rep.Series))
	}
	// The ends of what RFC 3339 writes are reachable.
	year0 := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		q        service.UsageQuery
		from, to time.Time
	}{
		{service.UsageQuery{From: &time.Time{}, To: new(time.Time{}.Add(time.Hour))}, time.Time{}, time.Time{}.Add(time.Hour)},
		{service.UsageQuery{To: new(year0.Add(90 * time.Minute))}, year0, year0.Add(2 * time.Hour)},
		{service.UsageQuery{From: new(time.Date(9999, 12, 31, 22, 30, 0, 0, time.UTC)), To: new(time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC))},
			time.Date(9999, 12, 31, 22, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC)},
	} {
		rep, err := e.svc.KeyUsage(e.ctx, myKey.ID, tc.q)
		if err != nil || !rep.From.Equal(tc.from) || !rep.To.Equal(tc.to) {
			t.Errorf("%v: %v, want %s–%s", tc.q, err, tc.from, tc.to)
			continue
		}
		if _, err := json.Marshal(rep); err != nil {
			t.Errorf("%v: %v", tc.q, err)
		}
	}
}

func TestReportUsage(t *testing.T) {
	e := newEnv(t)
	acc := e.account(t)
	k := e.key(t, acc.ID, service.KeyInput{})
	e.verify(t, keyplane.VerifyRequest{Key: k.Plaintext, Endpoint: "GET /", Cost: 1})
	e.verify(t, keyplane.VerifyRequest{Key: k.Plaintext, Endpoint: "GET /", Cost: 1})
	verifier := keyplane.NewContextWithActor(context.Background(), keyplane.Actor{Kind: "token", ID: "tok_v", Role: keyplane.RoleVerify})
	err := e.svc.ReportUsage(verifier, []service.ReportedRequest{{KeyID: k.ID, Endpoint: "GET /", Status: 502, Latency: 40 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	// Members do not report usage, not even for their own account's keys.
	member := keyplane.NewContextWithActor(context.Background(), keyplane.Actor{Kind: "member", ID: "mem_1", AccountID: acc.ID})
	err = e.svc.ReportUsage(member, []service.ReportedRequest{{KeyID: k.ID, Status: 200}})
	wantCode(t, err, keyplane.EFORBIDDEN)
	e.flushUsage(t)
	rep, err := e.svc.KeyUsage(e.ctx, k.ID, service.UsageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	// The report refined a verified request: still 2 requests, one now an error.
	if rep.Totals.Requests != 2 || rep.Totals.Successes() != 1 || rep.Totals.Errors() != 1 || rep.Latency.Count != 1 {
		t.Fatalf("totals %+v, latency %+v", rep.Totals, rep.Latency)
	}
}

// An outcome reported in a later minute than its verification leaves no
// bucket negative: the minute of the report has no request to make an
// error, and the hour, which has both, has the error.
func TestReportInAnotherBucket(t *testing.T) {
	e := newEnv(t)
	k := e.key(t, e.account(t).ID, service.KeyInput{})
	e.verify(t, keyplane.VerifyRequest{Key: k.Plaintext, Endpoint: "GET /", Cost: 1})
	e.verify(t, keyplane.VerifyRequest{Key: k.Plaintext, Endpoint: "GET /", Cost: 1})
	e.clock.Add(time.Minute)
	if err := e.svc.ReportUsage(e.ctx, []service.ReportedRequest{{KeyID: k.ID, Endpoint: "GET /", Status: 503}}); err != nil {
		t.Fatal(err)
	}
	e.flushUsage(t)
	minutes, err := e.svc.KeyUsage(e.ctx, k.ID, service.UsageQuery{Granularity: keyplane.UsageMinute})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range minutes.Series {
		if b.Successes() < 0 || b.Errors() > b.Requests || b.Successes()+b.Errors()+b.Rejections() != b.Requests {
			t.Errorf("bucket %s: %d requests, %d successes, %d errors", b.Start, b.Requests, b.Successes(), b.Errors())
		}
	}
	hours, err := e.svc.KeyUsage(e.ctx, k.ID, service.UsageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []keyplane.UsageCounts{minutes.Totals, hours.Totals} {
		if c.Requests != 2 || c.Successes() != 1 || c.Errors() != 1 {
			t.Errorf("totals: %d requests, %d successes, %d errors; want 2, 1, 1", c.Requests, c.Successes(), c.Errors())
		}
	}
}
