package httpapi_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func (h *harness) flushUsage() {
	h.t.Helper()
	if err := h.meter.Flush(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

func TestUsageOverHTTP(t *testing.T) {
	h := newHarness(t)
	acc := h.account("data:*")
	k := h.key(acc, map[string]any{"scopes": []string{"data:read"}})
	keyID := k["id"].(string)
	for range 3 {
		h.verifyKey(k["key"].(string), map[string]any{"endpoint": "GET /a"})
	}
	h.verifyKey(k["key"].(string), map[string]any{"endpoint": "POST /b", "scope": "data:write"})
	// The API reports what its upstream answered to two of the verified requests.
	r := h.want(h.do(h.verify, "POST", "/v1/usage", map[string]any{"events": []map[string]any{
		{"key_id": keyID, "endpoint": "GET /a", "status": 200, "latency_ms": 10},
		{"key_id": keyID, "endpoint": "GET /a", "status": 503, "latency_ms": 30.5, "time": time.Now().UTC().Format(time.RFC3339)},
	}}), 202)
	if r["accepted"] != 2.0 {
		t.Fatalf("accepted = %v", r["accepted"])
	}
	h.flushUsage()

	check := func(what string, rep map[string]any) {
		t.Helper()
		tot := rep["totals"].(map[string]any)
		rej := tot["rejections"].(map[string]any)
		lat := tot["latency_ms"].(map[string]any)
		if tot["requests"] != 4.0 || tot["successes"] != 2.0 || tot["errors"] != 1.0 || tot["rejected"] != 1.0 ||
			rej["INSUFFICIENT_SCOPE"] != 1.0 || tot["error_rate"] != 0.25 || lat["count"] != 2.0 {
			t.Fatalf("%s totals: %v", what, tot)
		}
		// Of two latencies, the sketch's rank for p50 (and p95, p99) is the lower.
		if p50 := lat["p50"].(float64); p50 < 10*0.99 || p50 > 10*1.01 {
			t.Fatalf("%s p50 = %v, want 10 within 1 %%", what, p50)
		}
		var sum float64
		for _, b := range rep["series"].([]any) {
			sum += b.(map[string]any)["requests"].(float64)
		}
		top := rep["top_endpoints"].([]any)
		if sum != 4 || len(top) != 2 || top[0].(map[string]any)["endpoint"] != "GET /a" || top[0].(map[string]any)["requests"] != 3.0 {
			t.Fatalf("%s: series sums to %v; top endpoints %v", what, sum, top)
		}
	}
	check("key", h.want(h.admin_("GET", "/v1/keys/"+keyID+"/usage?granularity=minute", nil), 200))
	check("account", h.want(h.admin_("GET", "/v1/accounts/"+acc+"/usage", nil), 200))
	rep := h.want(h.admin_("GET", "/v1/accounts/"+acc+"/usage?granularity=day", nil), 200)
	if rep["subject_id"] != acc || rep["granularity"] != "day" || len(rep["series"].([]any)) != 31 {
		t.Fatalf("30 days by day: %s %s, %d buckets", rep["subject_id"], rep["granularity"], len(rep["series"].([]any)))
	}

	// The key shows its total and last use.
	got := h.want(h.admin_("GET", "/v1/keys/"+keyID, nil), 200)
	if got["total_requests"] != 4.0 || got["last_used_at"] == nil {
		t.Fatalf("key: total_requests %v, last_used_at %v", got["total_requests"], got["last_used_at"])
	}

	// CSV, by query or by Accept.
	for _, tc := range []struct{ query, accept string }{{"?format=csv&granularity=minute", ""}, {"?granularity=minute", "text/csv"}} {
		req, _ := http.NewRequest("GET", h.url+"/v1/keys/"+keyID+"/usage"+tc.query, nil)
		req.Header.Set("Authorization", "Bearer "+h.admin)
		if tc.accept != "" {
			req.Header.Set("Accept", tc.accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
			!strings.Contains(resp.Header.Get("Content-Disposition"), keyID) {
			t.Fatalf("csv %v: %d %s %s", tc, resp.StatusCode, resp.Header, body)
		}
		rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		head := rows[0]
		if head[0] != "subject_id" || head[2] != "bucket_start" || head[3] != "requests" || !slices.Contains(head, "rejected_insufficient_scope") || head[len(head)-1] != "p99_ms" {
			t.Fatalf("csv header: %v", head)
		}
		var requests, errors int
		for _, row := range rows[1:] {
			if len(row) != len(head) || row[0] != keyID || row[1] != "minute" {
				t.Fatalf("csv row: %v", row)
			}
			n, _ := strconv.Atoi(row[3])
			e, _ := strconv.Atoi(row[5])
			requests, errors = requests+n, errors+e
		}
		if requests != 4 || errors != 1 || len(rows) < 61 {
			t.Fatalf("csv: %d requests, %d errors in %d rows", requests, errors, len(rows)-1)
		}
	}

	// Verify tokens report, but do not read analytics; unknown ids are 404s.
	if r := h.do(h.verify, "GET", "/v1/keys/"+keyID+"/usage", nil); r.status != 403 {
		t.Fatalf("verify token reading usage: %d", r.status)
	}
	h.want(h.admin_("POST", "/v1/usage", map[string]any{"events": []map[string]any{{"key_id": keyID, "status": 200}}}), 202)
	for _, path := range []string{"/v1/keys/key_01jd2x5y6z7a8b9c0d1e2f3g4h/usage", "/v1/accounts/acc_01jd2x5y6z7a8b9c0d1e2f3g4h/usage"} {
		if r := h.admin_("GET", path, nil); r.status != 404 {
			t.Fatalf("%s: %d", path, r.status)
		}
	}
}

// Ranges at the ends of what RFC 3339 writes are reports like any other.
func TestUsageRangeEdges(t *testing.T) {
	h := newHarness(t)
	acc := h.account()
	usagePath := "/v1/keys/" + h.key(acc, nil)["id"].(string) + "/usage"
	for _, tc := range []struct {
		query, from, to string
		buckets         int
	}{
		// Given as the zero instant, from is that bound, not the default.
		{"?granularity=day&from=0001-01-01T00:00:00Z&to=0001-01-02T00:00:00Z", "0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z", 1},
		{"?granularity=hour&from=0001-01-01T00:00:00Z&to=0001-01-01T00:00:01Z", "0001-01-01T00:00:00Z", "0001-01-01T01:00:00Z", 1},
		{"?granularity=minute&from=0000-01-01T00:00:00Z&to=0000-01-01T00:01:00Z", "0000-01-01T00:00:00Z", "0000-01-01T00:01:00Z", 1},
		// The default from stops at the first instant RFC 3339 writes.
		{"?granularity=hour&to=0000-01-01T02:00:00Z", "0000-01-01T00:00:00Z", "0000-01-01T02:00:00Z", 2},
		{"?granularity=day&from=9999-12-30T12:00:00Z&to=9999-12-31T00:00:00Z", "9999-12-30T00:00:00Z", "9999-12-31T00:00:00Z", 1},
		{"?granularity=hour&from=9999-12-31T22:00:00Z&to=9999-12-31T23:00:00Z", "9999-12-31T22:00:00Z", "9999-12-31T23:00:00Z", 1},
		{"?granularity=minute&from=9999-12-31T23:00:00Z&to=9999-12-31T23:59:00Z", "9999-12-31T23:00:00Z", "9999-12-31T23:59:00Z", 59},
	} {
		rep := h.want(h.admin_("GET", usagePath+tc.query, nil), 200)
		if rep["from"] != tc.from || rep["to"] != tc.to || len(rep["series"].([]any)) != tc.buckets {
			t.Errorf("%s: %v to %v in %d buckets, want %s to %s in %d", tc.query, rep["from"], rep["to"], len(rep["series"].([]any)), tc.from, tc.to, tc.buckets)
		}
		if r := h.admin_("GET", usagePath+tc.query+"&format=csv", nil); r.status != 200 {
			t.Errorf("%s as CSV: %d %.300s", tc.query, r.status, r.body)
		}
	}
}

func TestUsageBadInput(t *testing.T) {
	h := newHarness(t)
	acc := h.account()
	k := h.key(acc, nil)
	keyID := k["id"].(string)
	event := func(overrides map[string]any) map[string]any {
		e := map[string]any{"key_id": keyID, "endpoint": "GET /x", "status": 200}
		for name, v := range overrides {
			if v == nil {
				delete(e, name)
			} else {
				e[name] = v
			}
		}
		return map[string]any{"events": []any{e}}
	}
	many := make([]any, 1001)
	for i := range many {
		many[i] = map[string]any{"key_id": keyID, "status": 200}
	}
	now := time.Now().UTC()
	usagePath := "/v1/keys/" + keyID + "/usage"
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		field              string
	}{
		{"no events", "POST", "/v1/usage", `{}`, 400, "events"},
		{"empty events", "POST", "/v1/usage", map[string]any{"events": []any{}}, 400, "events"},
		{"over 1000 events", "POST", "/v1/usage", map[string]any{"events": many}, 400, "events"},
		{"status too low", "POST", "/v1/usage", event(map[string]any{"status": 99}), 400, "events[0].status"},
		{"status too high", "POST", "/v1/usage", event(map[string]any{"status": 600}), 400, "events[0].status"},
		{"status missing", "POST", "/v1/usage", event(map[string]any{"status": nil}), 400, "required property status"},
		{"status as text", "POST", "/v1/usage", event(map[string]any{"status": "200"}), 400, "events[0].status"},
		{"negative latency", "POST", "/v1/usage", event(map[string]any{"latency_ms": -1}), 400, "events[0].latency_ms"},
		{"latency over an hour", "POST", "/v1/usage", event(map[string]any{"latency_ms": 3600001}), 400, "events[0].latency_ms"},
		{"unknown key", "POST", "/v1/usage", event(map[string]any{"key_id": "key_01jd2x5y6z7a8b9c0d1e2f3g4h"}), 400, "events[0].key_id"},
		{"not a key id", "POST", "/v1/usage", event(map[string]any{"key_id": "kp_live_zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17"}), 400, "events[0].key_id"},
		{"key id missing", "POST", "/v1/usage", event(map[string]any{"key_id": nil}), 400, "required property key_id"},
		{"endpoint too long", "POST", "/v1/usage", event(map[string]any{"endpoint": strings.Repeat("e", 201)}), 400, "events[0].endpoint"},
		{"endpoint with NUL", "POST", "/v1/usage", event(map[string]any{"endpoint": "GET /\u0000"}), 400, "events[0].endpoint"},
		{"time too old", "POST", "/v1/usage", event(map[string]any{"time": now.Add(-25 * time.Hour).Format(time.RFC3339)}), 400, "events[0].time"},
		{"time in the future", "POST", "/v1/usage", event(map[string]any{"time": now.Add(time.Hour).Format(time.RFC3339)}), 400, "events[0].time"},
		{"bad time", "POST", "/v1/usage", event(map[string]any{"time": "yesterday"}), 400, "events[0].time"},
		{"unknown field", "POST", "/v1/usage", event(map[string]any{"colour": "red"}), 400, "events[0].colour"},
		{"body over 512 KiB", "POST", "/v1/usage", `{"events": [{"key_id": "` + strings.Repeat("a", 600<<10) + `"}]}`, 413, ""},
		{"one bad event of two", "POST", "/v1/usage", map[string]any{"events": []any{
			map[string]any{"key_id": keyID, "status": 200}, map[string]any{"key_id": keyID, "status": 700}}}, 400, "events[1].status"},
		{"unknown granularity", "GET", usagePath + "?granularity=week", nil, 400, "granularity"},
		{"bad from", "GET", usagePath + "?from=yesterday", nil, 400, "from"},
		{"from after to", "GET", usagePath + "?from=" + now.Format(time.RFC3339) + "&to=" + now.Add(-time.Hour).Format(time.RFC3339), nil, 400, "from"},
		{"too many minutes", "GET", usagePath + "?granularity=minute&from=" + now.Add(-48*time.Hour).Format(time.RFC3339), nil, 400, "to"},
		{"too many hours", "GET", usagePath + "?granularity=hour&from=" + now.Add(-40*24*time.Hour).Format(time.RFC3339), nil, 400, "to"},
		// Reports are bounded to what RFC 3339 writes, years 0000 to 9999:
		// the range rounded to whole buckets must fit, and offsets count.
		{"to rounds up past year 9999", "GET", usagePath + "?granularity=day&from=9999-12-01T00:00:00Z&to=9999-12-31T23:59:59Z", nil, 400, "to"},
		{"to rounds up past year 9999 by the hour", "GET", usagePath + "?to=9999-12-31T23:30:00Z", nil, 400, "to"},
		{"to rounds up past year 9999 by the minute", "GET", usagePath + "?granularity=minute&from=9999-12-31T23:00:00Z&to=9999-12-31T23:59:30Z", nil, 400, "to"},
		{"to past year 9999 by its offset", "GET", usagePath + "?granularity=day&to=9999-12-31T23:00:00-01:00", nil, 400, "to"},
		{"from before year 0000 by its offset", "GET", usagePath + "?granularity=day&from=0000-01-01T00:00:00%2B01:00&to=0000-01-02T00:00:00Z", nil, 400, "from"},
		{"to leaves no room before year 0000", "GET", usagePath + "?to=0000-01-01T00:00:00Z", nil, 400, "to"},
		{"account usage past year 9999", "GET", "/v1/accounts/" + acc + "/usage?granularity=day&from=9999-12-01T00:00:00Z&to=9999-12-31T23:59:59Z", nil, 400, "to"},
		// The zero instant is a bound like any other, not "absent": from
		// year 1 to now is too long a range.
		{"from the zero instant", "GET", usagePath + "?from=0001-01-01T00:00:00Z", nil, 400, "to"},
		{"unknown format", "GET", usagePath + "?format=xml", nil, 400, "format"},
		{"unknown parameter", "GET", usagePath + "?colour=red", nil, 400, "colour"},
		{"unknown key", "GET", "/v1/keys/key_nope/usage", nil, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.admin_(tc.method, tc.path, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %.300s", r.status, tc.status, r.body)
			}
			p := assertProblem(t, r)
			if tc.field != "" && !strings.Contains(fmt.Sprint(p["errors"])+fmt.Sprint(p["detail"]), tc.field) {
				t.Fatalf("problem does not name %q: %.300s", tc.field, r.body)
			}
		})
	}
	// Nothing of the refused batches was recorded.
	h.flushUsage()
	rep := h.want(h.admin_("GET", usagePath, nil), 200)
	if tot := rep["totals"].(map[string]any); tot["successes"] != 0.0 || tot["errors"] != 0.0 || tot["latency_ms"].(map[string]any)["count"] != 0.0 {
		t.Fatalf("refused batches were recorded: %v", tot)
	}
}

// Outcomes reported of requests keyplane never verified cannot make any
// count negative: they are stored apart from verifications, and errors
// count at most the requests let through (issue #14: 1,000 503s for a key
// without verifications read as successes: -1000).
func TestReportedOutcomesNeverGoNegative(t *testing.T) {
	h := newHarness(t)
	accU, accV := h.account(), h.account()
	unverified, verified := h.key(accU, nil), h.key(accV, nil)
	events := make([]map[string]any, 1000)
	for i := range events {
		events[i] = map[string]any{"key_id": unverified["id"], "endpoint": "GET /a", "status": 503, "latency_ms": 5}
	}
	h.want(h.do(h.verify, "POST", "/v1/usage", map[string]any{"events": events}), 202)
	for range 3 {
		h.verifyKey(verified["key"].(string), map[string]any{"endpoint": "GET /a"})
	}
	h.want(h.do(h.verify, "POST", "/v1/usage", map[string]any{"events": []map[string]any{
		{"key_id": verified["id"], "endpoint": "GET /a", "status": 503}}}), 202)
	h.flushUsage()

	counts := func(what string, c map[string]any) (requests, successes, errors float64) {
		t.Helper()
		requests, successes, errors = c["requests"].(float64), c["successes"].(float64), c["errors"].(float64)
		if successes < 0 || errors < 0 || requests != successes+errors+c["rejected"].(float64) || c["error_rate"].(float64) > 1 {
			t.Errorf("%s: %v", what, c)
		}
		return
	}
	check := func(path string, wantRequests, wantSuccesses, wantErrors float64) {
		t.Helper()
		for _, g := range []string{"minute", "hour", "day"} {
			rep := h.want(h.admin_("GET", path+"?granularity="+g, nil), 200)
			if r, s, e := counts(path+" totals", rep["totals"].(map[string]any)); r != wantRequests || s != wantSuccesses || e != wantErrors {
				t.Errorf("%s by %s: %v requests, %v successes, %v errors; want %v, %v, %v", path, g, r, s, e, wantRequests, wantSuccesses, wantErrors)
			}
			for _, b := range rep["series"].([]any) {
				counts(path+" bucket", b.(map[string]any))
			}
			for _, e := range rep["top_endpoints"].([]any) {
				counts(path+" endpoint", e.(map[string]any))
			}
			// The latencies reported count, verified or not.
			if n := rep["totals"].(map[string]any)["latency_ms"].(map[string]any)["count"]; path == "/v1/keys/"+unverified["id"].(string)+"/usage" && n != 1000.0 {
				t.Errorf("%s by %s: %v latencies, want 1000", path, g, n)
			}
		}
	}
	check("/v1/keys/"+unverified["id"].(string)+"/usage", 0, 0, 0)
	check("/v1/keys/"+verified["id"].(string)+"/usage", 3, 2, 1)
	check("/v1/accounts/"+accU+"/usage", 0, 0, 0)
	check("/v1/accounts/"+accV+"/usage", 3, 2, 1)
	if got := h.want(h.admin_("GET", "/v1/keys/"+unverified["id"].(string), nil), 200); got["total_requests"] != 0.0 {
		t.Errorf("total_requests = %v", got["total_requests"])
	}
}
