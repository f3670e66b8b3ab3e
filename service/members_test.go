package service_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/password"
	"github.com/keyplane/keyplane/service"
	"github.com/keyplane/keyplane/teststore"
)

// cheapPasswords keeps hashing fast under -race; the format is the real one.
var cheapPasswords = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

type portalEnv struct {
	*env
	acc *keyplane.Account
}

func newPortalEnv(t *testing.T, signup bool) *portalEnv {
	t.Helper()
	store := teststore.New(t)
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	svc, err := service.New(store, service.Config{Now: c.Now, Signup: signup, PasswordParams: cheapPasswords})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{svc: svc, store: store, clock: c,
		ctx: keyplane.NewContextWithActor(context.Background(), keyplane.Actor{Kind: "token", ID: "tok_test", Role: keyplane.RoleAdmin})}
	return &portalEnv{env: e, acc: e.account(t, "data:*")}
}

const pw = "a long enough password"

var client = netip.MustParseAddr("192.0.2.7")

func (e *portalEnv) member(t *testing.T, accountID string, role keyplane.MemberRole) *keyplane.Member {
	t.Helper()
	m, err := e.svc.CreateMember(e.ctx, accountID, service.MemberInput{Email: strings.ToUpper(string(role)) + "-" + accountID[len(accountID)-6:] + "@Example.com ", Role: role, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// as signs m in and returns a context acting as that session.
func (e *portalEnv) as(t *testing.T, m *keyplane.Member) context.Context {
	t.Helper()
	in, err := e.svc.SignIn(context.Background(), m.Email, pw, client)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := e.svc.AuthenticateSession(context.Background(), in.Token)
	if err != nil {
		t.Fatal(err)
	}
	return keyplane.NewContextWithActor(context.Background(), ps.Actor)
}

func TestMemberCreateValidates(t *testing.T) {
	e := newPortalEnv(t, false)
	m := e.member(t, e.acc.ID, keyplane.MemberOwner)
	if m.Email != strings.ToLower(strings.TrimSpace(m.Email)) || !strings.HasSuffix(m.Email, "@example.com") {
		t.Fatalf("email %q is not normalised", m.Email)
	}
	if !strings.HasPrefix(m.PasswordHash, "$argon2id$v=19$") || strings.Contains(m.PasswordHash, pw) {
		t.Fatalf("password hash %q", m.PasswordHash)
	}
	_, err := e.svc.CreateMember(e.ctx, e.acc.ID, service.MemberInput{Email: "not an email", Role: "boss", Password: "short"})
	var ke *keyplane.Error
	if !asError(err, &ke) || ke.Code != keyplane.EINVALID || len(ke.Fields) != 3 {
		t.Fatalf("err = %v, want three invalid fields", err)
	}
	_, err = e.svc.CreateMember(e.ctx, e.acc.ID, service.MemberInput{Email: strings.ToUpper(m.Email), Role: keyplane.MemberViewer, Password: pw})
	wantCode(t, err, keyplane.ECONFLICT)
	_, err = e.svc.CreateMember(e.ctx, "acc_01jzzzzzzzzzzzzzzzzzzzzzzz", service.MemberInput{Email: "x@example.com", Role: keyplane.MemberViewer, Password: pw})
	wantCode(t, err, keyplane.ENOTFOUND)
	// Members do not create members directly; owners invite.
	_, err = e.svc.CreateMember(e.as(t, m), e.acc.ID, service.MemberInput{Email: "y@example.com", Role: keyplane.MemberViewer, Password: pw})
	wantCode(t, err, keyplane.EFORBIDDEN)
}

func TestSignInAndSessions(t *testing.T) {
	e := newPortalEnv(t, false)
	m := e.member(t, e.acc.ID, keyplane.MemberDeveloper)

	_, err := e.svc.SignIn(context.Background(), m.Email, "wrong password!!", client)
	wantCode(t, err, keyplane.EUNAUTHORIZED)
	_, err = e.svc.SignIn(context.Background(), "nobody@example.com", pw, client)
	if err == nil || err.Error() != "keyplane error: code=unauthorized message=wrong email or password" {
		t.Fatalf("unknown email: %v; want the same answer as a wrong password", err)
	}

	in, err := e.svc.SignIn(context.Background(), "  "+strings.ToUpper(m.Email), pw, client)
	if err != nil {
		t.Fatal(err)
	}
	if in.Member.ID != m.ID || len(in.Token) != 43 || in.Session.Hash == [32]byte{} {
		t.Fatalf("signed in %+v", in)
	}
	ps, err := e.svc.AuthenticateSession(context.Background(), in.Token)
	if err != nil {
		t.Fatal(err)
	}
	want := keyplane.Actor{Kind: "member", ID: m.ID, AccountID: e.acc.ID, MemberRole: keyplane.MemberDeveloper, SessionID: in.Session.ID}
	if ps.Actor != want {
		t.Fatalf("actor %+v, want %+v", ps.Actor, want)
	}
	// The token is not stored: the store holds its hash only.
	stored, err := e.store.SessionByHash(context.Background(), in.Session.Hash)
	if err != nil || stored.ID != in.Session.ID {
		t.Fatalf("stored session %+v, %v", stored, err)
	}

	// Idle expiry: activity keeps the session, 30 idle minutes end it.
	e.clock.Add(20 * time.Minute)
	if _, err := e.svc.AuthenticateSession(context.Background(), in.Token); err != nil {
		t.Fatalf("active session refused: %v", err)
	}
	e.clock.Add(29 * time.Minute)
	if _, err := e.svc.AuthenticateSession(context.Background(), in.Token); err != nil {
		t.Fatalf("session refused within the idle limit of its last use: %v", err)
	}
	e.clock.Add(31 * time.Minute)
	_, err = e.svc.AuthenticateSession(context.Background(), in.Token)
	wantCode(t, err, keyplane.EUNAUTHORIZED)

	// Absolute expiry: 12 hours, however active.
	in, _ = e.svc.SignIn(context.Background(), m.Email, pw, client)
	for range 12 * 4 {
		e.clock.Add(15 * time.Minute)
		_, err = e.svc.AuthenticateSession(context.Background(), in.Token)
	}
	wantCode(t, err, keyplane.EUNAUTHORIZED)

	// Sign-out ends the session; twice is fine.
	in, _ = e.svc.SignIn(context.Background(), m.Email, pw, client)
	if err := e.svc.SignOut(context.Background(), in.Token); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SignOut(context.Background(), in.Token); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.AuthenticateSession(context.Background(), in.Token)
	wantCode(t, err, keyplane.EUNAUTHORIZED)
	for _, junk := range []string{"", "x", strings.Repeat("A", 43), strings.Repeat("!", 43)} {
		_, err = e.svc.AuthenticateSession(context.Background(), junk)
		wantCode(t, err, keyplane.EUNAUTHORIZED)
	}
}

func TestSignInThrottle(t *testing.T) {
	e := newPortalEnv(t, false)
	m := e.member(t, e.acc.ID, keyplane.MemberViewer)
	bg := context.Background()
	// Per email and address: five failures, then that address is refused
	// for that email even with the right password.
	guesser := netip.MustParseAddr("10.0.0.1")
	for range 5 {
		_, err := e.svc.SignIn(bg, m.Email, "wrong password!!", guesser)
		wantCode(t, err, keyplane.EUNAUTHORIZED)
	}
	_, err := e.svc.SignIn(bg, m.Email, pw, guesser)
	wantCode(t, err, keyplane.ETOOMANY)
	if !strings.Contains(keyplane.ErrorMessage(err), "try again in 3 minutes") {
		t.Fatalf("message %q", keyplane.ErrorMessage(err))
	}
	e.clock.Add(3 * time.Minute)
	if _, err := e.svc.SignIn(bg, m.Email, pw, guesser); err != nil {
		t.Fatalf("after the wait: %v", err)
	}

	// Per address: 30 failures over many emails, then the address is refused
	// for every email; another address is not.
	attacker := netip.MustParseAddr("2001:db8::1")
	for i := range 30 {
		_, err := e.svc.SignIn(bg, "guess"+string(rune('a'+i%26))+string(rune('a'+i/26))+"@example.com", "whatever password", attacker)
		wantCode(t, err, keyplane.EUNAUTHORIZED)
	}
	_, err = e.svc.SignIn(bg, m.Email, pw, netip.MustParseAddr("2001:db8::2")) // same /64
	wantCode(t, err, keyplane.ETOOMANY)
	if _, err := e.svc.SignIn(bg, m.Email, pw, netip.MustParseAddr("2001:db8:1::1")); err != nil {
		t.Fatalf("another network: %v", err)
	}
}

// Nobody locks a member out by failing on their email: the member, from an
// address that has not been failing, signs in at once.
func TestSignInThrottleDoesNotLockMembersOut(t *testing.T) {
	e := newPortalEnv(t, false)
	m := e.member(t, e.acc.ID, keyplane.MemberViewer)
	bg := context.Background()
	home := netip.MustParseAddr("198.51.100.20")
	attacker := netip.MustParseAddr("203.0.113.66")
	for i := range 50 {
		_, err := e.svc.SignIn(bg, m.Email, "wrong password!!", attacker)
		if i < 5 {
			wantCode(t, err, keyplane.EUNAUTHORIZED)
		} else {
			wantCode(t, err, keyplane.ETOOMANY)
		}
	}
	if _, err := e.svc.SignIn(bg, m.Email, pw, home); err != nil {
		t.Fatalf("the member, from another address: %v", err)
	}

	// Many addresses, one failure each, past the email's allowance: each
	// address that has failed on the email is refused its next try, and the
	// member from a clean address still gets in.
	for i := range 120 {
		_, err := e.svc.SignIn(bg, m.Email, "wrong password!!", netip.AddrFrom4([4]byte{10, 9, byte(i / 250), byte(i % 250)}))
		wantCode(t, err, keyplane.EUNAUTHORIZED)
	}
	_, err := e.svc.SignIn(bg, m.Email, "another guess!!", netip.AddrFrom4([4]byte{10, 9, 0, 7}))
	wantCode(t, err, keyplane.ETOOMANY)
	if _, err := e.svc.SignIn(bg, m.Email, pw, home); err != nil {
		t.Fatalf("the member, while many addresses guess: %v", err)
	}
	if _, err := e.svc.SignIn(bg, m.Email, pw, netip.MustParseAddr("198.51.100.21")); err != nil {
		t.Fatalf("the member, from a new address, while many addresses guess: %v", err)
	}
}

// Concurrent guesses must not all pass the throttle before any of them is
// counted: each takes its allowance before the password is checked.
func TestSignInThrottleConcurrent(t *testing.T) {
	e := newPortalEnv(t, false)
	// A costlier hash widens the window between the throttle's check and
	// the failure being counted, as the real cost does.
	slow, err := service.New(e.store, service.Config{Now: e.clock.Now, PasswordParams: password.Params{Memory: 8 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = slow
	m := e.member(t, e.acc.ID, keyplane.MemberViewer)
	const n = 40
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := e.svc.SignIn(context.Background(), m.Email, "wrong password!!", netip.MustParseAddr("10.0.1.1"))
			errs <- err
		}()
	}
	checked := 0
	for range n {
		if err := <-errs; keyplane.ErrorCode(err) == keyplane.EUNAUTHORIZED {
			checked++
		} else {
			wantCode(t, err, keyplane.ETOOMANY)
		}
	}
	if checked > 5 {
		t.Fatalf("%d concurrent guesses were checked, want at most 5", checked)
	}
	// A right password does not spend the allowance: signing in again and
	// again is not throttled.
	e.clock.Add(15 * time.Minute)
	for range 10 {
		if _, err := e.svc.SignIn(context.Background(), m.Email, pw, client); err != nil {
			t.Fatal(err)
		}
	}
}

// The plan's rate limits and quota are the operator's: a member cannot give
// a key its own, or an owner could lift the account's limits.
func TestMembersCannotSetLimits(t *testing.T) {
	e := newPortalEnv(t, false)
	owner := e.as(t, e.member(t, e.acc.ID, keyplane.MemberOwner))
	dev := e.as(t, e.member(t, e.acc.ID, keyplane.MemberDeveloper))
	k := e.key(t, e.acc.ID, service.KeyInput{Scopes: []string{"data:read"}})
	big := &keyplane.Quota{Limit: 1 << 40, Period: keyplane.QuotaDay}
	unlimited := []keyplane.RateLimitPolicy{{Name: "mine", WindowSeconds: 60, Algorithm: keyplane.TokenBucket}}
	for _, ctx := range []context.Context{owner, dev} {
		_, err := e.svc.CreateKey(ctx, e.acc.ID, service.KeyInput{Name: "q", Quota: big})
		wantCode(t, err, keyplane.EFORBIDDEN)
		_, err = e.svc.CreateKey(ctx, e.acc.ID, service.KeyInput{Name: "r", RateLimits: unlimited})
		wantCode(t, err, keyplane.EFORBIDDEN)
		_, err = e.svc.UpdateKey(ctx, k.ID, service.KeyUpdate{Quota: service.Optional[*keyplane.Quota]{Set: true, Value: big}})
		wantCode(t, err, keyplane.EFORBIDDEN)
		_, err = e.svc.UpdateKey(ctx, k.ID, service.KeyUpdate{Quota: service.Optional[*keyplane.Quota]{Set: true}})
		wantCode(t, err, keyplane.EFORBIDDEN)
		_, err = e.svc.UpdateKey(ctx, k.ID, service.KeyUpdate{RateLimits: service.Optional[[]keyplane.RateLimitPolicy]{Set: true, Value: unlimited}})
		wantCode(t, err, keyplane.EFORBIDDEN)
	}
	if got, _ := e.svc.Key(e.ctx, k.ID); got.Quota != nil || got.RateLimits != nil {
		t.Fatalf("a refused change was made: %+v", got)
	}
	// Operators still set them.
	if _, err := e.svc.UpdateKey(e.ctx, k.ID, service.KeyUpdate{Quota: service.Optional[*keyplane.Quota]{Set: true, Value: big}}); err != nil {
		t.Fatal(err)
	}
}

// An invite link used at once from several places admits one member.
func TestAcceptInviteConcurrent(t *testing.T) {
	e := newPortalEnv(t, false)
	owner := e.as(t, e.member(t, e.acc.ID, keyplane.MemberOwner))
	inv, err := e.svc.InviteMember(owner, e.acc.ID, "twice@example.com", keyplane.MemberViewer)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := e.svc.AcceptInvite(context.Background(), inv.Token, pw)
			errs <- err
		}()
	}
	joined := 0
	for range n {
		switch err := <-errs; keyplane.ErrorCode(err) {
		case "":
			joined++
		case keyplane.ENOTFOUND, keyplane.ECONFLICT:
		default:
			t.Fatal(err)
		}
	}
	members, _, err := e.svc.ListMembers(owner, e.acc.ID, keyplane.Page{})
	if joined != 1 || err != nil || len(members) != 2 {
		t.Fatalf("%d joined; members %d, %v", joined, len(members), err)
	}
}

func TestMemberRoles(t *testing.T) {
	e := newPortalEnv(t, false)
	other := e.account(t, "data:*")
	owner := e.as(t, e.member(t, e.acc.ID, keyplane.MemberOwner))
	dev := e.as(t, e.member(t, e.acc.ID, keyplane.MemberDeveloper))
	viewerMember := e.member(t, e.acc.ID, keyplane.MemberViewer)
	viewer := e.as(t, viewerMember)
	stranger := e.as(t, e.member(t, other.ID, keyplane.MemberOwner))
	k := e.key(t, e.acc.ID, service.KeyInput{Scopes: []string{"data:read"}})

	// Everyone in the account reads keys; a member of another account sees
	// neither the account nor the key.
	for _, ctx := range []context.Context{owner, dev, viewer} {
		if _, err := e.svc.Key(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.svc.ListKeys(ctx, e.acc.ID, "", keyplane.Page{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.svc.Key(stranger, k.ID)
	wantCode(t, err, keyplane.ENOTFOUND)
	_, err = e.svc.RevokeKey(stranger, k.ID)
	wantCode(t, err, keyplane.ENOTFOUND)
	_, _, err = e.svc.ListKeys(stranger, e.acc.ID, "", keyplane.Page{})
	wantCode(t, err, keyplane.ENOTFOUND)
	_, err = e.svc.InviteMember(stranger, e.acc.ID, "x@example.com", keyplane.MemberOwner)
	wantCode(t, err, keyplane.ENOTFOUND)

	// Another account's ids are not found, whatever the role: never 403.
	otherKey := e.key(t, other.ID, service.KeyInput{})
	_, err = e.svc.RevokeKey(viewer, otherKey.ID)
	wantCode(t, err, keyplane.ENOTFOUND)
	_, err = e.svc.CreateKey(viewer, other.ID, service.KeyInput{Name: "v"})
	wantCode(t, err, keyplane.ENOTFOUND)

	// Viewers change nothing.
	_, err = e.svc.CreateKey(viewer, e.acc.ID, service.KeyInput{Name: "v"})
	wantCode(t, err, keyplane.EFORBIDDEN)
	_, err = e.svc.RevokeKey(viewer, k.ID)
	wantCode(t, err, keyplane.EFORBIDDEN)
	_, err = e.svc.RollKey(viewer, k.ID, 0)
	wantCode(t, err, keyplane.EFORBIDDEN)
	_, err = e.svc.UpdateKey(viewer, k.ID, service.KeyUpdate{Name: service.Optional[string]{Set: true, Value: "x"}})
	wantCode(t, err, keyplane.EFORBIDDEN)
	if got, _ := e.svc.Key(e.ctx, k.ID); got.Status(e.clock.Now()) != keyplane.KeyActive || got.Name != k.Name {
		t.Fatalf("a refused change was made: %+v", got)
	}

	// Developers manage keys but not members; owners do both.
	created, err := e.svc.CreateKey(dev, e.acc.ID, service.KeyInput{Name: "dev's", Scopes: []string{"data:write"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.RollKey(dev, created.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.InviteMember(dev, e.acc.ID, "x@example.com", keyplane.MemberViewer)
	wantCode(t, err, keyplane.EFORBIDDEN)
	_, _, err = e.svc.ListMembers(dev, e.acc.ID, keyplane.Page{})
	wantCode(t, err, keyplane.EFORBIDDEN)
	if _, err := e.svc.RevokeKey(owner, k.ID); err != nil {
		t.Fatal(err)
	}
	members, _, err := e.svc.ListMembers(owner, e.acc.ID, keyplane.Page{})
	if err != nil || len(members) != 3 {
		t.Fatalf("members %v, %v", members, err)
	}

	// Members never do operator things.
	_, err = e.svc.CreateAccount(owner, service.AccountInput{Name: "mine"})
	wantCode(t, err, keyplane.EFORBIDDEN)
	_, _, err = e.svc.ListAccounts(owner, keyplane.Page{})
	wantCode(t, err, keyplane.EFORBIDDEN)
	_, err = e.svc.CreateToken(owner, service.TokenInput{Name: "t", Role: keyplane.RoleAdmin})
	wantCode(t, err, keyplane.EFORBIDDEN)

	// An owner promotes the viewer; the change applies to the next request.
	role := keyplane.MemberDeveloper
	if _, err := e.svc.UpdateMember(owner, viewerMember.ID, service.MemberUpdate{Role: &role}); err != nil {
		t.Fatal(err)
	}
	in, _ := e.svc.SignIn(context.Background(), viewerMember.Email, pw, client)
	ps, _ := e.svc.AuthenticateSession(context.Background(), in.Token)
	if ps.Actor.MemberRole != keyplane.MemberDeveloper {
		t.Fatalf("role %q after promotion", ps.Actor.MemberRole)
	}
	// Disabling signs the member out everywhere.
	disabled := keyplane.MemberDisabled
	if _, err := e.svc.UpdateMember(owner, viewerMember.ID, service.MemberUpdate{Status: &disabled}); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.AuthenticateSession(context.Background(), in.Token)
	wantCode(t, err, keyplane.EUNAUTHORIZED)
	_, err = e.svc.SignIn(context.Background(), viewerMember.Email, pw, client)
	wantCode(t, err, keyplane.EFORBIDDEN)
}

func TestLastOwnerStays(t *testing.T) {
	e := newPortalEnv(t, false)
	m := e.member(t, e.acc.ID, keyplane.MemberOwner)
	owner := e.as(t, m)
	viewer := keyplane.MemberViewer
	_, err := e.svc.UpdateMember(owner, m.ID, service.MemberUpdate{Role: &viewer})
	wantCode(t, err, keyplane.ECONFLICT)
	_, err = e.svc.UpdateMember(owner, m.ID, service.MemberUpdate{Role: ptr(keyplane.MemberRole("boss"))})
	wantCode(t, err, keyplane.EINVALID)
}

func TestInvites(t *testing.T) {
	e := newPortalEnv(t, false)
	owner := e.as(t, e.member(t, e.acc.ID, keyplane.MemberOwner))
	inv, err := e.svc.InviteMember(owner, e.acc.ID, " New@Example.com", keyplane.MemberDeveloper)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Email != "new@example.com" || len(inv.Token) != 43 || !inv.ExpiresAt.Equal(e.clock.Now().Add(service.InviteTTL)) {
		t.Fatalf("invite %+v", inv)
	}
	pending, err := e.svc.PendingInvites(owner, e.acc.ID)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending %v, %v", pending, err)
	}
	if got, err := e.svc.InviteByToken(context.Background(), inv.Token); err != nil || got.ID != inv.ID {
		t.Fatalf("InviteByToken = %+v, %v", got, err)
	}
	_, err = e.svc.AcceptInvite(context.Background(), inv.Token, "short")
	wantCode(t, err, keyplane.EINVALID)
	m, err := e.svc.AcceptInvite(context.Background(), inv.Token, pw)
	if err != nil {
		t.Fatal(err)
	}
	if m.Email != "new@example.com" || m.Role != keyplane.MemberDeveloper || m.AccountID != e.acc.ID {
		t.Fatalf("member %+v", m)
	}
	// Single use.
	_, err = e.svc.AcceptInvite(context.Background(), inv.Token, pw)
	wantCode(t, err, keyplane.ENOTFOUND)
	_, err = e.svc.InviteByToken(context.Background(), inv.Token)
	wantCode(t, err, keyplane.ENOTFOUND)
	if _, err := e.svc.SignIn(context.Background(), "new@example.com", pw, client); err != nil {
		t.Fatal(err)
	}
	// Inviting an existing member's email is a conflict.
	_, err = e.svc.InviteMember(e.ctx, e.acc.ID, "new@example.com", keyplane.MemberViewer)
	wantCode(t, err, keyplane.ECONFLICT)

	// Expired invites do not work.
	late, err := e.svc.InviteMember(e.ctx, e.acc.ID, "late@example.com", keyplane.MemberViewer)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(service.InviteTTL)
	_, err = e.svc.AcceptInvite(context.Background(), late.Token, pw)
	wantCode(t, err, keyplane.ENOTFOUND)

	// Cancelled invites do not work.
	gone, _ := e.svc.InviteMember(owner, e.acc.ID, "gone@example.com", keyplane.MemberViewer)
	if err := e.svc.CancelInvite(owner, gone.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.AcceptInvite(context.Background(), gone.Token, pw)
	wantCode(t, err, keyplane.ENOTFOUND)
	_, err = e.svc.AcceptInvite(context.Background(), "not a token", pw)
	wantCode(t, err, keyplane.ENOTFOUND)
}

func TestSignUp(t *testing.T) {
	off := newPortalEnv(t, false)
	_, err := off.svc.SignUp(context.Background(), service.SignUpInput{AccountName: "Mine", Email: "me@example.com", Password: pw}, client)
	wantCode(t, err, keyplane.EFORBIDDEN)

	e := newPortalEnv(t, true)
	in, err := e.svc.SignUp(context.Background(), service.SignUpInput{AccountName: "Mine", Email: "me@example.com", Password: pw}, client)
	if err != nil {
		t.Fatal(err)
	}
	if in.Member.Role != keyplane.MemberOwner {
		t.Fatalf("first member %+v is not the owner", in.Member)
	}
	a, err := e.svc.Account(e.ctx, in.Member.AccountID)
	if err != nil || a.Name != "Mine" {
		t.Fatalf("account %+v, %v", a, err)
	}
	// An email may own several accounts; sign-up does not tell anyone that
	// an email is taken.
	again, err := e.svc.SignUp(context.Background(), service.SignUpInput{AccountName: "Again", Email: "ME@example.com", Password: "another long password"}, client)
	if err != nil || again.Member.AccountID == in.Member.AccountID {
		t.Fatalf("second sign-up: %+v, %v", again, err)
	}
}

func TestCSRFToken(t *testing.T) {
	a, b := service.CSRFToken("session-a"), service.CSRFToken("session-b")
	if a == b || a == "" || a == "session-a" {
		t.Fatalf("tokens %q and %q", a, b)
	}
	if !service.ValidCSRF("session-a", a) || service.ValidCSRF("session-b", a) || service.ValidCSRF("session-a", "") {
		t.Fatal("ValidCSRF accepts the wrong token or refuses the right one")
	}
}

func auditTypes(t *testing.T, e *portalEnv, accountID string) []string {
	t.Helper()
	events, _, err := e.svc.ListAccountAudit(e.ctx, accountID, service.AuditFilter{Page: keyplane.Page{Limit: 100}})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for i := len(events) - 1; i >= 0; i-- { // oldest first
		types = append(types, events[i].Type+"/"+events[i].Actor.Kind)
	}
	return types
}

func TestMemberAuditEvents(t *testing.T) {
	e := newPortalEnv(t, false)
	owner := e.member(t, e.acc.ID, keyplane.MemberOwner)
	bg := context.Background()
	if _, err := e.svc.SignIn(bg, owner.Email, "wrong password!!", client); err == nil {
		t.Fatal("wrong password accepted")
	}
	_, _ = e.svc.SignIn(bg, "nobody@example.com", "wrong password!!", client)
	in, err := e.svc.SignIn(bg, owner.Email, pw, client)
	if err != nil {
		t.Fatal(err)
	}
	ps, _ := e.svc.AuthenticateSession(bg, in.Token)
	ctx := keyplane.NewContextWithActor(bg, ps.Actor)
	inv, err := e.svc.InviteMember(ctx, e.acc.ID, "joiner@example.com", keyplane.MemberViewer)
	if err != nil {
		t.Fatal(err)
	}
	gone, _ := e.svc.InviteMember(ctx, e.acc.ID, "gone@example.com", keyplane.MemberViewer)
	if err := e.svc.CancelInvite(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	joined, err := e.svc.AcceptInvite(bg, inv.Token, pw)
	if err != nil {
		t.Fatal(err)
	}
	dev := keyplane.MemberDeveloper
	if _, err := e.svc.UpdateMember(ctx, joined.ID, service.MemberUpdate{Role: &dev}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SignOut(bg, in.Token); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(auditTypes(t, e, e.acc.ID), " ")
	want := "account.created/token member.created/token member.sign_in_failed/member member.signed_in/member member.invited/member member.invited/member " +
		"member.invite_cancelled/member member.joined/member member.updated/member member.signed_out/member"
	if got != want {
		t.Fatalf("events\n got %s\nwant %s", got, want)
	}
	// The unknown email's failure is the operator's to see, not the account's.
	events, _, err := e.svc.ListAudit(e.ctx, service.AuditFilter{Type: keyplane.AuditMemberSignInFailed, Page: keyplane.Page{Limit: 10}})
	if err != nil || len(events) != 2 {
		t.Fatalf("failed sign-ins %v, %v", events, err)
	}
	for _, ev := range events {
		if strings.Contains(string(ev.Details), pw) || strings.Contains(string(ev.Details), "wrong password") {
			t.Fatalf("a password reached the audit log: %s", ev.Details)
		}
	}
}

// Member emails are unique per account: inviting someone who is a member of
// another account tells the inviting owner nothing about it.
func TestInviteDoesNotRevealOtherAccounts(t *testing.T) {
	e := newPortalEnv(t, false)
	elsewhere := e.member(t, e.acc.ID, keyplane.MemberDeveloper)
	b := e.account(t, "data:*")
	ownerB := e.as(t, e.member(t, b.ID, keyplane.MemberOwner))

	inv, err := e.svc.InviteMember(ownerB, b.ID, strings.ToUpper(elsewhere.Email), keyplane.MemberViewer)
	if err != nil {
		t.Fatalf("inviting another account's member: %v", err)
	}
	joined, err := e.svc.AcceptInvite(context.Background(), inv.Token, "the password for b!")
	if err != nil || joined.AccountID != b.ID || joined.Email != elsewhere.Email || joined.ID == elsewhere.ID {
		t.Fatalf("joined %+v, %v", joined, err)
	}
	// Within one account an email is still one member: that is no leak.
	_, err = e.svc.InviteMember(ownerB, b.ID, elsewhere.Email, keyplane.MemberViewer)
	wantCode(t, err, keyplane.ECONFLICT)
	_, err = e.svc.CreateMember(e.ctx, b.ID, service.MemberInput{Email: elsewhere.Email, Role: keyplane.MemberViewer, Password: pw})
	wantCode(t, err, keyplane.ECONFLICT)
	// The operator may add an email to yet another account.
	c := e.account(t)
	if _, err := e.svc.CreateMember(e.ctx, c.ID, service.MemberInput{Email: elsewhere.Email, Role: keyplane.MemberOwner, Password: pw}); err != nil {
		t.Fatal(err)
	}
}

// One email in several accounts: the password picks the membership; when it
// opens several, the member chooses; an account never sees attempts that may
// have been meant for another.
func TestSignInSeveralAccounts(t *testing.T) {
	e := newPortalEnv(t, false)
	bg := context.Background()
	const email = "ada@example.com"
	add := func(password string) *keyplane.Member {
		a := e.account(t)
		m, err := e.svc.CreateMember(e.ctx, a.ID, service.MemberInput{Email: email, Role: keyplane.MemberOwner, Password: password})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	first := add(pw)
	// Someone who controls another account invites the email and joins with
	// a password of their own.
	squat := add("the squatter's password")

	in, err := e.svc.SignIn(bg, email, pw, client)
	if err != nil || in.Session == nil || in.Member.ID != first.ID || in.Choices != nil {
		t.Fatalf("sign-in with the first account's password: %+v, %v", in, err)
	}
	in, err = e.svc.SignIn(bg, email, "the squatter's password", client)
	if err != nil || in.Session == nil || in.Member.ID != squat.ID {
		t.Fatalf("sign-in with the other password: %+v, %v", in, err)
	}
	log := &auditLog{store: e.store}
	log.newEvents(t)
	_, err = e.svc.SignIn(bg, email, "neither password!", client)
	wantCode(t, err, keyplane.EUNAUTHORIZED)
	if evs := log.newEvents(t); len(evs) != 1 || evs[0].AccountID != "" || evs[0].Type != keyplane.AuditMemberSignInFailed {
		t.Fatalf("a failure that may have been meant for either account: %+v, want one event in the operator's log", evs)
	}

	// The same password for two memberships: choose.
	second := add(pw)
	in, err = e.svc.SignIn(bg, email, pw, client)
	if err != nil || in.Session != nil || in.Token != "" || len(in.Choices) != 2 || in.Choices[0].ID != first.AccountID || in.Choices[1].ID != second.AccountID {
		t.Fatalf("sign-in opening two memberships: %+v, %v", in, err)
	}
	in, err = e.svc.SignInToAccount(bg, second.AccountID, email, pw, client)
	if err != nil || in.Session == nil || in.Member.ID != second.ID {
		t.Fatalf("sign-in to the second account: %+v, %v", in, err)
	}
	ps, err := e.svc.AuthenticateSession(bg, in.Token)
	if err != nil || ps.Actor.AccountID != second.AccountID {
		t.Fatalf("session %+v, %v", ps, err)
	}
	// Naming an account does not open another's membership, and a wrong
	// password there is that account's to see.
	_, err = e.svc.SignInToAccount(bg, squat.AccountID, email, pw, client)
	wantCode(t, err, keyplane.EUNAUTHORIZED)
	if evs := log.newEvents(t); len(evs) == 0 || evs[len(evs)-1].Type != keyplane.AuditMemberSignInFailed || evs[len(evs)-1].AccountID != squat.AccountID {
		t.Fatalf("events %+v", evs)
	}
	_, err = e.svc.SignInToAccount(bg, "not an id", email, pw, client)
	wantCode(t, err, keyplane.EUNAUTHORIZED)

	// A disabled membership drops out of the choice.
	disabled := keyplane.MemberDisabled
	if _, err := e.svc.UpdateMember(e.ctx, first.ID, service.MemberUpdate{Status: &disabled}); err == nil {
		t.Fatal("disabled the account's only owner")
	}
	if _, err := e.svc.CreateMember(e.ctx, first.AccountID, service.MemberInput{Email: "other@example.com", Role: keyplane.MemberOwner, Password: pw}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.UpdateMember(e.ctx, first.ID, service.MemberUpdate{Status: &disabled}); err != nil {
		t.Fatal(err)
	}
	in, err = e.svc.SignIn(bg, email, pw, client)
	if err != nil || in.Session == nil || in.Member.ID != second.ID {
		t.Fatalf("sign-in with one of two memberships disabled: %+v, %v", in, err)
	}
}
