package verifyfailures

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/periodic"
	"github.com/oklog/ulid/v2"
)

// Defaults of Config.
const (
	DefaultFlushInterval   = 10 * time.Second
	DefaultMaxGroupsMinute = 1000
)

// Config tunes a Recorder; zero values take the defaults.
type Config struct {
	// FlushInterval is how often minutes that are over are written.
	FlushInterval time.Duration
	// MaxGroupsPerMinute caps the distinct (key, IP, code) groups, and so
	// the events, of one minute; further failures count in "other" groups.
	MaxGroupsPerMinute int
	Logger             *slog.Logger
	Now                func() time.Time // the clock; tests inject their own
}

// group is what one event counts.
type group struct {
	minute        int64 // Unix minutes
	code          keyplane.VerifyCode
	keyID         string
	accountID     string
	keyHashPrefix [4]byte
	ip            netip.Addr
	other         bool // the overflow group of its minute and code
}

// overflowGroups is how many "other" groups a minute can have: one per
// audited code (see keyplane.AuditedFailure).
const overflowGroups = 6

// Recorder implements keyplane.VerifyFailureRecorder.
type Recorder struct {
	store    keyplane.AuditStore
	interval time.Duration
	maxGroup int
	log      *slog.Logger
	now      func() time.Time

	mu       sync.Mutex
	counts   map[group]int64
	perMin   map[int64]int          // distinct groups of each minute held
	unsent   []*keyplane.AuditEvent // a failed write's events, retried first
	closed   bool
	stop     chan struct{}
	done     chan struct{}
	closeMu  sync.Mutex
	closeErr error
}

var _ keyplane.VerifyFailureRecorder = (*Recorder)(nil)

// New starts a Recorder that writes to store every cfg.FlushInterval until
// Close.
func New(store keyplane.AuditStore, cfg Config) *Recorder {
	r := &Recorder{store: store, interval: cfg.FlushInterval, maxGroup: cfg.MaxGroupsPerMinute, log: cfg.Logger, now: cfg.Now,
		counts: map[group]int64{}, perMin: map[int64]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	if r.interval <= 0 {
		r.interval = DefaultFlushInterval
	}
	if r.maxGroup <= 0 {
		r.maxGroup = DefaultMaxGroupsMinute
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.now == nil {
		r.now = time.Now
	}
	go r.run()
	return r
}

// VerifyFailed counts one failure. Counting a group already held neither
// allocates nor does I/O; a new group grows a map whose size is capped.
func (r *Recorder) VerifyFailed(f keyplane.VerifyFailure) {
	g := group{minute: f.Time.Unix() / 60, code: f.Code, keyID: f.KeyID, accountID: f.AccountID, keyHashPrefix: f.KeyHashPrefix, ip: f.IP}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, held := r.counts[g]; !held {
		if r.perMin[g.minute] >= r.maxGroup {
			g = group{minute: g.minute, code: g.code, other: true}
		} else {
			r.perMin[g.minute]++
		}
	}
	r.counts[g]++
}

func (r *Recorder) run() {
	defer close(r.done)
	flushOver := func(ctx context.Context) error { return r.Flush(ctx, false) }
	periodic.Flush(r.interval, r.interval, r.stop, flushOver, r.log, "failed verifications not written to the audit log; will retry")
}

// Flush writes the groups of minutes that are over, or of every minute when
// all is set (at shutdown).
func (r *Recorder) Flush(ctx context.Context, all bool) error {
	current := r.now().Unix() / 60
	r.mu.Lock()
	events := r.unsent
	r.unsent = nil
	var ready []group
	for g := range r.counts {
		if all || g.minute < current {
			ready = append(ready, g)
		}
	}
	// Oldest minute first, then a stable order, so chains read in time order.
	sort.Slice(ready, func(i, j int) bool { return less(ready[i], ready[j]) })
	for _, g := range ready {
		events = append(events, event(g, r.counts[g]))
		delete(r.counts, g)
		if !g.other {
			r.perMin[g.minute]--
		}
	}
	for m, n := range r.perMin {
		if n <= 0 {
			delete(r.perMin, m)
		}
	}
	r.mu.Unlock()
	if len(events) == 0 {
		return nil
	}
	if err := r.store.AppendAudit(ctx, events); err != nil {
		r.keepUnsent(events)
		return err
	}
	return nil
}

// keepUnsent holds a failed batch for the next flush, bounded: while the
// database stays down, the oldest events are dropped, and said so.
func (r *Recorder) keepUnsent(events []*keyplane.AuditEvent) {
	limit := 10 * (r.maxGroup + overflowGroups)
	r.mu.Lock()
	defer r.mu.Unlock()
	if drop := len(events) + len(r.unsent) - limit; drop > 0 {
		r.log.Error("failed verifications not written to the audit log: the database is unavailable", "events_dropped", drop)
		events = events[min(drop, len(events)):]
	}
	r.unsent = append(events, r.unsent...)
}

// Close stops the ticker and writes everything counted; call it after the
// server has stopped verifying.
func (r *Recorder) Close(ctx context.Context) error {
	r.closeMu.Lock()
	defer r.closeMu.Unlock()
	if r.closed {
		return r.closeErr
	}
	r.closed = true
	close(r.stop)
	<-r.done
	r.closeErr = r.Flush(ctx, true)
	return r.closeErr
}

func less(a, b group) bool {
	if a.minute != b.minute {
		return a.minute < b.minute
	}
	if a.other != b.other {
		return !a.other
	}
	if a.accountID != b.accountID {
		return a.accountID < b.accountID
	}
	if a.keyID != b.keyID {
		return a.keyID < b.keyID
	}
	if a.keyHashPrefix != b.keyHashPrefix {
		return string(a.keyHashPrefix[:]) < string(b.keyHashPrefix[:])
	}
	if a.ip != b.ip {
		return a.ip.Less(b.ip)
	}
	return a.code < b.code
}

// event is a group's verify.failed event: on its key's account chain, or
// the operator chain for keys that do not exist and for overflow.
func event(g group, count int64) *keyplane.AuditEvent {
	minute := time.Unix(g.minute*60, 0).UTC()
	details := map[string]any{"count": count, "code": g.code, "minute": minute}
	ev := &keyplane.AuditEvent{
		ID: "evt_" + strings.ToLower(ulid.Make().String()), Time: minute, Type: keyplane.AuditVerifyFailed,
		Actor: keyplane.AuditActor{Kind: "system", ID: "system"}, AccountID: g.accountID, KeyID: g.keyID,
	}
	switch {
	case g.other:
		details["other"] = true
	case g.keyID == "":
		details["key_hash_prefix"] = hex.EncodeToString(g.keyHashPrefix[:])
	}
	if g.ip.IsValid() {
		ev.SourceIP = g.ip.String()
	}
	ev.Details, _ = json.Marshal(details) // plain values: cannot fail
	return ev
}
