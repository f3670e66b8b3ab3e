package usage_test

import (
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/teststore"
)

// BenchmarkRecord is the verify path's share of metering: one verification
// of a key and endpoint already counted this minute.
func BenchmarkRecord(b *testing.B) {
	m := newMeter(b, teststore.New(b))
	ev := verification("key_01jd2x5y6z7a8b9c0d1e2f3g4h", "acc_01jd2x5y6z7a8b9c0d1e2f3g4h", "GET /v1/things/{id}", keyplane.VerifyValid, t0.Add(time.Second))
	m.Record(ev)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.Record(ev)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.Record(ev)
			}
		})
	})
}
