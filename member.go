package keyplane

import (
	"context"
	"time"
)

// MemberRole is what a portal member may do in their account.
type MemberRole string

const (
	MemberOwner     MemberRole = "owner"     // everything, including members and invites
	MemberDeveloper MemberRole = "developer" // manages keys
	MemberViewer    MemberRole = "viewer"    // reads only
)

// Valid reports whether r is a known role.
func (r MemberRole) Valid() bool {
	return r == MemberOwner || r == MemberDeveloper || r == MemberViewer
}

// ManagesKeys reports whether the role may create, change, roll and revoke keys.
func (r MemberRole) ManagesKeys() bool { return r == MemberOwner || r == MemberDeveloper }

// Audit event types of members' changes; sign-ins are in audit.go.
const (
	AuditMemberCreated   = "member.created"
	AuditMemberInvited   = "member.invited"
	AuditMemberJoined    = "member.joined"
	AuditMemberUpdated   = "member.updated"
	AuditInviteCancelled = "member.invite_cancelled"
	// A member changed their own password (with the current one).
	AuditMemberPasswordChanged = "member.password_changed"
	// An owner or the operator made a reset link; a reset link was used.
	AuditMemberResetIssued   = "member.password_reset_issued"
	AuditMemberPasswordReset = "member.password_reset"
	AuditMemberDeleted       = "member.deleted"
)

// MemberStatus is whether a member may sign in.
type MemberStatus string

const (
	MemberActive   MemberStatus = "active"
	MemberDisabled MemberStatus = "disabled"
)

// Valid reports whether s is a known status.
func (s MemberStatus) Valid() bool { return s == MemberActive || s == MemberDisabled }

// Member is a person at a customer account who signs in to the portal. Only
// an argon2id hash of the password is kept, in PHC string form.
type Member struct {
	ID           string
	AccountID    string
	Email        string // normalised: trimmed and lower case; unique within the account
	PasswordHash string
	Role         MemberRole
	Status       MemberStatus
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Invite lets one person join an account with a role by following a link.
// Only the SHA-256 of the link's token is kept.
type Invite struct {
	ID        string
	AccountID string
	Email     string
	Role      MemberRole
	Hash      [32]byte
	CreatedBy string // the actor's id
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// PasswordReset lets one member set a new password by following a link,
// once, before it expires. Only the SHA-256 of the link's token is kept.
type PasswordReset struct {
	ID        string
	MemberID  string
	AccountID string
	Hash      [32]byte
	CreatedBy string // the actor's id
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// Session is a signed-in member's portal session. Only the SHA-256 of its
// cookie's token is kept. It ends at ExpiresAt, or earlier once it has been
// idle too long (the service decides how long, from LastSeenAt).
type Session struct {
	ID         string
	Hash       [32]byte
	MemberID   string
	AccountID  string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
}

// MemberStore keeps members, their invites and their sessions.
//
// UpdateMember refuses (ECONFLICT) a change that would leave an account with
// members but no active owner; that check and the write are atomic.
type MemberStore interface {
	// CreateMember inserts m (ECONFLICT if its account has a member with its
	// email; other accounts' members may share it). A non-nil account is
	// inserted first in the same transaction: sign-up makes an account and
	// its first owner together, or neither.
	CreateMember(ctx context.Context, m *Member, account *Account) error
	Member(ctx context.Context, id string) (*Member, error)
	// MemberByEmail returns the account's member with a normalised email.
	MemberByEmail(ctx context.Context, accountID, email string) (*Member, error)
	// MembersByEmail lists the members with a normalised email, one per
	// account at most, oldest (lowest id) first, at most limit of them.
	MembersByEmail(ctx context.Context, email string, limit int) ([]*Member, error)
	// ListMembers lists an account's members by id; the cursor is the last id.
	ListMembers(ctx context.Context, accountID string, page Page) ([]*Member, string, error)
	UpdateMember(ctx context.Context, id string, update func(*Member) error) (*Member, error)
	// DeleteMember removes a member with their sessions and reset links,
	// after check approves it; it refuses (ECONFLICT) to remove an active
	// owner when no other active owner is left. The check and the delete are
	// atomic.
	DeleteMember(ctx context.Context, id string, check func(*Member) error) error

	// CreatePasswordReset inserts r.
	CreatePasswordReset(ctx context.Context, r *PasswordReset) error
	PasswordResetByHash(ctx context.Context, hash [32]byte) (*PasswordReset, error)
	// UsePasswordReset locks the reset with hash and its member and lets use
	// check the reset, mark it used and set the member's password; both are
	// written, and every session of the member deleted, in one transaction.
	UsePasswordReset(ctx context.Context, hash [32]byte, use func(*PasswordReset, *Member) error) (*Member, error)

	CreateInvite(ctx context.Context, inv *Invite) error
	// PendingInvites lists an account's unused invites that expire after now,
	// newest first.
	PendingInvites(ctx context.Context, accountID string, now time.Time) ([]*Invite, error)
	DeleteInvite(ctx context.Context, id string) error
	Invite(ctx context.Context, id string) (*Invite, error)
	InviteByHash(ctx context.Context, hash [32]byte) (*Invite, error)
	// UseInvite locks the invite with hash and lets use check it, mark it
	// used and build the member it admits; the invite and the new member are
	// written in one transaction, so an invite admits one member at most.
	UseInvite(ctx context.Context, hash [32]byte, use func(*Invite) (*Member, error)) (*Member, error)

	CreateSession(ctx context.Context, s *Session) error
	SessionByHash(ctx context.Context, hash [32]byte) (*Session, error)
	// TouchSession records activity on a session.
	TouchSession(ctx context.Context, id string, lastSeen time.Time) error
	DeleteSession(ctx context.Context, id string) error
	// DeleteMemberSessions signs a member out everywhere.
	DeleteMemberSessions(ctx context.Context, memberID string) error
	// DeleteOtherMemberSessions signs a member out everywhere but the
	// session keepID (empty keeps none).
	DeleteOtherMemberSessions(ctx context.Context, memberID, keepID string) error
	// DeleteStaleSessions removes sessions past their expiry at now or last
	// seen before idleSince, and returns how many it removed.
	DeleteStaleSessions(ctx context.Context, now, idleSince time.Time) (int, error)
}
