package postgres

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyplane/keyplane"
)

const auditColumns = `id, account_id, seq, time, type, actor_kind, actor_id, key_id, source_ip, user_agent, request_id, details, prev_hash, hash`

func scanAuditEvent(row pgx.Row) (*keyplane.AuditEvent, error) {
	var e keyplane.AuditEvent
	var t time.Time
	var details string
	err := row.Scan(&e.ID, &e.AccountID, &e.Seq, &t, &e.Type, &e.Actor.Kind, &e.Actor.ID, &e.KeyID, &e.SourceIP, &e.UserAgent,
		&e.RequestID, &details, &e.PrevHash, &e.Hash)
	if err != nil {
		return nil, err
	}
	e.Time, e.Details = utc(t), []byte(details)
	return &e, nil
}

// appendAudit seals events onto their chains and inserts them. Each chain's
// head row is locked (FOR UPDATE) until commit, so transactions of other
// instances appending to the same chain wait for this one and build on its
// head: a chain never forks. Heads are locked in one order, so two
// transactions appending to the same chains cannot deadlock.
func appendAudit(ctx context.Context, tx pgx.Tx, events []*keyplane.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	var chains []string
	for _, ev := range events {
		if !slices.Contains(chains, ev.AccountID) {
			chains = append(chains, ev.AccountID)
		}
	}
	slices.Sort(chains)
	heads := make(map[string]keyplane.AuditChainHead, len(chains))
	for _, chain := range chains {
		// A first event creates the head; a concurrent creator waits on the
		// unique index, then finds the row and locks it below.
		if _, err := tx.Exec(ctx, `INSERT INTO audit_chains (chain, seq, head_hash) VALUES ($1, 0, '') ON CONFLICT (chain) DO NOTHING`, chain); err != nil {
			return translate(err)
		}
		head := keyplane.AuditChainHead{Chain: chain}
		if err := tx.QueryRow(ctx, `SELECT seq, head_hash FROM audit_chains WHERE chain = $1 FOR UPDATE`, chain).Scan(&head.Seq, &head.Hash); err != nil {
			return translate(err)
		}
		heads[chain] = head
	}
	batch := &pgx.Batch{}
	for _, ev := range events {
		head := heads[ev.AccountID]
		ev.Seal(head)
		batch.Queue(`INSERT INTO audit_events (`+auditColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			ev.ID, ev.AccountID, ev.Seq, ev.Time, ev.Type, ev.Actor.Kind, ev.Actor.ID, ev.KeyID, ev.SourceIP, ev.UserAgent,
			ev.RequestID, string(ev.Details), ev.PrevHash, ev.Hash)
		head.Seq, head.Hash = ev.Seq, ev.Hash
		heads[ev.AccountID] = head
	}
	for _, chain := range chains {
		head := heads[chain]
		batch.Queue(`UPDATE audit_chains SET seq = $2, head_hash = $3 WHERE chain = $1`, chain, head.Seq, head.Hash)
	}
	return translate(tx.SendBatch(ctx, batch).Close())
}

// AppendAudit appends events in a transaction of their own.
func (db *DB) AppendAudit(ctx context.Context, events []*keyplane.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	return db.inTx(ctx, func(tx pgx.Tx) error { return appendAudit(ctx, tx, events) })
}

// ListAudit returns events newest first.
func (db *DB) ListAudit(ctx context.Context, f keyplane.AuditFilter) ([]*keyplane.AuditEvent, string, error) {
	after, err := keyplane.DecodeCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	where := []string{"TRUE"}
	var args []any
	cond := func(c string, v any) {
		args = append(args, v)
		where = append(where, c+" $"+strconv.Itoa(len(args)))
	}
	if after != "" {
		cond("id <", after)
	}
	if f.AccountID != "" {
		cond("account_id =", f.AccountID)
	}
	if f.KeyID != "" {
		cond("key_id =", f.KeyID)
	}
	if f.Type != "" {
		cond("type =", f.Type)
	}
	if f.ActorID != "" {
		cond("actor_id =", f.ActorID)
	}
	if !f.From.IsZero() {
		cond("time >=", f.From)
	}
	if !f.To.IsZero() {
		cond("time <", f.To)
	}
	args = append(args, f.Limit+1)
	rows, err := db.pool.Query(ctx, `SELECT `+auditColumns+` FROM audit_events WHERE `+strings.Join(where, " AND ")+
		` ORDER BY id DESC LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, "", translate(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*keyplane.AuditEvent, error) { return scanAuditEvent(row) })
	if err != nil {
		return nil, "", translate(err)
	}
	out, next := cut(out, f.Limit, func(e *keyplane.AuditEvent) string { return e.ID })
	return out, next, nil
}

// AuditChains returns every chain head, and a Missing one for chains whose
// events have no head row.
func (db *DB) AuditChains(ctx context.Context) ([]keyplane.AuditChainHead, error) {
	rows, err := db.pool.Query(ctx, `SELECT chain, seq, head_hash, false FROM audit_chains
		UNION ALL SELECT DISTINCT account_id, 0, '', true FROM audit_events e
		WHERE NOT EXISTS (SELECT 1 FROM audit_chains c WHERE c.chain = e.account_id)`)
	if err != nil {
		return nil, translate(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (keyplane.AuditChainHead, error) {
		var h keyplane.AuditChainHead
		err := row.Scan(&h.Chain, &h.Seq, &h.Hash, &h.Missing)
		return h, err
	})
	return out, translate(err)
}

// AuditChain returns a chain's events after afterSeq, in order.
func (db *DB) AuditChain(ctx context.Context, chain string, afterSeq int64, limit int) ([]*keyplane.AuditEvent, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+auditColumns+` FROM audit_events WHERE account_id = $1 AND seq > $2 ORDER BY seq, id LIMIT $3`,
		chain, afterSeq, limit)
	if err != nil {
		return nil, translate(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*keyplane.AuditEvent, error) { return scanAuditEvent(row) })
	return out, translate(err)
}
