package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyplane/keyplane"
)

// ---- members

const memberColumns = `id, account_id, email, password_hash, role, status, created_at, updated_at`

func scanMember(row pgx.Row) (*keyplane.Member, error) {
	var m keyplane.Member
	var created, updated time.Time
	if err := row.Scan(&m.ID, &m.AccountID, &m.Email, &m.PasswordHash, &m.Role, &m.Status, &created, &updated); err != nil {
		return nil, err
	}
	m.CreatedAt, m.UpdatedAt = utc(created), utc(updated)
	return &m, nil
}

// CreateMember inserts m, and account first when it is not nil.
func (db *DB) CreateMember(ctx context.Context, m *keyplane.Member, account *keyplane.Account) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		if account != nil {
			if _, err := tx.Exec(ctx, `INSERT INTO accounts (`+accountColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				account.ID, account.Name, account.Plan, stringsOrEmpty(account.AllowedScopes), account.Status, account.CreatedAt, account.UpdatedAt); err != nil {
				return translate(err)
			}
		}
		return insertMember(ctx, tx, m)
	})
}

func insertMember(ctx context.Context, tx pgx.Tx, m *keyplane.Member) error {
	_, err := tx.Exec(ctx, `INSERT INTO members (`+memberColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		m.ID, m.AccountID, m.Email, m.PasswordHash, m.Role, m.Status, m.CreatedAt, m.UpdatedAt)
	if err := translate(err); keyplane.ErrorCode(err) == keyplane.ECONFLICT {
		return keyplane.Errorf(keyplane.ECONFLICT, "this account already has a member with this email")
	} else if err != nil {
		return err
	}
	return nil
}

// Member returns the member with id.
func (db *DB) Member(ctx context.Context, id string) (*keyplane.Member, error) {
	return memberWhere(ctx, db.pool, `id = $1`, id)
}

// MemberByEmail returns the account's member with a normalised email.
func (db *DB) MemberByEmail(ctx context.Context, accountID, email string) (*keyplane.Member, error) {
	return memberWhere(ctx, db.pool, `account_id = $1 AND email = $2`, accountID, email)
}

// MembersByEmail lists the members with a normalised email, oldest first.
func (db *DB) MembersByEmail(ctx context.Context, email string, limit int) ([]*keyplane.Member, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+memberColumns+` FROM members WHERE email = $1 ORDER BY id LIMIT $2`, email, limit)
	if err != nil {
		return nil, translate(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*keyplane.Member, error) { return scanMember(row) })
	return out, translate(err)
}

func memberWhere(ctx context.Context, q queryer, where string, args ...any) (*keyplane.Member, error) {
	m, err := scanMember(q.QueryRow(ctx, `SELECT `+memberColumns+` FROM members WHERE `+where, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "member not found")
	}
	return m, translate(err)
}

// ListMembers lists an account's members by id.
func (db *DB) ListMembers(ctx context.Context, accountID string, page keyplane.Page) ([]*keyplane.Member, string, error) {
	after, err := keyplane.DecodeCursor(page.Cursor)
	if err != nil {
		return nil, "", err
	}
	rows, err := db.pool.Query(ctx, `SELECT `+memberColumns+` FROM members
		WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3`, accountID, after, page.Limit+1)
	if err != nil {
		return nil, "", translate(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*keyplane.Member, error) { return scanMember(row) })
	if err != nil {
		return nil, "", translate(err)
	}
	out, next := cut(out, page.Limit, func(m *keyplane.Member) string { return m.ID })
	return out, next, nil
}

// UpdateMember applies update to the member in one transaction, keeping an
// active owner in its account. The account's row is locked first, so two
// owners demoting each other at once cannot both succeed.
func (db *DB) UpdateMember(ctx context.Context, id string, update func(*keyplane.Member) error) (*keyplane.Member, error) {
	var out *keyplane.Member
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		m, err := memberWhere(ctx, tx, `id = $1`, id)
		if err != nil {
			return err
		}
		if _, err := accountByID(ctx, tx, m.AccountID, forUpdate); err != nil {
			return err
		}
		if m, err = memberWhere(ctx, tx, `id = $1 FOR UPDATE`, id); err != nil {
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
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM members WHERE account_id = $1 AND id <> $2 AND role = $3 AND status = $4`,
				accountID, id, keyplane.MemberOwner, keyplane.MemberActive).Scan(&others); err != nil {
				return translate(err)
			}
			if others == 0 {
				return keyplane.Errorf(keyplane.ECONFLICT, "this is the account's last active owner; make another member owner first")
			}
		}
		_, err = tx.Exec(ctx, `UPDATE members SET email = $1, password_hash = $2, role = $3, status = $4, updated_at = $5 WHERE id = $6`,
			m.Email, m.PasswordHash, m.Role, m.Status, m.UpdatedAt, id)
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

func scanInvite(row pgx.Row) (*keyplane.Invite, error) {
	var inv keyplane.Invite
	var hash []byte
	var created, expires time.Time
	var used *time.Time
	if err := row.Scan(&inv.ID, &inv.AccountID, &inv.Email, &inv.Role, &hash, &inv.CreatedBy, &created, &expires, &used); err != nil {
		return nil, err
	}
	copy(inv.Hash[:], hash)
	inv.CreatedAt, inv.ExpiresAt, inv.UsedAt = utc(created), utc(expires), utcPtr(used)
	return &inv, nil
}

// CreateInvite inserts inv.
func (db *DB) CreateInvite(ctx context.Context, inv *keyplane.Invite) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO member_invites (`+inviteColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			inv.ID, inv.AccountID, inv.Email, inv.Role, inv.Hash[:], inv.CreatedBy, inv.CreatedAt, inv.ExpiresAt, inv.UsedAt)
		return translate(err)
	})
}

// Invite returns the invite with id.
func (db *DB) Invite(ctx context.Context, id string) (*keyplane.Invite, error) {
	return inviteWhere(ctx, db.pool, `id = $1`, id)
}

// InviteByHash returns the invite whose token has hash.
func (db *DB) InviteByHash(ctx context.Context, hash [32]byte) (*keyplane.Invite, error) {
	return inviteWhere(ctx, db.pool, `hash = $1`, hash[:])
}

func inviteWhere(ctx context.Context, q queryer, where string, arg any) (*keyplane.Invite, error) {
	inv, err := scanInvite(q.QueryRow(ctx, `SELECT `+inviteColumns+` FROM member_invites WHERE `+where, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "invite not found")
	}
	return inv, translate(err)
}

// PendingInvites lists an account's usable invites, newest first.
func (db *DB) PendingInvites(ctx context.Context, accountID string, now time.Time) ([]*keyplane.Invite, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+inviteColumns+` FROM member_invites
		WHERE account_id = $1 AND used_at IS NULL AND expires_at > $2 ORDER BY id DESC LIMIT 100`, accountID, now)
	if err != nil {
		return nil, translate(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*keyplane.Invite, error) { return scanInvite(row) })
	return out, translate(err)
}

// DeleteInvite removes an invite, so its link stops working.
func (db *DB) DeleteInvite(ctx context.Context, id string) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM member_invites WHERE id = $1`, id)
		if err != nil {
			return translate(err)
		}
		if tag.RowsAffected() == 0 {
			return keyplane.Errorf(keyplane.ENOTFOUND, "invite not found")
		}
		return nil
	})
}

// UseInvite marks an invite used and inserts the member it admits, together.
func (db *DB) UseInvite(ctx context.Context, hash [32]byte, use func(*keyplane.Invite) (*keyplane.Member, error)) (*keyplane.Member, error) {
	var out *keyplane.Member
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		inv, err := inviteWhere(ctx, tx, `hash = $1 FOR UPDATE`, hash[:])
		if err != nil {
			return err
		}
		m, err := use(inv)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE member_invites SET used_at = $1 WHERE id = $2`, inv.UsedAt, inv.ID); err != nil {
			return translate(err)
		}
		out = m
		return insertMember(ctx, tx, m)
	})
	return out, err
}

// ---- sessions

const sessionColumns = `id, hash, member_id, account_id, created_at, last_seen_at, expires_at`

// CreateSession inserts s (with the sign-in's audit event, when ctx has one).
func (db *DB) CreateSession(ctx context.Context, s *keyplane.Session) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO member_sessions (`+sessionColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			s.ID, s.Hash[:], s.MemberID, s.AccountID, s.CreatedAt, s.LastSeenAt, s.ExpiresAt)
		return translate(err)
	})
}

// SessionByHash returns the session with hash.
func (db *DB) SessionByHash(ctx context.Context, hash [32]byte) (*keyplane.Session, error) {
	var s keyplane.Session
	var h []byte
	var created, seen, expires time.Time
	err := db.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM member_sessions WHERE hash = $1`, hash[:]).
		Scan(&s.ID, &h, &s.MemberID, &s.AccountID, &created, &seen, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "no session with that hash")
	} else if err != nil {
		return nil, translate(err)
	}
	copy(s.Hash[:], h)
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = utc(created), utc(seen), utc(expires)
	return &s, nil
}

// TouchSession records activity on a session; it never moves time back.
func (db *DB) TouchSession(ctx context.Context, id string, lastSeen time.Time) error {
	_, err := db.pool.Exec(ctx, `UPDATE member_sessions SET last_seen_at = greatest(last_seen_at, $1) WHERE id = $2`, lastSeen, id)
	return translate(err)
}

// DeleteSession removes a session (with the sign-out's audit event, when
// ctx has one); a missing one is not an error.
func (db *DB) DeleteSession(ctx context.Context, id string) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM member_sessions WHERE id = $1`, id)
		return translate(err)
	})
}

// DeleteMemberSessions removes every session of a member.
func (db *DB) DeleteMemberSessions(ctx context.Context, memberID string) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM member_sessions WHERE member_id = $1`, memberID)
	return translate(err)
}

// DeleteStaleSessions removes expired and idle sessions.
func (db *DB) DeleteStaleSessions(ctx context.Context, now, idleSince time.Time) (int, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM member_sessions WHERE expires_at <= $1 OR last_seen_at < $2`, now, idleSince)
	if err != nil {
		return 0, translate(err)
	}
	return int(tag.RowsAffected()), nil
}

// DeleteMember removes a member, its sessions and reset links, keeping an
// active owner in its account: the account's row is locked first, as in
// UpdateMember, so two owners cannot delete each other at once.
func (db *DB) DeleteMember(ctx context.Context, id string, check func(*keyplane.Member) error) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		m, err := memberWhere(ctx, tx, `id = $1`, id)
		if err != nil {
			return err
		}
		if _, err := accountByID(ctx, tx, m.AccountID, forUpdate); err != nil {
			return err
		}
		if m, err = memberWhere(ctx, tx, `id = $1 FOR UPDATE`, id); err != nil {
			return err
		}
		if err := check(m); err != nil {
			return err
		}
		if m.Role == keyplane.MemberOwner {
			var others int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM members WHERE account_id = $1 AND id <> $2 AND role = $3 AND status = $4`,
				m.AccountID, id, keyplane.MemberOwner, keyplane.MemberActive).Scan(&others); err != nil {
				return translate(err)
			}
			if others == 0 {
				return keyplane.Errorf(keyplane.ECONFLICT, "this is the account's last owner; make another member owner first")
			}
		}
		for _, q := range []string{`DELETE FROM member_sessions WHERE member_id = $1`, `DELETE FROM member_password_resets WHERE member_id = $1`} {
			if _, err := tx.Exec(ctx, q, id); err != nil {
				return translate(err)
			}
		}
		tag, err := tx.Exec(ctx, `DELETE FROM members WHERE id = $1`, id)
		if err != nil {
			return translate(err)
		}
		if tag.RowsAffected() == 0 {
			return keyplane.Errorf(keyplane.ENOTFOUND, "member not found")
		}
		return nil
	})
}

// DeleteOtherMemberSessions removes every session of a member but keepID.
func (db *DB) DeleteOtherMemberSessions(ctx context.Context, memberID, keepID string) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM member_sessions WHERE member_id = $1 AND id <> $2`, memberID, keepID)
	return translate(err)
}

// ---- password resets

const resetColumns = `id, member_id, account_id, hash, created_by, created_at, expires_at, used_at`

// CreatePasswordReset inserts r.
func (db *DB) CreatePasswordReset(ctx context.Context, r *keyplane.PasswordReset) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO member_password_resets (`+resetColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			r.ID, r.MemberID, r.AccountID, r.Hash[:], r.CreatedBy, r.CreatedAt, r.ExpiresAt, r.UsedAt)
		return translate(err)
	})
}

// PasswordResetByHash returns the reset whose token has hash.
func (db *DB) PasswordResetByHash(ctx context.Context, hash [32]byte) (*keyplane.PasswordReset, error) {
	return resetWhere(ctx, db.pool, `hash = $1`, hash[:])
}

func resetWhere(ctx context.Context, q queryer, where string, arg any) (*keyplane.PasswordReset, error) {
	var r keyplane.PasswordReset
	var h []byte
	var created, expires time.Time
	var used *time.Time
	err := q.QueryRow(ctx, `SELECT `+resetColumns+` FROM member_password_resets WHERE `+where, arg).
		Scan(&r.ID, &r.MemberID, &r.AccountID, &h, &r.CreatedBy, &created, &expires, &used)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "password reset not found")
	} else if err != nil {
		return nil, translate(err)
	}
	copy(r.Hash[:], h)
	r.CreatedAt, r.ExpiresAt, r.UsedAt = utc(created), utc(expires), utcPtr(used)
	return &r, nil
}

// UsePasswordReset marks a reset used, sets its member's password and ends
// the member's sessions, together.
func (db *DB) UsePasswordReset(ctx context.Context, hash [32]byte, use func(*keyplane.PasswordReset, *keyplane.Member) error) (*keyplane.Member, error) {
	var out *keyplane.Member
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		r, err := resetWhere(ctx, tx, `hash = $1 FOR UPDATE`, hash[:])
		if err != nil {
			return err
		}
		m, err := memberWhere(ctx, tx, `id = $1 FOR UPDATE`, r.MemberID)
		if err != nil {
			return err
		}
		if err := use(r, m); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE member_password_resets SET used_at = $1 WHERE id = $2`, r.UsedAt, r.ID); err != nil {
			return translate(err)
		}
		if _, err := tx.Exec(ctx, `UPDATE members SET password_hash = $1, updated_at = $2 WHERE id = $3`, m.PasswordHash, m.UpdatedAt, m.ID); err != nil {
			return translate(err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM member_sessions WHERE member_id = $1`, m.ID); err != nil {
			return translate(err)
		}
		out = m
		return nil
	})
	return out, err
}
