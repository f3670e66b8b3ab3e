package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
)

func newMember(accountID string, role keyplane.MemberRole) *keyplane.Member {
	mid := id("mem")
	return &keyplane.Member{ID: mid, AccountID: accountID, Email: mid + "@example.com", PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
		Role: role, Status: keyplane.MemberActive, CreatedAt: base, UpdatedAt: base}
}

func mustCreateMember(t *testing.T, s keyplane.Store, m *keyplane.Member) *keyplane.Member {
	t.Helper()
	if err := s.CreateMember(ctx, m, nil); err != nil {
		t.Fatalf("CreateMember: %v", err)
	}
	return m
}

func wantMember(t *testing.T, got *keyplane.Member, err error, want *keyplane.Member) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	w := *want
	w.CreatedAt, w.UpdatedAt = w.CreatedAt.Truncate(time.Microsecond), w.UpdatedAt.Truncate(time.Microsecond)
	if *got != w {
		t.Fatalf("member %+v, want %+v", *got, w)
	}
}

func testMemberRoundTrip(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	m := mustCreateMember(t, s, newMember(a.ID, keyplane.MemberOwner))
	got, err := s.Member(ctx, m.ID)
	wantMember(t, got, err, m)
	got, err = s.MemberByEmail(ctx, a.ID, m.Email)
	wantMember(t, got, err, m)

	_, err = s.Member(ctx, id("mem"))
	wantCode(t, err, keyplane.ENOTFOUND)
	_, err = s.MemberByEmail(ctx, a.ID, "nobody@example.com")
	wantCode(t, err, keyplane.ENOTFOUND)

	// Emails are unique within an account.
	dup := newMember(a.ID, keyplane.MemberViewer)
	dup.Email = m.Email
	wantCode(t, s.CreateMember(ctx, dup, nil), keyplane.ECONFLICT)
	// Another account's member may have it: an account must not learn, by
	// a refusal, who is a member elsewhere.
	b := newAccount(t, s)
	_, err = s.MemberByEmail(ctx, b.ID, m.Email)
	wantCode(t, err, keyplane.ENOTFOUND)
	other := newMember(b.ID, keyplane.MemberViewer)
	other.Email = m.Email
	mustCreateMember(t, s, other)
	got, err = s.MemberByEmail(ctx, b.ID, m.Email)
	wantMember(t, got, err, other)
	got, err = s.MemberByEmail(ctx, a.ID, m.Email)
	wantMember(t, got, err, m)
	third := newMember(newAccount(t, s).ID, keyplane.MemberOwner)
	third.Email = m.Email
	mustCreateMember(t, s, third)
	all, err := s.MembersByEmail(ctx, m.Email, 10)
	if err != nil || len(all) != 3 || all[0].ID != m.ID || all[1].ID != other.ID || all[2].ID != third.ID {
		t.Fatalf("MembersByEmail = %+v, %v; want the three, oldest first", all, err)
	}
	wantMember(t, all[1], nil, other)
	if two, err := s.MembersByEmail(ctx, m.Email, 2); err != nil || len(two) != 2 || two[1].ID != other.ID {
		t.Fatalf("MembersByEmail limit 2 = %+v, %v", two, err)
	}
	if none, err := s.MembersByEmail(ctx, "nobody@example.com", 10); err != nil || len(none) != 0 {
		t.Fatalf("MembersByEmail of nobody = %+v, %v", none, err)
	}
	// A session keeps pointing at its member.
	ses := &keyplane.Session{ID: id("ses"), Hash: [32]byte{1, 2, 3}, MemberID: other.ID, AccountID: b.ID, CreatedAt: base, LastSeenAt: base, ExpiresAt: base.Add(time.Hour)}
	if err := s.CreateSession(ctx, ses); err != nil {
		t.Fatal(err)
	}
	if got, err := s.SessionByHash(ctx, ses.Hash); err != nil || got.MemberID != other.ID {
		t.Fatalf("session %+v, %v", got, err)
	}
	// A member of an account that does not exist is refused.
	if err := s.CreateMember(ctx, newMember(id("acc"), keyplane.MemberOwner), nil); err == nil {
		t.Fatal("member of an unknown account was created")
	}
}

func testMemberWithNewAccount(t *testing.T, s keyplane.Store) {
	a := &keyplane.Account{ID: id("acc"), Name: "Signed up", Plan: "default", AllowedScopes: []string{}, Status: keyplane.AccountActive, CreatedAt: base, UpdatedAt: base}
	m := newMember(a.ID, keyplane.MemberOwner)
	if err := s.CreateMember(ctx, m, a); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Account(ctx, a.ID); err != nil {
		t.Fatalf("account: %v", err)
	}
	// A refused member rolls the new account back with it.
	b := &keyplane.Account{ID: id("acc"), Name: "Second", Plan: "default", AllowedScopes: []string{}, Status: keyplane.AccountActive, CreatedAt: base, UpdatedAt: base}
	dup := newMember(b.ID, keyplane.MemberOwner)
	dup.ID = m.ID
	wantCode(t, s.CreateMember(ctx, dup, b), keyplane.ECONFLICT)
	_, err := s.Account(ctx, b.ID)
	wantCode(t, err, keyplane.ENOTFOUND)
	// Another account's member's email is no reason to refuse.
	c := &keyplane.Account{ID: id("acc"), Name: "Third", Plan: "default", AllowedScopes: []string{}, Status: keyplane.AccountActive, CreatedAt: base, UpdatedAt: base}
	same := newMember(c.ID, keyplane.MemberOwner)
	same.Email = m.Email
	if err := s.CreateMember(ctx, same, c); err != nil {
		t.Fatal(err)
	}
}

func testMemberListIsolation(t *testing.T, s keyplane.Store) {
	a, b := newAccount(t, s), newAccount(t, s)
	var want []string
	for range 5 {
		want = append(want, mustCreateMember(t, s, newMember(a.ID, keyplane.MemberDeveloper)).ID)
		mustCreateMember(t, s, newMember(b.ID, keyplane.MemberDeveloper))
	}
	var got []string
	page := keyplane.Page{Limit: 2}
	for range 10 {
		ms, next, err := s.ListMembers(ctx, a.ID, page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.AccountID != a.ID {
				t.Fatalf("member of %s listed for %s", m.AccountID, a.ID)
			}
			got = append(got, m.ID)
		}
		if next == "" {
			break
		}
		page.Cursor = next
	}
	if !equalStrings(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
}

func testMemberUpdateKeepsAnOwner(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	owner := mustCreateMember(t, s, newMember(a.ID, keyplane.MemberOwner))
	dev := mustCreateMember(t, s, newMember(a.ID, keyplane.MemberDeveloper))
	later := base.Add(time.Hour)

	got, err := s.UpdateMember(ctx, dev.ID, func(m *keyplane.Member) error {
		m.Role, m.UpdatedAt, m.AccountID = keyplane.MemberViewer, later, "acc_elsewhere"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Role != keyplane.MemberViewer || got.AccountID != a.ID || !got.UpdatedAt.Equal(later) {
		t.Fatalf("updated %+v", got)
	}
	if m, _ := s.Member(ctx, dev.ID); m.Role != keyplane.MemberViewer || m.AccountID != a.ID {
		t.Fatalf("stored %+v", m)
	}

	// The last active owner can neither be demoted nor disabled.
	_, err = s.UpdateMember(ctx, owner.ID, func(m *keyplane.Member) error { m.Role = keyplane.MemberDeveloper; return nil })
	wantCode(t, err, keyplane.ECONFLICT)
	_, err = s.UpdateMember(ctx, owner.ID, func(m *keyplane.Member) error { m.Status = keyplane.MemberDisabled; return nil })
	wantCode(t, err, keyplane.ECONFLICT)
	if m, _ := s.Member(ctx, owner.ID); m.Role != keyplane.MemberOwner || m.Status != keyplane.MemberActive {
		t.Fatalf("refused change was written: %+v", m)
	}

	// A callback error aborts.
	boom := errors.New("boom")
	if _, err := s.UpdateMember(ctx, dev.ID, func(m *keyplane.Member) error { m.Role = keyplane.MemberOwner; return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	_, err = s.UpdateMember(ctx, id("mem"), func(*keyplane.Member) error { return nil })
	wantCode(t, err, keyplane.ENOTFOUND)

	// With two owners, concurrent demotions leave exactly one.
	second := mustCreateMember(t, s, newMember(a.ID, keyplane.MemberOwner))
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, m := range []*keyplane.Member{owner, second} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.UpdateMember(ctx, m.ID, func(m *keyplane.Member) error { m.Role = keyplane.MemberViewer; return nil })
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("concurrent demotions: %v and %v, want exactly one refused", errs[0], errs[1])
	}
}

func newInvite(accountID string, expires time.Time) *keyplane.Invite {
	iid := id("inv")
	return &keyplane.Invite{ID: iid, AccountID: accountID, Email: iid + "@example.com", Role: keyplane.MemberDeveloper,
		Hash: hashOf(iid), CreatedBy: "tok_x", CreatedAt: base, ExpiresAt: expires}
}

func testInvites(t *testing.T, s keyplane.Store) {
	a, b := newAccount(t, s), newAccount(t, s)
	expired := newInvite(a.ID, base.Add(-time.Second))
	pending := newInvite(a.ID, base.Add(time.Hour))
	other := newInvite(b.ID, base.Add(time.Hour))
	for _, inv := range []*keyplane.Invite{expired, pending, other} {
		if err := s.CreateInvite(ctx, inv); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Invite(ctx, pending.ID)
	if err != nil || got.Hash != pending.Hash || got.Email != pending.Email || !got.ExpiresAt.Equal(pending.ExpiresAt.Truncate(time.Microsecond)) || got.UsedAt != nil {
		t.Fatalf("invite %+v (%v), want %+v", got, err, pending)
	}
	if byHash, err := s.InviteByHash(ctx, pending.Hash); err != nil || byHash.ID != pending.ID {
		t.Fatalf("InviteByHash = %+v, %v", byHash, err)
	}
	_, err = s.InviteByHash(ctx, hashOf("nothing"))
	wantCode(t, err, keyplane.ENOTFOUND)
	list, err := s.PendingInvites(ctx, a.ID, base)
	if err != nil || len(list) != 1 || list[0].ID != pending.ID {
		t.Fatalf("pending %v (%v), want only %s", list, err, pending.ID)
	}

	// Using it admits one member, once.
	used := base.Add(time.Minute)
	use := func(inv *keyplane.Invite) (*keyplane.Member, error) {
		if inv.UsedAt != nil {
			return nil, keyplane.Errorf(keyplane.ECONFLICT, "used")
		}
		inv.UsedAt = &used
		m := newMember(inv.AccountID, inv.Role)
		m.Email = inv.Email
		return m, nil
	}
	m, err := s.UseInvite(ctx, pending.Hash, use)
	if err != nil {
		t.Fatal(err)
	}
	if stored, err := s.MemberByEmail(ctx, a.ID, pending.Email); err != nil || stored.ID != m.ID || stored.Role != keyplane.MemberDeveloper {
		t.Fatalf("member %+v (%v)", stored, err)
	}
	_, err = s.UseInvite(ctx, pending.Hash, use)
	wantCode(t, err, keyplane.ECONFLICT)
	if got, _ := s.Invite(ctx, pending.ID); got.UsedAt == nil || !got.UsedAt.Equal(used) {
		t.Fatalf("used_at %v, want %v", got.UsedAt, used)
	}
	if list, _ := s.PendingInvites(ctx, a.ID, base); len(list) != 0 {
		t.Fatalf("a used invite is still pending: %v", list)
	}
	_, err = s.UseInvite(ctx, hashOf("nothing"), use)
	wantCode(t, err, keyplane.ENOTFOUND)

	// A member that cannot be inserted (the account has one with that
	// email) leaves the invite unused.
	clash := newInvite(a.ID, base.Add(time.Hour))
	clash.Email = pending.Email
	if err := s.CreateInvite(ctx, clash); err != nil {
		t.Fatal(err)
	}
	_, err = s.UseInvite(ctx, clash.Hash, use)
	wantCode(t, err, keyplane.ECONFLICT)
	if got, _ := s.Invite(ctx, clash.ID); got.UsedAt != nil {
		t.Fatal("a failed use marked the invite used")
	}

	if err := s.DeleteInvite(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.DeleteInvite(ctx, other.ID), keyplane.ENOTFOUND)
	_, err = s.Invite(ctx, other.ID)
	wantCode(t, err, keyplane.ENOTFOUND)
}

func testSessions(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	m := mustCreateMember(t, s, newMember(a.ID, keyplane.MemberViewer))
	mk := func(seen, expires time.Time) *keyplane.Session {
		sid := id("ses")
		ses := &keyplane.Session{ID: sid, Hash: hashOf(sid), MemberID: m.ID, AccountID: a.ID, CreatedAt: base, LastSeenAt: seen, ExpiresAt: expires}
		if err := s.CreateSession(ctx, ses); err != nil {
			t.Fatal(err)
		}
		return ses
	}
	live := mk(base, base.Add(time.Hour))
	got, err := s.SessionByHash(ctx, live.Hash)
	if err != nil {
		t.Fatal(err)
	}
	want := *live
	want.CreatedAt, want.LastSeenAt, want.ExpiresAt = base.Truncate(time.Microsecond), base.Truncate(time.Microsecond), live.ExpiresAt.Truncate(time.Microsecond)
	if *got != want {
		t.Fatalf("session %+v, want %+v", *got, want)
	}
	_, err = s.SessionByHash(ctx, hashOf("none"))
	wantCode(t, err, keyplane.ENOTFOUND)

	// Touching moves last-seen forward only.
	if err := s.TouchSession(ctx, live.ID, base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchSession(ctx, live.ID, base); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.SessionByHash(ctx, live.Hash); !got.LastSeenAt.Equal(base.Add(time.Minute).Truncate(time.Microsecond)) {
		t.Fatalf("last seen %v", got.LastSeenAt)
	}

	// Stale sessions go: one past its expiry, one idle since before the cut.
	expired := mk(base, base.Add(-time.Second))
	idle := mk(base.Add(-2*time.Hour), base.Add(time.Hour))
	n, err := s.DeleteStaleSessions(ctx, base, base.Add(-time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("DeleteStaleSessions = %d, %v, want 2", n, err)
	}
	for _, gone := range []*keyplane.Session{expired, idle} {
		_, err = s.SessionByHash(ctx, gone.Hash)
		wantCode(t, err, keyplane.ENOTFOUND)
	}

	if err := s.DeleteSession(ctx, live.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSession(ctx, live.ID); err != nil {
		t.Fatalf("second sign-out: %v", err)
	}
	_, err = s.SessionByHash(ctx, live.Hash)
	wantCode(t, err, keyplane.ENOTFOUND)

	one, two := mk(base, base.Add(time.Hour)), mk(base, base.Add(time.Hour))
	if err := s.DeleteMemberSessions(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []*keyplane.Session{one, two} {
		_, err = s.SessionByHash(ctx, gone.Hash)
		wantCode(t, err, keyplane.ENOTFOUND)
	}
}
