package usage

import (
	"context"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/keyplane/keyplane"
)

// rowKey names a stored row.
type rowKey struct {
	granularity keyplane.UsageGranularity
	subject     string
	endpoint    string
	start       int64 // Unix seconds
}

// pendingRow is a stored row's share of the counts not yet written.
type pendingRow struct {
	accountID string
	counts    keyplane.UsageCounts
	sketch    *ddsketch.DDSketch // nil when no latency was measured
}

// snapshot is what a flush took from one cell.
type snapshot struct {
	keyID, accountID, endpoint string
	minute                     int64
	counts                     keyplane.UsageCounts
	sketch                     *ddsketch.DDSketch
}

// Flush writes what was counted since the last flush: the minute, hour and
// day rows of each key and of its account, and the keys' totals, in one
// transaction. When the store fails, the counts stay pending and go with
// the next flush.
func (m *Meter) Flush(ctx context.Context) error {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	now := m.now()
	// Cells of minutes before this one are dropped once flushed; a late
	// event for one makes a new cell.
	current := keyplane.UsageMinute.BucketStart(now.Unix())
	var snaps []snapshot
	for i := range m.shards {
		snaps = m.shards[i].drain(snaps, m.totals, current, now, m.idleAfter)
	}
	m.clearDroppedSlots()
	for i := range snaps {
		m.addPending(&snaps[i])
	}
	if len(m.pending) == 0 && len(m.totals) == 0 {
		return nil
	}
	rows := make([]keyplane.UsageRow, 0, len(m.pending))
	for k, p := range m.pending {
		r := keyplane.UsageRow{Granularity: k.granularity, Subject: k.subject, AccountID: p.accountID, Endpoint: k.endpoint,
			BucketStart: time.Unix(k.start, 0).UTC(), UsageCounts: p.counts}
		if p.sketch != nil {
			r.Latency = encodeSketch(p.sketch)
		}
		rows = append(rows, r)
	}
	totals := make([]keyplane.KeyUsageTotal, 0, len(m.totals))
	for _, t := range m.totals {
		totals = append(totals, *t)
	}
	if err := m.store.AddUsage(ctx, rows, totals, MergeSketches); err != nil {
		return err
	}
	// A burst of keys leaves the maps large; clear keeps their size.
	if len(m.pending) > maxKeptPending {
		m.pending = map[rowKey]*pendingRow{}
	} else {
		clear(m.pending)
	}
	if len(m.totals) > maxKeptPending {
		m.totals = map[string]*keyplane.KeyUsageTotal{}
	} else {
		clear(m.totals)
	}
	return nil
}

// maxKeptPending is the most pending rows or totals whose maps a flush
// clears for reuse rather than replaces.
const maxKeptPending = 4096

// clearDroppedSlots empties the slots of Meter.hot that hold dropped cells:
// they would keep the cells, their keys and the keys' cached records in
// memory. A caller that read one before still counts right: it is sealed.
func (m *Meter) clearDroppedSlots() {
	for i := range m.hot {
		if c := m.hot[i].Load(); c != nil && c.dropped.Load() {
			m.hot[i].CompareAndSwap(c, nil)
		}
	}
}

// drain takes the counts of the shard's cells and keys, resetting them;
// it seals and drops the cells of minutes before current, and drops keys
// idle for longer than idleAfter. An endpoint of a key with wideAfter
// verifications in the interval gets a cell per stripe from then on.
func (sh *shard) drain(snaps []snapshot, totals map[string]*keyplane.KeyUsageTotal, current int64, now time.Time, idleAfter time.Duration) []snapshot {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for id, ks := range sh.keys {
		var requests int64
		var busyRequests map[string]int64 // per busy endpoint, to tell when it calms
		if len(ks.busy) > 0 {
			busyRequests = make(map[string]int64, len(ks.busy))
		}
		for k, c := range ks.cells {
			over := c.minute < current
			s := snapshot{keyID: ks.keyID, accountID: ks.accountID, endpoint: c.endpoint, minute: c.minute}
			c.take(&s.counts, over)
			if c.samples > 0 {
				s.sketch = c.sketch.Copy()
				c.sketch.Clear()
				c.samples = 0
			}
			// The one cell of an endpoint that just became busy is sealed
			// (with what was added since the take) and dropped, so that its
			// callers move to cells of their stripes.
			widen := !over && !ks.busy[c.endpoint] && s.counts.Requests >= wideAfter
			if widen {
				c.take(&s.counts, true)
				if ks.busy == nil {
					ks.busy = map[string]bool{}
				}
				ks.busy[c.endpoint] = true
			}
			if over || widen {
				sh.dropCell(ks, k, c)
			}
			if !s.counts.IsZero() || s.sketch != nil {
				snaps = append(snaps, s)
			}
			requests += s.counts.Requests
			if busyRequests != nil && ks.busy[c.endpoint] {
				busyRequests[c.endpoint] += s.counts.Requests
			}
		}
		for e, n := range busyRequests {
			if n < wideAfter/2 {
				delete(ks.busy, e) // calm again: its next cells are shared
			}
		}
		lastUsed := ks.lastUsed.Load()
		if requests > 0 || lastUsed > ks.flushedLastUsed {
			t := totals[id]
			if t == nil {
				t = &keyplane.KeyUsageTotal{KeyID: ks.keyID, AccountID: ks.accountID}
				totals[id] = t
			}
			t.Requests += requests
			if last := time.Unix(0, lastUsed).UTC(); last.After(t.LastUsedAt) {
				t.LastUsedAt = last
			}
			ks.flushedLastUsed = lastUsed
		}
		switch {
		case requests > 0 || ks.touched:
			ks.touched, ks.lastActive = false, now
		case len(ks.cells) == 0 && now.Sub(ks.lastActive) > idleAfter:
			delete(sh.keys, id) // its cells are dropped; Flush empties their slots
		}
	}
	return snaps
}

// take adds the cell's counts to into and resets them; with seal, it seals
// the counters, so that later adds do not count here (see cell).
func (c *cell) take(into *keyplane.UsageCounts, seal bool) {
	var reset int64
	if seal {
		reset = sealed
	}
	// A counter still zero needs no swap unless it is to be sealed.
	if v := c.counts.valid.Load(); v != 0 || seal {
		v = c.counts.valid.Swap(reset)
		into.Requests += v
		into.Valid += v
	}
	for j := range c.counts.rejected {
		if v := c.counts.rejected[j].Load(); v != 0 || seal {
			v = c.counts.rejected[j].Swap(reset)
			into.Requests += v
			into.Rejected[j] += v
		}
	}
	into.Requests += c.uncoded
	// Apart from the verifications: the request a 5xx answered may have
	// been counted elsewhere (another instance, an earlier minute), or not
	// at all.
	into.UpstreamErrors += c.errors
	c.uncoded, c.errors = 0, 0
}

// dropCell removes a sealed cell from its key, keeping its sketch for reuse.
// Slots of Meter.hot may still hold it until the flush empties them: the
// seal sends their callers to the lock, which puts a live cell there.
func (sh *shard) dropCell(ks *keyState, k cellKey, c *cell) {
	delete(ks.cells, k)
	c.dropped.Store(true)
	if c.sketch != nil && len(sh.freeSketches) < maxFreeSketches {
		sh.freeSketches = append(sh.freeSketches, c.sketch) // cleared by the drain
	}
	c.sketch = nil
}

// addPending adds a cell's counts to the six rows they belong to: the key's
// and the account's, at each granularity.
func (m *Meter) addPending(s *snapshot) {
	for _, g := range keyplane.UsageGranularities {
		start := g.BucketStart(s.minute)
		for _, subject := range [2]string{s.keyID, s.accountID} {
			if subject == "" {
				continue
			}
			k := rowKey{g, subject, s.endpoint, start}
			p := m.pending[k]
			if p == nil {
				p = &pendingRow{accountID: s.accountID}
				m.pending[k] = p
			}
			p.counts.Add(&s.counts)
			if s.sketch != nil {
				if p.sketch == nil {
					p.sketch = s.sketch.Copy()
				} else {
					p.sketch.MergeWith(s.sketch) // same mapping: cannot fail
				}
			}
		}
	}
}
