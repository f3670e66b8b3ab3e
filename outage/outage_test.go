package outage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/outage"
)

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

var errDown = fmt.Errorf("load: %w", &keyplane.Error{Code: keyplane.EUNAVAILABLE, Message: "the database is unavailable"})

func TestOutageIsTwoLines(t *testing.T) {
	var out lockedBuffer
	var dbUp atomic.Bool
	log := slog.New(outage.NewHandler(slog.NewTextHandler(&out, nil), outage.Config{
		Probe: func(context.Context) error {
			if dbUp.Load() {
				return nil
			}
			return errors.New("down")
		},
		Quiet: 50 * time.Millisecond, Every: 10 * time.Millisecond, Remind: time.Hour,
	}))
	reqLog := log.With("component", "http") // derived loggers share the outage
	for i := range 2500 {
		if i%2 == 0 {
			reqLog.Error("request failed", "error", errDown)
		} else {
			log.Warn("cache: refresh failed", "error", errDown)
		}
	}
	log.Error("request failed", "error", errors.New("a bug")) // not an outage: logged
	log.Info("unrelated")
	time.Sleep(200 * time.Millisecond) // quiet, but the database still does not answer
	if strings.Contains(out.String(), "outage over") {
		t.Fatal("the outage ended while the database did not answer")
	}
	dbUp.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "outage over") {
		if time.Now().After(deadline) {
			t.Fatalf("no end of the outage logged:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4 (start, the bug, unrelated, end):\n%s", len(lines), out.String())
	}
	if !strings.Contains(lines[0], "request failed") || !strings.Contains(lines[0], "outage=") || !strings.Contains(lines[0], "component=http") {
		t.Errorf("first line: %s", lines[0])
	}
	end := lines[3]
	for _, want := range []string{"errors_not_logged=2499", `"by_message.request failed"=1249`, `"by_message.cache: refresh failed"=1250`} {
		if !strings.Contains(end, want) {
			t.Errorf("end line lacks %s: %s", want, end)
		}
	}

	// A second outage is logged again.
	dbUp.Store(false)
	log.Error("request failed", "error", errDown)
	if n := strings.Count(out.String(), `outage="started`); n != 2 {
		t.Fatalf("%d outage starts logged, want 2", n)
	}
}

// An outage whose end does not come is logged again now and then, with the
// counts so far, so it cannot silently swallow what follows.
func TestLongOutageIsRemindedOf(t *testing.T) {
	var out lockedBuffer
	log := slog.New(outage.NewHandler(slog.NewTextHandler(&out, nil), outage.Config{
		Probe: func(context.Context) error { return errors.New("down") },
		Every: 10 * time.Millisecond, Remind: 50 * time.Millisecond,
	}))
	for range 3 {
		log.Error("request failed", "error", errDown)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "outage goes on") {
		if time.Now().After(deadline) {
			t.Fatalf("no reminder of a long outage:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "errors_not_logged=2") {
		t.Fatalf("the reminder lacks the counts:\n%s", out.String())
	}
}
