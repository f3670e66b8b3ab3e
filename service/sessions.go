package service

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"

	"math"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/password"
)

// Session lifetimes, unless Config sets others.
const (
	DefaultSessionIdle = 30 * time.Minute // signed out after this long without a request
	DefaultSessionMax  = 12 * time.Hour   // signed out this long after signing in, however active
)

// touchEvery is how stale a session's last-seen time may get before a request
// writes it: idle expiry needs minutes, not a write per page view.
const touchEvery = time.Minute

// SignedIn is a new session with its cookie token, which exists only here;
// or, with Session nil, the accounts to choose from when the password opens
// several of the email's memberships.
type SignedIn struct {
	Session *keyplane.Session
	Member  *keyplane.Member
	Token   string
	Choices []*keyplane.Account
}

// PortalSession is who a session cookie belongs to.
type PortalSession struct {
	Actor   keyplane.Actor
	Member  *keyplane.Member
	Session *keyplane.Session
}

var errWrongPassword = keyplane.Errorf(keyplane.EUNAUTHORIZED, "wrong email or password")

var errSessionEnded = keyplane.Errorf(keyplane.EUNAUTHORIZED, "your session has ended (expired or signed out); sign in again")

// maxMemberships bounds how many of an email's memberships one sign-in
// checks the password of (each check costs tens of milliseconds): the
// oldest. A membership beyond them is reached by signing in to its account.
const maxMemberships = 10

// SignIn checks an email and password and opens a session. An email may be
// a member of several accounts, each membership with its own password: the
// password is checked against each. When it opens exactly one active
// membership, that member is signed in; when it opens several, no session
// is opened and SignedIn.Choices lists their accounts, for the caller to ask
// which and call SignInToAccount. Only someone who knows the password sees
// which accounts it opens.
//
// Failures are throttled per client address and per email and address (see
// takeSignIn); an unknown email costs the same time as a wrong password.
func (s *Service) SignIn(ctx context.Context, email, pw string, ip netip.Addr) (*SignedIn, error) {
	return s.signIn(ctx, "", email, pw, ip)
}

// SignInToAccount is SignIn for the email's membership of one account.
func (s *Service) SignInToAccount(ctx context.Context, accountID, email, pw string, ip netip.Addr) (*SignedIn, error) {
	if !validID(accountID) {
		accountID = "acc_none" // looks nothing up, but costs and counts as a try
	}
	return s.signIn(ctx, accountID, email, pw, ip)
}

func (s *Service) signIn(ctx context.Context, accountID, email, pw string, ip netip.Addr) (*SignedIn, error) {
	typed := email // for the log, which must see what normalising hides
	email = normalEmail(&keyplane.Validation{}, "email", email)
	if len(email) > 254 { // no member's is longer: bound what the throttle keeps
		email = strings.ToValidUTF8(email[:254], "")
	}
	now := s.clock()
	// The attempt spends its allowance before the password is checked, so
	// concurrent guesses cannot all pass the throttle; a right password
	// gives it back.
	if err := s.signins.takeSignIn(now, email, ip); err != nil {
		return nil, err
	}
	if len(pw) > maxPasswordLen {
		pw = pw[:maxPasswordLen] // bounded work; such a password never matches
	}
	var members []*keyplane.Member
	if accountID != "" {
		m, err := s.store.MemberByEmail(ctx, accountID, email)
		if err != nil && keyplane.ErrorCode(err) != keyplane.ENOTFOUND {
			return nil, err
		}
		if m != nil {
			members = append(members, m)
		}
	} else {
		var err error
		if members, err = s.store.MembersByEmail(ctx, email, maxMemberships); err != nil {
			return nil, err
		}
	}
	if len(members) == 0 {
		_, _ = password.Verify(pw, s.dummyHash())
		if err := s.signInFailed(ctx, typed, nil, "unknown_email"); err != nil {
			return nil, err
		}
		return nil, errWrongPassword
	}
	var opened, active []*keyplane.Member
	for _, m := range members {
		if ok, err := password.Verify(pw, m.PasswordHash); ok && err == nil {
			opened = append(opened, m)
			if m.Status == keyplane.MemberActive {
				active = append(active, m)
			}
		}
	}
	if len(opened) == 0 {
		// With several memberships the attempt may have been meant for any
		// of them, and an account must not see attempts on another's (its
		// owner may have invited the email to watch them): the operator's.
		var m *keyplane.Member
		if len(members) == 1 {
			m = members[0]
		}
		if err := s.signInFailed(ctx, typed, m, "wrong_password"); err != nil {
			return nil, err
		}
		return nil, errWrongPassword
	}
	s.signins.refund(signinKeys(email, ip)...)
	if len(active) == 0 {
		for _, m := range opened {
			if err := s.signInFailed(ctx, typed, m, "disabled"); err != nil {
				return nil, err
			}
		}
		return nil, keyplane.Errorf(keyplane.EFORBIDDEN, "this member is disabled; ask an owner of your account")
	}
	if len(active) > 1 {
		choices := make([]*keyplane.Account, 0, len(active))
		for _, m := range active {
			a, err := s.store.Account(ctx, m.AccountID)
			if err != nil {
				return nil, err
			}
			choices = append(choices, a)
		}
		return &SignedIn{Choices: choices}, nil
	}
	m := active[0]
	ev := s.event(ctx, keyplane.AuditMemberSignedIn, m.AccountID, "", auditEmail(map[string]any{}, m.Email))
	ev.Actor = keyplane.AuditActor{Kind: "member", ID: m.ID}
	ctx, _ = audited(ctx, ev) // written with the session
	return s.openSession(ctx, m)
}

// signInFailed records a refused sign-in: in the member's account's log
// when m is known, else in the operator's; typed is the email as typed,
// recorded only when shaped like one. Throttled attempts are not recorded,
// so a flood cannot flood the log.
func (s *Service) signInFailed(ctx context.Context, email string, m *keyplane.Member, reason string) error {
	ev := keyplane.AuditEvent{Type: keyplane.AuditMemberSignInFailed, Actor: keyplane.AuditActor{Kind: "member"},
		Details: auditDetails(auditEmail(map[string]any{"reason": reason}, email))}
	if m != nil {
		ev.AccountID, ev.Actor.ID = m.AccountID, m.ID
	}
	_, err := s.RecordAudit(ctx, ev)
	return err
}

func (s *Service) openSession(ctx context.Context, m *keyplane.Member) (*SignedIn, error) {
	now := s.now()
	token := newSecret()
	hash, _ := secretHash(token)
	ses := &keyplane.Session{ID: newID("ses"), Hash: hash, MemberID: m.ID, AccountID: m.AccountID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.sessionMax)}
	if err := s.store.CreateSession(ctx, ses); err != nil {
		return nil, err
	}
	// Sign-ins are rare: a good moment to forget sessions nobody will use.
	if _, err := s.store.DeleteStaleSessions(ctx, now, now.Add(-s.sessionIdle)); err != nil {
		return nil, err
	}
	return &SignedIn{Session: ses, Member: m, Token: token}, nil
}

// dummyHash is a hash of nothing anyone knows, with the configured cost,
// verified against when an email is unknown.
func (s *Service) dummyHash() string {
	s.dummyOnce.Do(func() { s.dummy = password.Hash(newSecret(), s.passwords) })
	return s.dummy
}

// SignUp creates an account and its first owner, and signs the owner in. It
// is refused unless the operator allowed sign-up; attempts are throttled per
// client address.
func (s *Service) SignUp(ctx context.Context, in SignUpInput, ip netip.Addr) (*SignedIn, error) {
	if !s.signup {
		return nil, keyplane.Errorf(keyplane.EFORBIDDEN, "sign-up is off: ask the operator for an account or an invite")
	}
	now := s.clock()
	// Every sign-up counts: accounts are not free.
	if err := s.signins.take(now, ipSource(ip)); err != nil {
		return nil, err
	}
	var v keyplane.Validation
	name := validName(&v, "account_name", in.AccountName)
	email := normalEmail(&v, "email", in.Email)
	validPassword(&v, "password", in.Password)
	if err := v.Err(); err != nil {
		return nil, err
	}
	t := s.now()
	a := &keyplane.Account{ID: newID("acc"), Name: name, Plan: keyplane.DefaultPlanName, AllowedScopes: []string{}, Status: keyplane.AccountActive, CreatedAt: t, UpdatedAt: t}
	m := &keyplane.Member{ID: newID("mem"), AccountID: a.ID, Email: email, PasswordHash: password.Hash(in.Password, s.passwords),
		Role: keyplane.MemberOwner, Status: keyplane.MemberActive, CreatedAt: t, UpdatedAt: t}
	by := keyplane.AuditActor{Kind: "member", ID: m.ID}
	created := s.event(ctx, keyplane.AuditAccountCreated, a.ID, "", map[string]any{"name": a.Name, "plan": a.Plan, "signup": true})
	owner := s.event(ctx, keyplane.AuditMemberCreated, a.ID, "", auditEmail(map[string]any{"member_id": m.ID, "role": m.Role}, m.Email))
	created.Actor, owner.Actor = by, by
	if err := s.store.CreateMember(withEvents(ctx, created, owner), m, a); err != nil {
		return nil, err
	}
	return s.openSession(ctx, m)
}

// SignupAllowed reports whether the portal offers sign-up.
func (s *Service) SignupAllowed() bool { return s.signup }

// AuthenticateSession returns who a session cookie's token belongs to. A
// session ends at its absolute expiry, after an idle spell, when signed out,
// or when its member is disabled.
func (s *Service) AuthenticateSession(ctx context.Context, token string) (*PortalSession, error) {
	hash, ok := secretHash(token)
	if !ok {
		return nil, errSessionEnded
	}
	ses, err := s.store.SessionByHash(ctx, hash)
	if keyplane.ErrorCode(err) == keyplane.ENOTFOUND {
		return nil, errSessionEnded
	} else if err != nil {
		return nil, err
	}
	now := s.now()
	if !now.Before(ses.ExpiresAt) || now.Sub(ses.LastSeenAt) >= s.sessionIdle {
		if err := s.store.DeleteSession(ctx, ses.ID); err != nil {
			return nil, err
		}
		return nil, errSessionEnded
	}
	m, err := s.store.Member(ctx, ses.MemberID)
	if keyplane.ErrorCode(err) == keyplane.ENOTFOUND {
		return nil, errSessionEnded
	} else if err != nil {
		return nil, err
	}
	if m.Status != keyplane.MemberActive {
		return nil, errSessionEnded
	}
	if now.Sub(ses.LastSeenAt) >= touchEvery {
		if err := s.store.TouchSession(ctx, ses.ID, now); err != nil {
			return nil, err
		}
		ses.LastSeenAt = now
	}
	return &PortalSession{
		Actor:   keyplane.Actor{Kind: "member", ID: m.ID, AccountID: m.AccountID, MemberRole: m.Role, SessionID: ses.ID},
		Member:  m,
		Session: ses,
	}, nil
}

// SignOut ends the session of a cookie's token. Ending one that has already
// ended is not an error.
func (s *Service) SignOut(ctx context.Context, token string) error {
	hash, ok := secretHash(token)
	if !ok {
		return nil
	}
	ses, err := s.store.SessionByHash(ctx, hash)
	if keyplane.ErrorCode(err) == keyplane.ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	ev := s.event(ctx, keyplane.AuditMemberSignedOut, ses.AccountID, "", nil)
	ev.Actor = keyplane.AuditActor{Kind: "member", ID: ses.MemberID}
	ctx, _ = audited(ctx, ev)
	return s.store.DeleteSession(ctx, ses.ID)
}

// CSRFToken is the anti-forgery token of a session: an HMAC of a fixed label
// keyed by the session's own secret. It needs no storage, changes with every
// session, and cannot be made without the cookie, which pages on other sites
// can send but never read.
func CSRFToken(sessionToken string) string {
	mac := hmac.New(sha256.New, []byte(sessionToken))
	mac.Write([]byte("keyplane portal csrf v1"))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// ValidCSRF reports, in constant time, whether csrf is the session's token.
func ValidCSRF(sessionToken, csrf string) bool {
	return csrf != "" && hmac.Equal([]byte(CSRFToken(sessionToken)), []byte(csrf))
}

// ipSource is the throttle key of a client address: the address, or its
// /64 for IPv6, where one subscriber usually holds the whole block.
func ipSource(ip netip.Addr) string {
	ip = ip.Unmap()
	if !ip.IsValid() {
		return "ip:unknown"
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return "ip:" + p.String()
	}
	return "ip:" + ip.String()
}

// signinThrottle limits failed sign-ins with GCRA (as ratelimit.Throttle
// does for bad keys): each failure spends allowance, which comes back
// steadily; with none left, attempts are refused. Sign-ins are rare, so one
// mutex and a map suffice; the map is bounded.
//
// Limits are per client address and per email and address, never per email
// alone: that would let anyone lock a member out by failing on purpose. The
// email's own count only tightens the rule for addresses that have been
// failing on it; see takeSignIn.
type signinThrottle struct {
	mu       sync.Mutex
	tat      map[string]time.Time // theoretical arrival time of the next failure
	maxItems int
}

type signinLimit struct {
	failures int
	window   time.Duration
}

func (l signinLimit) interval() time.Duration { return l.window / time.Duration(l.failures) }

// The allowances, each per 15 minutes: 5 failures per email from one address
// (guessing one person's password), 30 per address over all emails
// (guessing many), 100 per email over all addresses (guessing one person's
// password from many addresses: past it, an address gets no second failure
// on that email until its first is forgiven).
var (
	pairLimit  = signinLimit{failures: 5, window: 15 * time.Minute}
	ipLimit    = signinLimit{failures: 30, window: 15 * time.Minute}
	emailLimit = signinLimit{failures: 100, window: 15 * time.Minute}
)

func newSigninThrottle() *signinThrottle {
	return &signinThrottle{tat: map[string]time.Time{}, maxItems: 100_000}
}

func limitOf(key string) signinLimit {
	switch {
	case strings.HasPrefix(key, "ip:"):
		return ipLimit
	case strings.HasPrefix(key, "pair:"):
		return pairLimit
	}
	return emailLimit
}

// waitLocked is how long until key has allowance for one more failure; not
// positive when it has.
func (t *signinThrottle) waitLocked(now time.Time, key string) time.Duration {
	l := limitOf(key)
	return t.tat[key].Add(l.interval()).Sub(now.Add(l.window))
}

func tooMany(wait time.Duration) error {
	minutes := int(math.Ceil(wait.Minutes()))
	return keyplane.Errorf(keyplane.ETOOMANY, "too many failed sign-ins; try again in %d minute%s", minutes, plural(minutes))
}

// take refuses when any key has no allowance left, and otherwise spends one
// failure of each, under one lock so concurrent attempts cannot all pass.
func (t *signinThrottle) take(now time.Time, keys ...string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		wait = max(wait, t.waitLocked(now, k))
	}
	if wait > 0 {
		return tooMany(wait)
	}
	t.failedLocked(now, keys...)
	return nil
}

// signinKeys are the throttle keys of a sign-in attempt: its address, its
// email and address together, and its email.
func signinKeys(email string, ip netip.Addr) []string {
	src := ipSource(ip)
	return []string{src, "pair:" + src + "|" + email, "email:" + email}
}

// takeSignIn is take for a sign-in attempt: its address and its email from
// that address must have allowance left. The email's own allowance, over
// all addresses, refuses no one by itself; once it is spent, an address
// that has failed on the email and not yet been forgiven is refused. So a
// member signing in from an address that has not been failing always gets
// to try their password, however many addresses guess at it, and the
// guessers get one failure each instead of five.
func (t *signinThrottle) takeSignIn(now time.Time, email string, ip netip.Addr) error {
	keys := signinKeys(email, ip)
	src, pair, em := keys[0], keys[1], keys[2]
	t.mu.Lock()
	defer t.mu.Unlock()
	wait := max(t.waitLocked(now, src), t.waitLocked(now, pair))
	if t.waitLocked(now, em) > 0 {
		wait = max(wait, t.tat[pair].Sub(now))
	}
	if wait > 0 {
		return tooMany(wait)
	}
	t.failedLocked(now, keys...)
	return nil
}

// refund gives back one failure of each key's allowance, for an attempt
// that turned out not to be one.
func (t *signinThrottle) refund(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		if tat, ok := t.tat[k]; ok {
			t.tat[k] = tat.Add(-limitOf(k).interval())
		}
	}
}

// failedLocked spends one failure of each key's allowance. An email's is
// spent past empty (the others never are: they refuse first), so it is
// capped at one window: it recovers within one after the guessing stops.
func (t *signinThrottle) failedLocked(now time.Time, keys ...string) {
	if len(t.tat) >= t.maxItems {
		for k, tat := range t.tat { // forget those whose allowance is whole again
			if tat.Before(now) {
				delete(t.tat, k)
			}
		}
	}
	for _, k := range keys {
		if _, ok := t.tat[k]; !ok && len(t.tat) >= t.maxItems {
			continue // fail open rather than grow without bound
		}
		l := limitOf(k)
		tat := t.tat[k]
		if tat.Before(now) {
			tat = now
		}
		tat = tat.Add(l.interval())
		if limit := now.Add(l.window); tat.After(limit) {
			tat = limit
		}
		t.tat[k] = tat
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
