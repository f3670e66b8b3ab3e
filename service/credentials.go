package service

import (
	"context"
	"net/url"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/password"
)

// ResetTTL is how long a password reset link works.
const ResetTTL = time.Hour

// CreatedReset is a new reset link's record with its token, which exists
// only here.
type CreatedReset struct {
	*keyplane.PasswordReset
	Email string
	Token string
}

// ResetURL is the link that sets a new password, on the portal at base; the
// token travels in the query string, as an invite's does.
func ResetURL(base, token string) string {
	return base + "/portal/reset?token=" + url.QueryEscape(token)
}

var errResetUnusable = keyplane.Errorf(keyplane.ENOTFOUND, "this password reset link is not valid: it was used or has expired (links work once, for an hour); ask an owner of the account for a new one")

// ChangePassword sets a member's password, given the current one. Only the
// member themselves, signed in: an owner or the operator issues a reset link
// instead. Every other session of the member ends; the one making the change
// stays. Wrong current passwords are throttled like sign-ins.
func (s *Service) ChangePassword(ctx context.Context, id, current, newPassword string) (*keyplane.Member, error) {
	m, err := s.Member(ctx, id)
	if err != nil {
		return nil, err
	}
	a, _ := actor(ctx)
	if a.Kind != "member" || a.ID != m.ID {
		return nil, keyplane.Errorf(keyplane.EFORBIDDEN, "only the member can change their own password, with the current one; an owner or the operator can issue a reset link instead")
	}
	var v keyplane.Validation
	if current == "" {
		v.Add("current_password", "must not be empty")
	}
	validPassword(&v, "new_password", newPassword)
	if err := v.Err(); err != nil {
		return nil, err
	}
	key := "pair:password:" + m.ID // five wrong guesses per 15 minutes, as sign-in from one address
	if err := s.signins.take(s.clock(), key); err != nil {
		return nil, err
	}
	if len(current) > maxPasswordLen {
		current = current[:maxPasswordLen]
	}
	if ok, err := password.Verify(current, m.PasswordHash); !ok || err != nil {
		return nil, keyplane.Invalid("current_password", "is not your current password")
	}
	s.signins.refund(key)
	hashed := password.Hash(newPassword, s.passwords)
	ctx, trail := audited(ctx)
	m, err = s.store.UpdateMember(ctx, id, func(m *keyplane.Member) error {
		m.PasswordHash, m.UpdatedAt = hashed, s.now()
		trail.Add(s.event(ctx, keyplane.AuditMemberPasswordChanged, m.AccountID, "", auditEmail(map[string]any{"member_id": m.ID}, m.Email)))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteOtherMemberSessions(ctx, m.ID, a.SessionID); err != nil {
		return nil, err
	}
	return m, nil
}

// IssuePasswordReset makes a single-use link, good for ResetTTL, that lets
// the member set a new password. Operators and owners of the member's
// account. The token is returned only here.
func (s *Service) IssuePasswordReset(ctx context.Context, memberID string) (*CreatedReset, error) {
	m, err := s.Member(ctx, memberID)
	if err != nil {
		return nil, err
	}
	a, err := requireOwner(ctx, m.AccountID)
	if err != nil {
		return nil, err
	}
	if m.Status != keyplane.MemberActive {
		return nil, keyplane.Errorf(keyplane.ECONFLICT, "this member is disabled; enable them before resetting their password")
	}
	token := newSecret()
	now := s.now()
	r := &keyplane.PasswordReset{ID: newID("pwr"), MemberID: m.ID, AccountID: m.AccountID, Hash: apikey.Hash(token),
		CreatedBy: a.ID, CreatedAt: now, ExpiresAt: now.Add(ResetTTL)}
	ev := s.event(ctx, keyplane.AuditMemberResetIssued, m.AccountID, "", auditEmail(map[string]any{"member_id": m.ID, "reset_id": r.ID, "expires_at": r.ExpiresAt}, m.Email))
	if err := s.store.CreatePasswordReset(withEvents(ctx, ev), r); err != nil {
		return nil, err
	}
	return &CreatedReset{PasswordReset: r, Email: m.Email, Token: token}, nil
}

// IssuePasswordResetByEmail is IssuePasswordReset for the account's member
// with email: the operator's way in, from the command line.
func (s *Service) IssuePasswordResetByEmail(ctx context.Context, accountID, email string) (*CreatedReset, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if _, err := s.Account(ctx, accountID); err != nil {
		return nil, err
	}
	var v keyplane.Validation
	email = normalEmail(&v, "email", email)
	if err := v.Err(); err != nil {
		return nil, err
	}
	m, err := s.store.MemberByEmail(ctx, accountID, email)
	if err != nil {
		return nil, err
	}
	return s.IssuePasswordReset(ctx, m.ID)
}

// PasswordResetByToken returns the usable reset a link carries and its
// member's email; anyone holding the link may read them (it is the
// credential).
func (s *Service) PasswordResetByToken(ctx context.Context, token string) (*keyplane.PasswordReset, string, error) {
	hash, ok := secretHash(token)
	if !ok {
		return nil, "", errResetUnusable
	}
	r, err := s.store.PasswordResetByHash(ctx, hash)
	if keyplane.ErrorCode(err) == keyplane.ENOTFOUND {
		return nil, "", errResetUnusable
	} else if err != nil {
		return nil, "", err
	}
	if r.UsedAt != nil || !s.now().Before(r.ExpiresAt) {
		return nil, "", errResetUnusable
	}
	m, err := s.store.Member(ctx, r.MemberID)
	if err != nil {
		return nil, "", err
	}
	return r, m.Email, nil
}

// ResetPassword sets a new password with a reset link's token. It works
// once, before the link expires, and ends every session of the member.
func (s *Service) ResetPassword(ctx context.Context, token, newPassword string) (*keyplane.Member, error) {
	hash, ok := secretHash(token)
	if !ok {
		return nil, errResetUnusable
	}
	var v keyplane.Validation
	validPassword(&v, "password", newPassword)
	if err := v.Err(); err != nil {
		return nil, err
	}
	hashed := password.Hash(newPassword, s.passwords) // before the transaction: it is slow
	now := s.now()
	ctx, trail := audited(ctx)
	m, err := s.store.UsePasswordReset(ctx, hash, func(r *keyplane.PasswordReset, m *keyplane.Member) error {
		if r.UsedAt != nil || !now.Before(r.ExpiresAt) || m.Status != keyplane.MemberActive {
			return errResetUnusable
		}
		r.UsedAt = &now
		m.PasswordHash, m.UpdatedAt = hashed, now
		ev := s.event(ctx, keyplane.AuditMemberPasswordReset, m.AccountID, "", auditEmail(map[string]any{"member_id": m.ID, "reset_id": r.ID}, m.Email))
		ev.Actor = keyplane.AuditActor{Kind: "member", ID: m.ID}
		trail.Add(ev)
		return nil
	})
	if keyplane.ErrorCode(err) == keyplane.ENOTFOUND {
		return nil, errResetUnusable
	}
	return m, err
}

// DeleteMember removes a member; their sessions end at once and their reset
// links stop working. Operators and owners of the member's account; an
// account's last owner cannot be deleted.
func (s *Service) DeleteMember(ctx context.Context, id string) error {
	current, err := s.Member(ctx, id)
	if err != nil {
		return err
	}
	if _, err := requireOwner(ctx, current.AccountID); err != nil {
		return err
	}
	now := s.now()
	ctx, trail := audited(ctx)
	err = s.store.DeleteMember(ctx, id, func(m *keyplane.Member) error {
		trail.Add(s.event(ctx, keyplane.AuditMemberDeleted, m.AccountID, "", auditEmail(map[string]any{"member_id": m.ID, "role": m.Role}, m.Email)))
		raise(trail, memberEvent(keyplane.EventMemberDeleted, m, now))
		return nil
	})
	if err != nil {
		return err
	}
	s.wakeWebhooks()
	return nil
}
