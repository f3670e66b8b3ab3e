package periodic

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A failing flush is logged and tried again at the next tick, each call has
// its deadline, and closing stop ends the loop.
func TestFlushRetriesAndStops(t *testing.T) {
	var calls atomic.Int64
	var logs syncBuffer
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		Flush(5*time.Millisecond, time.Second, stop, func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("flush without a deadline")
			}
			if calls.Add(1) == 1 {
				return errors.New("store down")
			}
			return nil
		}, slog.New(slog.NewTextHandler(&logs, nil)), "counts not written")
	}()
	for calls.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Flush did not return after stop was closed")
	}
	if got := logs.String(); strings.Count(got, "counts not written") != 1 || !strings.Contains(got, "store down") {
		t.Fatalf("log: %q", got)
	}
}
