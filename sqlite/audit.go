package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/keyplane/keyplane"
)

const auditColumns = `id, account_id, seq, time, type, actor_kind, actor_id, key_id, source_ip, user_agent, request_id, details, prev_hash, hash`

func scanAuditEvent(row scanner) (*keyplane.AuditEvent, error) {
	var e keyplane.AuditEvent
	var t int64
	var details string
	err := row.Scan(&e.ID, &e.AccountID, &e.Seq, &t, &e.Type, &e.Actor.Kind, &e.Actor.ID, &e.KeyID, &e.SourceIP, &e.UserAgent,
		&e.RequestID, &details, &e.PrevHash, &e.Hash)
	if err != nil {
		return nil, err
	}
	e.Time, e.Details = fromMicros(t), []byte(details)
	return &e, nil
}

// appendAudit seals events onto their chains and inserts them. SQLite has
// one writer, so the chain heads cannot move under the transaction.
func appendAudit(ctx context.Context, tx *sql.Tx, events []*keyplane.AuditEvent) error {
	heads := map[string]keyplane.AuditChainHead{}
	for _, ev := range events {
		head, ok := heads[ev.AccountID]
		if !ok {
			head.Chain = ev.AccountID
			err := tx.QueryRowContext(ctx, `SELECT seq, head_hash FROM audit_chains WHERE chain = ?`, ev.AccountID).Scan(&head.Seq, &head.Hash)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return translate(err)
			}
		}
		ev.Seal(head)
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_events (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			ev.ID, ev.AccountID, ev.Seq, micros(ev.Time), ev.Type, ev.Actor.Kind, ev.Actor.ID, ev.KeyID, ev.SourceIP, ev.UserAgent,
			ev.RequestID, string(ev.Details), ev.PrevHash, ev.Hash)
		if err != nil {
			return translate(err)
		}
		head.Seq, head.Hash = ev.Seq, ev.Hash
		heads[ev.AccountID] = head
	}
	for _, head := range heads {
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_chains (chain, seq, head_hash) VALUES (?, ?, ?)
			ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, head_hash = excluded.head_hash`, head.Chain, head.Seq, head.Hash)
		if err != nil {
			return translate(err)
		}
	}
	return nil
}

// AppendAudit appends events in a transaction of their own.
func (db *DB) AppendAudit(ctx context.Context, events []*keyplane.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	return db.inTx(ctx, func(tx *sql.Tx) error { return appendAudit(ctx, tx, events) })
}

// ListAudit returns events newest first.
func (db *DB) ListAudit(ctx context.Context, f keyplane.AuditFilter) ([]*keyplane.AuditEvent, string, error) {
	after, err := keyplane.DecodeCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	where := []string{"1 = 1"}
	var args []any
	cond := func(c string, v any) { where, args = append(where, c), append(args, v) }
	if after != "" {
		cond("id < ?", after)
	}
	if f.AccountID != "" {
		cond("account_id = ?", f.AccountID)
	}
	if f.KeyID != "" {
		cond("key_id = ?", f.KeyID)
	}
	if f.Type != "" {
		cond("type = ?", f.Type)
	}
	if f.ActorID != "" {
		cond("actor_id = ?", f.ActorID)
	}
	if !f.From.IsZero() {
		cond("time >= ?", micros(f.From))
	}
	if !f.To.IsZero() {
		cond("time < ?", micros(f.To))
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_events WHERE `+strings.Join(where, " AND ")+
		` ORDER BY id DESC LIMIT ?`, append(args, f.Limit+1)...)
	if err != nil {
		return nil, "", unavailable(err)
	}
	out, err := collectAuditEvents(rows)
	if err != nil {
		return nil, "", err
	}
	out, next := cut(out, f.Limit, func(e *keyplane.AuditEvent) string { return e.ID })
	return out, next, nil
}

func collectAuditEvents(rows *sql.Rows) ([]*keyplane.AuditEvent, error) {
	defer rows.Close()
	var out []*keyplane.AuditEvent
	for rows.Next() {
		e, err := scanAuditEvent(rows)
		if err != nil {
			return nil, readErr(err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable(err)
	}
	return out, nil
}

// AuditChains returns every chain head, and a Missing one for chains whose
// events have no head row.
func (db *DB) AuditChains(ctx context.Context) ([]keyplane.AuditChainHead, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT chain, seq, head_hash, 0 FROM audit_chains
		UNION ALL SELECT DISTINCT account_id, 0, '', 1 FROM audit_events WHERE account_id NOT IN (SELECT chain FROM audit_chains)`)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	var out []keyplane.AuditChainHead
	for rows.Next() {
		var h keyplane.AuditChainHead
		if err := rows.Scan(&h.Chain, &h.Seq, &h.Hash, &h.Missing); err != nil {
			return nil, readErr(err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable(err)
	}
	return out, nil
}

// AuditChain returns a chain's events after afterSeq, in order.
func (db *DB) AuditChain(ctx context.Context, chain string, afterSeq int64, limit int) ([]*keyplane.AuditEvent, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_events WHERE account_id = ? AND seq > ? ORDER BY seq, id LIMIT ?`,
		chain, afterSeq, limit)
	if err != nil {
		return nil, unavailable(err)
	}
	return collectAuditEvents(rows)
}
