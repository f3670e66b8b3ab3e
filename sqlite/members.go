package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/keyplane/keyplane"
)

// ---- members

const memberColumns = `id, account_id, email, password_hash, role, status, created_at, updated_at`

func scanMember(row scanner) (*keyplane.Member, error) {
	var m keyplane.Member
	var created, updated int64
	if err := row.Scan(&m.ID, &m.AccountID, &m.Email, &m.PasswordHash, &m.Role, &m.Status, &created, &updated); err != nil {
		return nil, err
	}
	m.CreatedAt, m.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &m, nil
}

// CreateMember inserts m, and account first when it is not nil.
func (db *DB) CreateMember(ctx context.Context, m *keyplane.Member, account *keyplane.Account) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		if account != nil {
			if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (`+accountColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				account.ID, account.Name, account.Plan, mustJSON(stringsOrEmpty(account.AllowedScopes)), account.Status,
				micros(account.CreatedAt), micros(account.UpdatedAt)); err != nil {
				return translate(err)
			}
		}
		return insertMember(ctx, tx, m)
	})
}

func insertMember(ctx context.Context, tx *sql.Tx, m *keyplane.Member) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO members (`+memberColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		m.ID, m.AccountID, m.Email, m.PasswordHash, m.Role, m.Status, micros(m.CreatedAt), micros(m.UpdatedAt))
	if err := translate(err); keyplane.ErrorCode(err) == keyplane.ECONFLICT {
		return keyplane.Errorf(keyplane.ECONFLICT, "this account already has a member with this email")
	} else if err != nil {
		return err
	}
	return nil
}

// Member returns the member with id.
func (db *DB) Member(ctx context.Context, id string) (*keyplane.Member, error) {
	return memberWhere(ctx, db.read, `id = ?`, id)
}

// MemberByEmail returns the account's member with a normalised email.
func (db *DB) MemberByEmail(ctx context.Context, accountID, email string) (*keyplane.Member, error) {
	return memberWhere(ctx, db.read, `account_id = ? AND email = ?`, accountID, email)
}

// MembersByEmail lists the members with a normalised email, oldest first.
func (db *DB) MembersByEmail(ctx context.Context, email string, limit int) ([]*keyplane.Member, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+memberColumns+` FROM members WHERE email = ? ORDER BY id LIMIT ?`, email, limit)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	var out []*keyplane.Member
	for rows.Next() {
		m, err := scanMember(rows)
		if err != nil {
			return nil, readErr(err)
		}
		out = append(out, m)
	}
	return out, readErr(rows.Err())
}

func memberWhere(ctx context.Context, q querier, where string, args ...any) (*keyplane.Member, error) {
	m, err := scanMember(q.QueryRowContext(ctx, `SELECT `+memberColumns+` FROM members WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "member not found")
	}
	return m, readErr(err)
}

// ListMembers lists an account's members by id.
func (db *DB) ListMembers(ctx context.Context, accountID string, page keyplane.Page) ([]*keyplane.Member, string, error) {
	after, err := keyplane.DecodeCursor(page.Cursor)
	if err != nil {
		return nil, "", err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+memberColumns+` FROM members
		WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?`, accountID, after, page.Limit+1)
	if err != nil {
		return nil, "", unavailable(err)
	}
	defer rows.Close()
	var out []*keyplane.Member
	for rows.Next() {
		m, err := scanMember(rows)
		if err != nil {
			return nil, "", readErr(err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, "", unavailable(err)
	}
	out, next := cut(out, page.Limit, func(m *keyplane.Member) string { return m.ID })
	return out, next, nil
}

// UpdateMember applies update to the member in one transaction, keeping an
// active owner in its account. The single writer connection serialises
// concurrent changes, so the count cannot go stale before the write.
func (db *DB) UpdateMember(ctx context.Context, id string, update func(*keyplane.Member) error) (*keyplane.Member, error) {
	var out *keyplane.Member
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		m, err := memberWhere(ctx, tx, `id = ?`, id)
		if err != nil {
			return err
		}
		wasOwner := activeOwner(m)
		accountID := m.AccountID
		if err := update(m); err != nil {
			return err
		}
		m.ID, m.AccountID = id, accountID // members never move between accounts
		if wasOwner && !activeOwner(m) {
			var others int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM members WHERE account_id = ? AND id <> ? AND role = ? AND status = ?`,
				accountID, id, keyplane.MemberOwner, keyplane.MemberActive).Scan(&others); err != nil {
				return translate(err)
			}
			if others == 0 {
				return keyplane.Errorf(keyplane.ECONFLICT, "this is the account's last active owner; make another member owner first")
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE members SET email = ?, password_hash = ?, role = ?, status = ?, updated_at = ? WHERE id = ?`,
			m.Email, m.PasswordHash, m.Role, m.Status, micros(m.UpdatedAt), id)
		out = m
		return translate(err)
	})
	return out, err
}

func activeOwner(m *keyplane.Member) bool {
	return m.Role == keyplane.MemberOwner && m.Status == keyplane.MemberActive
}

// ---- invites

const inviteColumns = `id, account_id, email, role, hash, created_by, created_at, expires_at, used_at`

func scanInvite(row scanner) (*keyplane.Invite, error) {
	var inv keyplane.Invite
	var hash []byte
	var created, expires int64
	var used sql.NullInt64
	if err := row.Scan(&inv.ID, &inv.AccountID, &inv.Email, &inv.Role, &hash, &inv.CreatedBy, &created, &expires, &used); err != nil {
		return nil, err
	}
	copy(inv.Hash[:], hash)
	inv.CreatedAt, inv.ExpiresAt, inv.UsedAt = fromMicros(created), fromMicros(expires), fromMicrosPtr(used)
	return &inv, nil
}

// CreateInvite inserts inv.
func (db *DB) CreateInvite(ctx context.Context, inv *keyplane.Invite) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO member_invites (`+inviteColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			inv.ID, inv.AccountID, inv.Email, inv.Role, inv.Hash[:], inv.CreatedBy, micros(inv.CreatedAt), micros(inv.ExpiresAt), microsPtr(inv.UsedAt))
		return translate(err)
	})
}

// Invite returns the invite with id.
func (db *DB) Invite(ctx context.Context, id string) (*keyplane.Invite, error) {
	return inviteWhere(ctx, db.read, `id = ?`, id)
}

// InviteByHash returns the invite whose token has hash.
func (db *DB) InviteByHash(ctx context.Context, hash [32]byte) (*keyplane.Invite, error) {
	return inviteWhere(ctx, db.read, `hash = ?`, hash[:])
}

func inviteWhere(ctx context.Context, q querier, where string, arg any) (*keyplane.Invite, error) {
	inv, err := scanInvite(q.QueryRowContext(ctx, `SELECT `+inviteColumns+` FROM member_invites WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "invite not found")
	}
	return inv, readErr(err)
}

// PendingInvites lists an account's usable invites, newest first.
func (db *DB) PendingInvites(ctx context.Context, accountID string, now time.Time) ([]*keyplane.Invite, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+inviteColumns+` FROM member_invites
		WHERE account_id = ? AND used_at IS NULL AND expires_at > ? ORDER BY id DESC LIMIT 100`, accountID, micros(now))
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	var out []*keyplane.Invite
	for rows.Next() {
		inv, err := scanInvite(rows)
		if err != nil {
			return nil, readErr(err)
		}
		out = append(out, inv)
	}
	return out, readErr(rows.Err())
}

// DeleteInvite removes an invite, so its link stops working.
func (db *DB) DeleteInvite(ctx context.Context, id string) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM member_invites WHERE id = ?`, id)
		return deleted(res, err, "invite not found")
	})
}

// UseInvite marks an invite used and inserts the member it admits, together.
func (db *DB) UseInvite(ctx context.Context, hash [32]byte, use func(*keyplane.Invite) (*keyplane.Member, error)) (*keyplane.Member, error) {
	var out *keyplane.Member
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		inv, err := inviteWhere(ctx, tx, `hash = ?`, hash[:])
		if err != nil {
			return err
		}
		m, err := use(inv)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE member_invites SET used_at = ? WHERE id = ?`, microsPtr(inv.UsedAt), inv.ID); err != nil {
			return translate(err)
		}
		out = m
		return insertMember(ctx, tx, m)
	})
	return out, err
}

// ---- sessions

const sessionColumns = `id, hash, member_id, account_id, created_at, last_seen_at, expires_at`

// CreateSession inserts s.
func (db *DB) CreateSession(ctx context.Context, s *keyplane.Session) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO member_sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			s.ID, s.Hash[:], s.MemberID, s.AccountID, micros(s.CreatedAt), micros(s.LastSeenAt), micros(s.ExpiresAt))
		return translate(err)
	})
}

// SessionByHash returns the session with hash.
func (db *DB) SessionByHash(ctx context.Context, hash [32]byte) (*keyplane.Session, error) {
	var s keyplane.Session
	var h []byte
	var created, seen, expires int64
	err := db.read.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM member_sessions WHERE hash = ?`, hash[:]).
		Scan(&s.ID, &h, &s.MemberID, &s.AccountID, &created, &seen, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "no session with that hash")
	} else if err != nil {
		return nil, unavailable(err)
	}
	copy(s.Hash[:], h)
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = fromMicros(created), fromMicros(seen), fromMicros(expires)
	return &s, nil
}

// TouchSession records activity on a session; it never moves time back.
func (db *DB) TouchSession(ctx context.Context, id string, lastSeen time.Time) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE member_sessions SET last_seen_at = max(last_seen_at, ?) WHERE id = ?`, micros(lastSeen), id)
		return translate(err)
	})
}

// DeleteSession removes a session; a missing one is not an error, since
// signing out twice ends in the same state.
func (db *DB) DeleteSession(ctx context.Context, id string) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM member_sessions WHERE id = ?`, id)
		return translate(err)
	})
}

// DeleteMemberSessions removes every session of a member.
func (db *DB) DeleteMemberSessions(ctx context.Context, memberID string) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM member_sessions WHERE member_id = ?`, memberID)
		return translate(err)
	})
}

// DeleteStaleSessions removes expired and idle sessions.
func (db *DB) DeleteStaleSessions(ctx context.Context, now, idleSince time.Time) (int, error) {
	var n int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM member_sessions WHERE expires_at <= ? OR last_seen_at < ?`, micros(now), micros(idleSince))
		if err != nil {
			return translate(err)
		}
		n, err = res.RowsAffected()
		return translate(err)
	})
	return int(n), err
}

// deleted turns a DELETE's result into ENOTFOUND when it removed nothing.
func deleted(res sql.Result, err error, notFound string) error {
	if err != nil {
		return translate(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return translate(err)
	} else if n == 0 {
		return keyplane.Errorf(keyplane.ENOTFOUND, "%s", notFound)
	}
	return nil
}

// DeleteMember removes a member, its sessions and reset links, keeping an
// active owner in its account.
func (db *DB) DeleteMember(ctx context.Context, id string, check func(*keyplane.Member) error) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		m, err := memberWhere(ctx, tx, `id = ?`, id)
		if err != nil {
			return err
		}
		if err := check(m); err != nil {
			return err
		}
		if m.Role == keyplane.MemberOwner {
			var others int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM members WHERE account_id = ? AND id <> ? AND role = ? AND status = ?`,
				m.AccountID, id, keyplane.MemberOwner, keyplane.MemberActive).Scan(&others); err != nil {
				return translate(err)
			}
			if others == 0 {
				return keyplane.Errorf(keyplane.ECONFLICT, "this is the account's last owner; make another member owner first")
			}
		}
		for _, q := range []string{`DELETE FROM member_sessions WHERE member_id = ?`, `DELETE FROM member_password_resets WHERE member_id = ?`} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return translate(err)
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM members WHERE id = ?`, id)
		return deleted(res, err, "member not found")
	})
}

// DeleteOtherMemberSessions removes every session of a member but keepID.
func (db *DB) DeleteOtherMemberSessions(ctx context.Context, memberID, keepID string) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM member_sessions WHERE member_id = ? AND id <> ?`, memberID, keepID)
		return translate(err)
	})
}

// ---- password resets

const resetColumns = `id, member_id, account_id, hash, created_by, created_at, expires_at, used_at`

// CreatePasswordReset inserts r.
func (db *DB) CreatePasswordReset(ctx context.Context, r *keyplane.PasswordReset) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO member_password_resets (`+resetColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.MemberID, r.AccountID, r.Hash[:], r.CreatedBy, micros(r.CreatedAt), micros(r.ExpiresAt), microsPtr(r.UsedAt))
		return translate(err)
	})
}

// PasswordResetByHash returns the reset whose token has hash.
func (db *DB) PasswordResetByHash(ctx context.Context, hash [32]byte) (*keyplane.PasswordReset, error) {
	return resetByHash(ctx, db.read, hash)
}

func resetByHash(ctx context.Context, q querier, hash [32]byte) (*keyplane.PasswordReset, error) {
	var r keyplane.PasswordReset
	var h []byte
	var created, expires int64
	var used sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT `+resetColumns+` FROM member_password_resets WHERE hash = ?`, hash[:]).
		Scan(&r.ID, &r.MemberID, &r.AccountID, &h, &r.CreatedBy, &created, &expires, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "password reset not found")
	} else if err != nil {
		return nil, readErr(err)
	}
	copy(r.Hash[:], h)
	r.CreatedAt, r.ExpiresAt, r.UsedAt = fromMicros(created), fromMicros(expires), fromMicrosPtr(used)
	return &r, nil
}

// UsePasswordReset marks a reset used, sets its member's password and ends
// the member's sessions, together.
func (db *DB) UsePasswordReset(ctx context.Context, hash [32]byte, use func(*keyplane.PasswordReset, *keyplane.Member) error) (*keyplane.Member, error) {
	var out *keyplane.Member
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		r, err := resetByHash(ctx, tx, hash)
		if err != nil {
			return err
		}
		m, err := memberWhere(ctx, tx, `id = ?`, r.MemberID)
		if err != nil {
			return err
		}
		if err := use(r, m); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE member_password_resets SET used_at = ? WHERE id = ?`, microsPtr(r.UsedAt), r.ID); err != nil {
			return translate(err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE members SET password_hash = ?, updated_at = ? WHERE id = ?`, m.PasswordHash, micros(m.UpdatedAt), m.ID); err != nil {
			return translate(err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM member_sessions WHERE member_id = ?`, m.ID); err != nil {
			return translate(err)
		}
		out = m
		return nil
	})
	return out, err
}
