package usage_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/teststore"
)

// BenchmarkRecordVerification is the verify path's share of metering: one
// valid verification of a cached key and endpoint already counted this
// minute; the key is busy (it had a flush interval of a thousand), so that
// goroutines count in cells of their own.
func BenchmarkRecordVerification(b *testing.B) {
	m := newMeter(b, teststore.New(b))
	k := &keyplane.Key{ID: "key_01jd2x5y6z7a8b9c0d1e2f3g4h", AccountID: "acc_01jd2x5y6z7a8b9c0d1e2f3g4h"}
	at := t0.Add(time.Second)
	for range 1000 {
		m.RecordVerification(k, "GET /v1/things/{id}", at, keyplane.VerifyValid)
	}
	flush(b, m)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.RecordVerification(k, "GET /v1/things/{id}", at, keyplane.VerifyValid)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.RecordVerification(k, "GET /v1/things/{id}", at, keyplane.VerifyValid)
			}
		})
	})
}

// BenchmarkRecord is an event as the gateway and POST /v1/usage report
// them (a verification here), counted under the shard's lock.
func BenchmarkRecord(b *testing.B) {
	m := newMeter(b, teststore.New(b))
	ev := verification("key_01jd2x5y6z7a8b9c0d1e2f3g4h", "acc_01jd2x5y6z7a8b9c0d1e2f3g4h", "GET /v1/things/{id}", keyplane.VerifyValid, t0.Add(time.Second))
	m.Record(ev)
	b.ReportAllocs()
	for b.Loop() {
		m.Record(ev)
	}
}

// BenchmarkFlush is the background cost of metering: one flush of 1,000
// keys that each had verifications of one endpoint in the last interval
// (6,000 rows: minute, hour and day, for each key and its account, and the
// keys' totals), on the store the run selects.
func BenchmarkFlush(b *testing.B) {
	store := teststore.New(b)
	m := newMeter(b, store)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("key_%026d", i)
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for i, k := range keys {
			m.Record(verification(k, fmt.Sprint("acc_", i%50), "GET /v1/things/{id}", keyplane.VerifyValid, t0.Add(time.Second)))
		}
		b.StartTimer()
		flush(b, m)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(keys)), "µs/key")
}
