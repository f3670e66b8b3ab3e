package wrkbench

import (
	"bytes"
	"cmp"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"testing"
)

// Side is one server of a comparison: a name for its metric and wrk's
// arguments after its common ones (headers, a script, the URL).
type Side struct {
	Name string
	Args []string
}

var requestsPerSecond = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// Compare runs wrk (one thread, 32 connections) on baseline and candidate
// in alternating rounds and reports the median requests per second of
// each, "<name>-req/s", and the median ratio candidate/baseline: the
// machine's load drifts over a run, and both sides should see the same
// drift. KEYPLANE_BENCH_SECONDS sets each run's length (5),
// KEYPLANE_BENCH_ROUNDS the rounds (3). It skips b when wrk is missing,
// and fails it on an answer other than 2xx.
func Compare(b *testing.B, baseline, candidate Side) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Skip("wrk is not installed (apt-get install wrk)")
	}
	duration := cmp.Or(os.Getenv("KEYPLANE_BENCH_SECONDS"), "5")
	rounds := 3
	if n, err := strconv.Atoi(os.Getenv("KEYPLANE_BENCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	rps := func(s Side) float64 {
		out, err := exec.Command(wrk, append([]string{"-t1", "-c32", "-d" + duration + "s"}, s.Args...)...).CombinedOutput()
		if err != nil {
			b.Fatalf("wrk: %v\n%s", err, out)
		}
		m := requestsPerSecond.FindSubmatch(out)
		if m == nil || bytes.Contains(out, []byte("Non-2xx")) {
			b.Fatalf("wrk output: %s", out)
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	for range b.N {
		var xs, ys, ratios []float64
		for range rounds {
			x, y := rps(baseline), rps(candidate)
			xs, ys, ratios = append(xs, x), append(ys, y), append(ratios, y/x)
		}
		b.ReportMetric(median(xs), baseline.Name+"-req/s")
		b.ReportMetric(median(ys), candidate.Name+"-req/s")
		b.ReportMetric(median(ratios), "ratio")
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
