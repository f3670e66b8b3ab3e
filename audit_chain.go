package keyplane

import (
	"context"
	"fmt"
	"sort"
)

// Why a chain fails verification.
const (
	AuditHashMismatch = "hash mismatch" // the event was edited after it was written
	AuditBrokenLink   = "broken link"   // its previous hash is not the hash of the event before it
	AuditGap          = "gap"           // sequence numbers are missing: events were deleted
	AuditReordered    = "reordered"     // it links to an event other than the one before it
	AuditTruncated    = "truncated"     // the chain ends before its head: the last events were deleted
	AuditMissingHead  = "missing head"  // events name a chain whose head row was deleted
)

// AuditProblem is the first thing wrong with one chain.
type AuditProblem struct {
	Chain   string // an account id, "" for the operator chain
	EventID string // the first bad event; for a truncated chain, its last event
	Seq     int64
	Reason  string // one of the Audit* reasons above
	Detail  string
}

func (p AuditProblem) String() string {
	chain := p.Chain
	if chain == "" {
		chain = "operator"
	}
	return fmt.Sprintf("chain %s: event %s (seq %d): %s: %s", chain, p.EventID, p.Seq, p.Reason, p.Detail)
}

// AuditReport is the outcome of verifying the whole log.
type AuditReport struct {
	Chains, Events int64
	// Problems has the first problem of each broken chain, in chain order.
	Problems []AuditProblem
}

// auditPageSize is how many events the chain check reads at a time.
const auditPageSize = 1000

// CheckAuditChains walks every chain from its first event to its head,
// recomputing each hash and checking each link and sequence number. It
// returns an error only when the store cannot be read; a broken chain is a
// problem in the report.
func CheckAuditChains(ctx context.Context, s AuditStore) (AuditReport, error) {
	var r AuditReport
	heads, err := s.AuditChains(ctx)
	if err != nil {
		return r, err
	}
	sort.Slice(heads, func(i, j int) bool { return heads[i].Chain < heads[j].Chain })
	for _, head := range heads {
		r.Chains++
		n, p, err := verifyAuditChain(ctx, s, head)
		r.Events += n
		if err != nil {
			return r, err
		}
		if p != nil {
			r.Problems = append(r.Problems, *p)
		}
	}
	return r, nil
}

// verifyAuditChain returns how many events it checked and the chain's first
// problem, if any.
func verifyAuditChain(ctx context.Context, s AuditStore, head AuditChainHead) (int64, *AuditProblem, error) {
	var checked int64
	prev := &AuditEvent{} // before the first event: seq 0, hash ""
	for {
		page, err := s.AuditChain(ctx, head.Chain, prev.Seq, auditPageSize)
		if err != nil {
			return checked, nil, err
		}
		for _, ev := range page {
			checked++
			if p, err := checkAuditLink(ctx, s, head.Chain, prev, ev); p != nil || err != nil {
				return checked, p, err
			}
			prev = ev
		}
		if len(page) < auditPageSize {
			break
		}
	}
	problem := func(reason, format string, args ...any) *AuditProblem {
		return &AuditProblem{Chain: head.Chain, EventID: prev.ID, Seq: prev.Seq, Reason: reason, Detail: fmt.Sprintf(format, args...)}
	}
	switch {
	case head.Missing:
		return checked, problem(AuditMissingHead, "the chain has events but its head row was deleted"), nil
	case prev.Seq < head.Seq:
		return checked, problem(AuditTruncated, "the head says the chain has %d events, the last %d were deleted", head.Seq, head.Seq-prev.Seq), nil
	case prev.Seq > head.Seq || prev.Hash != head.Hash:
		return checked, problem(AuditBrokenLink, "the chain's head (seq %d, hash %.12s…) does not match its last event", head.Seq, head.Hash), nil
	}
	return checked, nil, nil
}

// checkAuditLink checks ev, which follows prev in order of Seq. The link is
// checked before the hash: when a row was moved, "reordered" says more than
// the hash mismatch that renumbering it also causes.
func checkAuditLink(ctx context.Context, s AuditStore, chain string, prev, ev *AuditEvent) (*AuditProblem, error) {
	problem := func(reason, format string, args ...any) *AuditProblem {
		return &AuditProblem{Chain: chain, EventID: ev.ID, Seq: ev.Seq, Reason: reason, Detail: fmt.Sprintf(format, args...)}
	}
	if want := prev.Seq + 1; ev.Seq != want {
		if ev.Seq > want {
			return problem(AuditGap, "expected seq %d: %d event(s) before it were deleted", want, ev.Seq-want), nil
		}
		return problem(AuditReordered, "seq %d repeats or goes back after seq %d", ev.Seq, prev.Seq), nil
	}
	if ev.PrevHash != prev.Hash {
		linked, err := findAuditHash(ctx, s, chain, ev.PrevHash)
		if err != nil {
			return nil, err
		}
		if linked != nil && linked.ID != prev.ID {
			return problem(AuditReordered, "it was written after event %s (seq %d), but now follows event %s (seq %d)", linked.ID, linked.Seq, prev.ID, prev.Seq), nil
		}
		if prev.ID == "" {
			return problem(AuditBrokenLink, "the chain's first event must have no previous hash: events before it were deleted"), nil
		}
		return problem(AuditBrokenLink, "its previous hash does not match event %s (seq %d): that event was edited or replaced", prev.ID, prev.Seq), nil
	}
	if ev.ComputeHash() != ev.Hash {
		return problem(AuditHashMismatch, "the event was edited after it was written"), nil
	}
	return nil, nil
}

// findAuditHash finds the event of a chain whose stored hash is hash, by a
// second walk: it runs only once a chain is known to be broken.
func findAuditHash(ctx context.Context, s AuditStore, chain, hash string) (*AuditEvent, error) {
	if hash == "" {
		return nil, nil
	}
	var after int64
	for {
		page, err := s.AuditChain(ctx, chain, after, auditPageSize)
		if err != nil {
			return nil, err
		}
		for _, ev := range page {
			if ev.Hash == hash {
				return ev, nil
			}
		}
		if len(page) < auditPageSize {
			return nil, nil
		}
		after = page[len(page)-1].Seq
	}
}
