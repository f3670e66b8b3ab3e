package webhooks_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/webhooks"
)

// BenchmarkDeliveries measures deliveries per second from the outbox to a
// local receiver answering 204 at once: claim, sign, POST, record the
// attempt. The store is the run's (KEYPLANE_TEST_STORE=postgres for
// PostgreSQL). Events are raised before the timer starts.
func BenchmarkDeliveries(b *testing.B) {
	var got atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	for _, endpoints := range []int{1, 8} {
		b.Run(fmt.Sprintf("endpoints=%d", endpoints), func(b *testing.B) {
			e := newEnv(b, func(c *webhooks.Config) { c.PollInterval = time.Hour })
			a := e.account(b)
			for range endpoints {
				e.endpoint(b, a.ID, rcv.URL)
			}
			// Raised in batches of 100 per transaction: the outbox's write
			// side is the change's cost, measured elsewhere.
			n := b.N
			for i := 0; i < n; i += 100 {
				var batch []*keyplane.WebhookEvent
				for j := i; j < min(i+100, n); j++ {
					batch = append(batch, webhooks.MustEvent("invoice.paid", a.ID, time.Now(), map[string]int{"n": j}))
				}
				if err := e.store.RaiseWebhookEvents(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			want := got.Load() + int64(n*endpoints)
			b.ResetTimer()
			start := time.Now()
			e.dispatcher.Wake()
			for got.Load() < want {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(n*endpoints)/time.Since(start).Seconds(), "deliveries/s")
		})
	}
}
