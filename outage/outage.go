package outage

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/keyplane/keyplane"
)

// Config tunes a Handler; zero values take the defaults.
type Config struct {
	// Probe asks the database whether it answers; nil ends an outage on quiet alone.
	Probe func(context.Context) error
	// Quiet is how long no unavailable error must be logged before the
	// outage can end (default 1 s).
	Quiet time.Duration
	// Every is how often the end is checked for (default 1 s).
	Every time.Duration
	// Remind is how often a long outage is logged again, with what was
	// counted so far (default 5 min): an outage whose end never comes must
	// not hide everything after it.
	Remind time.Duration
}

// Handler is a slog.Handler that folds the unavailable errors of an outage.
type Handler struct {
	next  slog.Handler
	state *state
}

// state is shared by a Handler and the handlers WithAttrs and WithGroup derive.
type state struct {
	base slog.Handler // where the end of an outage is logged
	cfg  Config

	mu     sync.Mutex
	down   bool
	since  time.Time
	last   time.Time
	counts map[string]int // suppressed records by message
}

// NewHandler returns a Handler in front of next.
func NewHandler(next slog.Handler, cfg Config) *Handler {
	if cfg.Quiet <= 0 {
		cfg.Quiet = time.Second
	}
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	if cfg.Remind <= 0 {
		cfg.Remind = 5 * time.Minute
	}
	return &Handler{next: next, state: &state{base: next, cfg: cfg}}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(attrs), state: h.state}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), state: h.state}
}

// Handle logs r, unless it is one more unavailable error of an outage
// already logged.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if !unavailable(r) {
		return h.next.Handle(ctx, r)
	}
	s := h.state
	s.mu.Lock()
	s.last = r.Time
	if s.down {
		s.counts[r.Message]++
		s.mu.Unlock()
		return nil
	}
	s.down, s.since, s.counts = true, r.Time, map[string]int{}
	s.mu.Unlock()
	go s.watch()
	r = r.Clone()
	r.AddAttrs(slog.String("outage", "started: errors like this one are counted, not logged, until it ends"))
	return h.next.Handle(ctx, r)
}

// unavailable reports whether r carries an error that says a dependency is
// unavailable.
func unavailable(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && a.Value.Kind() == slog.KindAny {
			var e *keyplane.Error
			found = errors.As(err, &e) && keyplane.ErrorCode(err) == keyplane.EUNAVAILABLE
		}
		return !found
	})
	return found
}

// watch waits for the end of the outage: no unavailable error for Quiet and
// the database answering. Then it logs the end once. Meanwhile it logs a
// reminder with the counts every Remind.
func (s *state) watch() {
	t := time.NewTicker(s.cfg.Every)
	defer t.Stop()
	reminded := time.Now()
	for range t.C {
		s.mu.Lock()
		quiet := time.Since(s.last) >= s.cfg.Quiet
		s.mu.Unlock()
		if !quiet || !s.answers() {
			if time.Since(reminded) >= s.cfg.Remind {
				reminded = time.Now()
				s.mu.Lock()
				since, counts := s.since, maps.Clone(s.counts)
				s.mu.Unlock()
				s.log(slog.LevelWarn, "outage goes on: unavailable errors are still being counted", since, counts)
			}
			continue
		}
		s.mu.Lock()
		if time.Since(s.last) < s.cfg.Quiet { // an error came while probing
			s.mu.Unlock()
			continue
		}
		since, counts := s.since, s.counts
		s.down, s.counts = false, nil
		s.mu.Unlock()
		s.log(slog.LevelInfo, "outage over: no unavailable errors for a while, and the database answers", since, counts)
		return
	}
}

// log writes a line about the outage since since, with the errors counted.
func (s *state) log(level slog.Level, msg string, since time.Time, counts map[string]int) {
	total := 0
	var byMessage []any
	for msg, n := range counts {
		total += n
		byMessage = append(byMessage, slog.Int(msg, n))
	}
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.Add(slog.Duration("lasted", time.Since(since).Round(time.Millisecond)), slog.Int("errors_not_logged", total), slog.Group("by_message", byMessage...))
	s.base.Handle(context.Background(), r)
}

func (s *state) answers() bool {
	if s.cfg.Probe == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.cfg.Probe(ctx) == nil
}
