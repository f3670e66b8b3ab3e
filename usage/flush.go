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
	clear(m.pending)
	clear(m.totals)
	return nil
}

// drain takes the counts of the shard's dirty cells and keys, resetting
// them, and drops cells and keys no longer in use.
func (sh *shard) drain(snaps []snapshot, totals map[string]*keyplane.KeyUsageTotal, current int64, now time.Time, idleAfter time.Duration) []snapshot {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for id, ks := range sh.keys {
		for k, c := range ks.cells {
			if !c.dirty {
				if c.minute < current {
					delete(ks.cells, k)
					if ks.last == c {
						ks.last = nil
					}
					if len(sh.free) < maxFreeCells {
						c.key = nil
						sh.free = append(sh.free, c)
					}
				}
				continue
			}
			s := snapshot{keyID: ks.keyID, accountID: ks.accountID, endpoint: c.endpoint, minute: c.minute, counts: c.counts}
			if c.samples > 0 {
				s.sketch = c.sketch.Copy()
				c.sketch.Clear()
				c.samples = 0
			}
			snaps = append(snaps, s)
			c.counts, c.dirty = keyplane.UsageCounts{}, false
		}
		if ks.requests > 0 || ks.lastUsed > ks.flushedLastUsed {
			t := totals[id]
			if t == nil {
				t = &keyplane.KeyUsageTotal{KeyID: ks.keyID, AccountID: ks.accountID}
				totals[id] = t
			}
			t.Requests += ks.requests
			if last := time.Unix(0, ks.lastUsed).UTC(); last.After(t.LastUsedAt) {
				t.LastUsedAt = last
			}
			ks.requests, ks.flushedLastUsed = 0, ks.lastUsed
		}
		switch {
		case ks.active:
			ks.active, ks.lastActive = false, now
		case len(ks.cells) == 0 && now.Sub(ks.lastActive) > idleAfter:
			delete(sh.keys, id)
			if sh.hot == ks {
				sh.hot = nil
			}
		}
	}
	return snaps
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
