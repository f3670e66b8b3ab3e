package service

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/mail"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/apikey"
	"github.com/keyplane/keyplane/password"
)

// InviteTTL is how long an invite link works.
const InviteTTL = 7 * 24 * time.Hour

// Password bounds: long enough to resist guessing behind the throttle, short
// enough that hashing one is bounded work.
const (
	minPasswordLen = 12
	maxPasswordLen = 256
)

// MemberInput creates a member with a password, from the command line or the
// operator's API.
type MemberInput struct {
	Email    string
	Role     keyplane.MemberRole
	Password string
}

// MemberUpdate changes the fields that are not nil.
type MemberUpdate struct {
	Role   *keyplane.MemberRole
	Status *keyplane.MemberStatus
}

// CreatedInvite is a new invite with its token, which exists only here.
type CreatedInvite struct {
	*keyplane.Invite
	Token string
}

// normalEmail trims and lower-cases an email address and checks its shape.
// Lower-casing the local part is a simplification (RFC 5321 lets servers
// treat it as case-sensitive) that every mail provider in practice shares.
func normalEmail(v *keyplane.Validation, field, email string) string {
	e := strings.ToLower(strings.TrimSpace(email))
	if e == "" {
		v.Add(field, "must not be empty")
		return e
	}
	if len(e) > 254 {
		v.Add(field, "must be at most 254 characters")
		return e
	}
	// Before lower-casing took it apart: a key in an email would be kept
	// and shown, and lower-cased it still leaves a few guesses to find.
	if apikey.ContainsSecret(email) {
		v.Add(field, "holds an API key or token; that is not an email address")
		return e
	}
	addr, err := mail.ParseAddress(e)
	if err != nil || addr.Address != e || addr.Name != "" || !strings.Contains(e[strings.LastIndexByte(e, '@')+1:], ".") {
		v.Add(field, "is not an email address like name@example.com")
	}
	return e
}

func validRole(v *keyplane.Validation, field string, r keyplane.MemberRole) {
	if !r.Valid() {
		v.Add(field, "%q: want owner, developer or viewer", r)
	}
}

func validPassword(v *keyplane.Validation, field, pw string) {
	switch n := utf8.RuneCountInString(pw); {
	case !utf8.ValidString(pw):
		v.Add(field, "must be valid UTF-8")
	case n < minPasswordLen:
		v.Add(field, "must be at least %d characters", minPasswordLen)
	case len(pw) > maxPasswordLen:
		v.Add(field, "must be at most %d bytes", maxPasswordLen)
	}
}

// GeneratePassword returns a random password of 20 base62 characters (119 bits).
func GeneratePassword() string {
	const n = 20
	b := make([]byte, n)
	for i := range b {
		b[i] = apikey.Alphabet[randIndex(len(apikey.Alphabet))]
	}
	return string(b)
}

// randIndex returns a uniform random number below n (n ≤ 256), by rejection.
func randIndex(n int) int {
	limit := 256 - 256%n
	var b [1]byte
	for {
		rand.Read(b[:])
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}

// newSecret returns a 256-bit random token for a link or a cookie.
func newSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// secretHash hashes a token from a link or cookie; false when it cannot be
// one of ours, so junk never reaches the store.
func secretHash(token string) ([32]byte, bool) {
	if len(token) != 43 {
		return [32]byte{}, false
	}
	if _, err := base64.RawURLEncoding.DecodeString(token); err != nil {
		return [32]byte{}, false
	}
	return apikey.Hash(token), true
}

// requireOwner admits operators and the owners of accountID; other members
// of it are refused, members of other accounts do not see it.
func requireOwner(ctx context.Context, accountID string) (keyplane.Actor, error) {
	a, err := actor(ctx)
	if err != nil {
		return a, err
	}
	if err := authorizeAccount(ctx, accountID); err != nil {
		return a, err
	}
	if a.Kind == "member" && a.MemberRole != keyplane.MemberOwner {
		return a, keyplane.Errorf(keyplane.EFORBIDDEN, "only owners of the account manage its members")
	}
	return a, nil
}

// requireKeyManager refuses viewers: they read keys but never change them.
func requireKeyManager(ctx context.Context) error {
	a, err := actor(ctx)
	if err != nil {
		return err
	}
	if a.Kind == "member" && !a.MemberRole.ManagesKeys() {
		return keyplane.Errorf(keyplane.EFORBIDDEN, "viewers can see keys but not change them; ask an owner for the developer role")
	}
	return nil
}

// CreateMember adds a member with a password to an account. Operators only:
// members join by invite.
func (s *Service) CreateMember(ctx context.Context, accountID string, in MemberInput) (*keyplane.Member, error) {
	if err := requireOperator(ctx); err != nil {
		return nil, err
	}
	if _, err := s.Account(ctx, accountID); err != nil {
		return nil, err
	}
	var v keyplane.Validation
	email := normalEmail(&v, "email", in.Email)
	validRole(&v, "role", in.Role)
	validPassword(&v, "password", in.Password)
	if err := v.Err(); err != nil {
		return nil, err
	}
	now := s.now()
	m := &keyplane.Member{ID: newID("mem"), AccountID: accountID, Email: email, PasswordHash: password.Hash(in.Password, s.passwords),
		Role: in.Role, Status: keyplane.MemberActive, CreatedAt: now, UpdatedAt: now}
	ev := s.event(ctx, keyplane.AuditMemberCreated, accountID, "", auditEmail(map[string]any{"member_id": m.ID, "role": m.Role}, m.Email))
	ctx, trail := audited(ctx, ev)
	raise(trail, memberEvent(keyplane.EventMemberCreated, m, now))
	if err := s.store.CreateMember(ctx, m, nil); err != nil {
		return nil, err
	}
	s.wakeWebhooks()
	return m, nil
}

// Member returns a member the caller may see: operators see all, members
// see themselves, owners see their account's members.
func (s *Service) Member(ctx context.Context, id string) (*keyplane.Member, error) {
	a, err := actor(ctx)
	if err != nil {
		return nil, err
	}
	if !validID(id) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "member not found")
	}
	m, err := s.store.Member(ctx, id)
	if err != nil {
		return nil, err
	}
	if !a.CanSee(m.AccountID) || a.Kind == "member" && a.ID != id && a.MemberRole != keyplane.MemberOwner {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "member not found")
	}
	if err := requireManager(a); err != nil {
		return nil, err
	}
	return m, nil
}

// ListMembers lists an account's members. Operators and the account's owners.
func (s *Service) ListMembers(ctx context.Context, accountID string, page keyplane.Page) ([]*keyplane.Member, string, error) {
	if _, err := requireOwner(ctx, accountID); err != nil {
		return nil, "", err
	}
	if !validID(accountID) {
		return nil, "", keyplane.Errorf(keyplane.ENOTFOUND, "account not found")
	}
	limit, err := pageLimit(page.Limit)
	if err != nil {
		return nil, "", err
	}
	page.Limit = limit
	return s.store.ListMembers(ctx, accountID, page)
}

// UpdateMember changes a member's role or status. Operators and owners of the
// member's account; an account always keeps an active owner. Disabling a
// member signs them out everywhere.
func (s *Service) UpdateMember(ctx context.Context, id string, up MemberUpdate) (*keyplane.Member, error) {
	current, err := s.Member(ctx, id)
	if err != nil {
		return nil, err
	}
	if _, err := requireOwner(ctx, current.AccountID); err != nil {
		return nil, err
	}
	var v keyplane.Validation
	if up.Role != nil {
		validRole(&v, "role", *up.Role)
	}
	if up.Status != nil && !up.Status.Valid() {
		v.Add("status", "%q: want active or disabled", *up.Status)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	ctx, trail := audited(ctx)
	m, err := s.store.UpdateMember(ctx, id, func(m *keyplane.Member) error {
		details := auditEmail(map[string]any{"member_id": m.ID}, m.Email)
		if up.Role != nil && *up.Role != m.Role {
			details["role"] = map[string]any{"from": m.Role, "to": *up.Role}
			m.Role = *up.Role
		}
		if up.Status != nil && *up.Status != m.Status {
			details["status"] = map[string]any{"from": m.Status, "to": *up.Status}
			m.Status = *up.Status
		}
		m.UpdatedAt = s.now()
		trail.Add(s.event(ctx, keyplane.AuditMemberUpdated, m.AccountID, "", details))
		raise(trail, memberEvent(keyplane.EventMemberUpdated, m, m.UpdatedAt))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if m.Status == keyplane.MemberDisabled {
		if err := s.store.DeleteMemberSessions(ctx, m.ID); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// InviteMember makes a single-use link that lets the person with email join
// the account with role. Operators and the account's owners. The token is
// returned only here.
func (s *Service) InviteMember(ctx context.Context, accountID, email string, role keyplane.MemberRole) (*CreatedInvite, error) {
	a, err := requireOwner(ctx, accountID)
	if err != nil {
		return nil, err
	}
	if _, err := s.Account(ctx, accountID); err != nil {
		return nil, err
	}
	var v keyplane.Validation
	email = normalEmail(&v, "email", email)
	validRole(&v, "role", role)
	if err := v.Err(); err != nil {
		return nil, err
	}
	// Only this account's members: whether the email is a member elsewhere
	// is not this account's business.
	if _, err := s.store.MemberByEmail(ctx, accountID, email); err == nil {
		return nil, keyplane.Errorf(keyplane.ECONFLICT, "this account already has a member with this email")
	} else if keyplane.ErrorCode(err) != keyplane.ENOTFOUND {
		return nil, err
	}
	token := newSecret()
	now := s.now()
	inv := &keyplane.Invite{ID: newID("inv"), AccountID: accountID, Email: email, Role: role, Hash: apikey.Hash(token),
		CreatedBy: a.ID, CreatedAt: now, ExpiresAt: now.Add(InviteTTL)}
	ev := s.event(ctx, keyplane.AuditMemberInvited, accountID, "", auditEmail(map[string]any{"invite_id": inv.ID, "role": role, "expires_at": inv.ExpiresAt}, email))
	if err := s.store.CreateInvite(withEvents(ctx, ev), inv); err != nil {
		return nil, err
	}
	return &CreatedInvite{Invite: inv, Token: token}, nil
}

// PendingInvites lists an account's usable invites. Operators and owners.
func (s *Service) PendingInvites(ctx context.Context, accountID string) ([]*keyplane.Invite, error) {
	if _, err := requireOwner(ctx, accountID); err != nil {
		return nil, err
	}
	if !validID(accountID) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "account not found")
	}
	return s.store.PendingInvites(ctx, accountID, s.now())
}

// CancelInvite deletes an invite, so its link stops working.
func (s *Service) CancelInvite(ctx context.Context, id string) error {
	a, err := actor(ctx)
	if err != nil {
		return err
	}
	if !validID(id) {
		return keyplane.Errorf(keyplane.ENOTFOUND, "invite not found")
	}
	inv, err := s.store.Invite(ctx, id)
	if err != nil {
		return err
	}
	if !a.CanSee(inv.AccountID) {
		return keyplane.Errorf(keyplane.ENOTFOUND, "invite not found")
	}
	if _, err := requireOwner(ctx, inv.AccountID); err != nil {
		return err
	}
	ev := s.event(ctx, keyplane.AuditInviteCancelled, inv.AccountID, "", auditEmail(map[string]any{"invite_id": inv.ID}, inv.Email))
	return s.store.DeleteInvite(withEvents(ctx, ev), id)
}

// InviteByToken returns the usable invite a link carries; anyone holding the
// link may read it (it is the credential).
func (s *Service) InviteByToken(ctx context.Context, token string) (*keyplane.Invite, error) {
	hash, ok := secretHash(token)
	if !ok {
		return nil, errInviteUnusable
	}
	inv, err := s.store.InviteByHash(ctx, hash)
	if keyplane.ErrorCode(err) == keyplane.ENOTFOUND {
		return nil, errInviteUnusable
	} else if err != nil {
		return nil, err
	}
	if inv.UsedAt != nil || !s.now().Before(inv.ExpiresAt) {
		return nil, errInviteUnusable
	}
	return inv, nil
}

var errInviteUnusable = keyplane.Errorf(keyplane.ENOTFOUND, "this invite link is not valid: it was used, cancelled or has expired; ask an owner of the account for a new one")

// AcceptInvite creates the member an invite admits, with password. It works
// once, before the invite expires.
func (s *Service) AcceptInvite(ctx context.Context, token, pw string) (*keyplane.Member, error) {
	hash, ok := secretHash(token)
	if !ok {
		return nil, errInviteUnusable
	}
	var v keyplane.Validation
	validPassword(&v, "password", pw)
	if err := v.Err(); err != nil {
		return nil, err
	}
	// Hashed before the transaction: it takes tens of milliseconds.
	hashed := password.Hash(pw, s.passwords)
	now := s.now()
	ctx, trail := audited(ctx)
	m, err := s.store.UseInvite(ctx, hash, func(inv *keyplane.Invite) (*keyplane.Member, error) {
		if inv.UsedAt != nil || !now.Before(inv.ExpiresAt) {
			return nil, errInviteUnusable
		}
		inv.UsedAt = &now
		m := &keyplane.Member{ID: newID("mem"), AccountID: inv.AccountID, Email: inv.Email, PasswordHash: hashed,
			Role: inv.Role, Status: keyplane.MemberActive, CreatedAt: now, UpdatedAt: now}
		ev := s.event(ctx, keyplane.AuditMemberJoined, inv.AccountID, "", auditEmail(map[string]any{"member_id": m.ID, "role": m.Role, "invite_id": inv.ID}, m.Email))
		ev.Actor = keyplane.AuditActor{Kind: "member", ID: m.ID}
		trail.Add(ev)
		raise(trail, memberEvent(keyplane.EventMemberCreated, m, now))
		return m, nil
	})
	if keyplane.ErrorCode(err) == keyplane.ENOTFOUND {
		return nil, errInviteUnusable
	}
	return m, err
}

// SignUpInput creates an account and its first owner from the portal.
type SignUpInput struct {
	AccountName string
	Email       string
	Password    string
}

// withEvents returns a context whose next store write records events with it.
func withEvents(ctx context.Context, events ...*keyplane.AuditEvent) context.Context {
	ctx, _ = audited(ctx, events...)
	return ctx
}

// InviteURL is the link that accepts an invite, on the portal at base: the
// token travels in the query string, which request logs leave out.
func InviteURL(base, token string) string {
	return base + "/portal/invite?token=" + url.QueryEscape(token)
}
