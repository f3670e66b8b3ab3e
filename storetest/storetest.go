package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane"
)

// Factory returns a new, empty, migrated store; the test's cleanup closes it.
type Factory func(t *testing.T) keyplane.Store

// Run runs every conformance test against stores made by newStore.
func Run(t *testing.T, newStore Factory) {
	for _, tc := range Tests {
		t.Run(tc.Name, func(t *testing.T) { tc.Fn(t, newStore(t)) })
	}
}

// Test is one conformance test.
type Test struct {
	Name string
	Fn   func(t *testing.T, s keyplane.Store)
}

// Tests lists the suite; its length is the count each store must run.
var Tests = []Test{
	{"AccountRoundTrip", testAccountRoundTrip},
	{"AccountNotFound", testAccountNotFound},
	{"AccountUpdate", testAccountUpdate},
	{"AccountDuplicateID", testAccountDuplicateID},
	{"AccountPagination", testAccountPagination},
	{"BadCursor", testBadCursor},
	{"KeyRoundTrip", testKeyRoundTrip},
	{"KeyUnknownAccount", testKeyUnknownAccount},
	{"KeyHashUnique", testKeyHashUnique},
	{"KeyUpdate", testKeyUpdate},
	{"KeyUpdateAborts", testKeyUpdateAborts},
	{"KeyLeak", testKeyLeak},
	{"KeyListPaginationAndIsolation", testKeyListPagination},
	{"KeyListStatusFilter", testKeyListStatusFilter},
	{"KeyCap", testKeyCap},
	{"KeyCapConcurrent", testKeyCapConcurrent},
	{"RollKey", testRollKey},
	{"RollKeyAborts", testRollKeyAborts},
	{"RollKeyNeverNeither", testRollKeyNeverNeither},
	{"VerifyRecord", testVerifyRecord},
	{"TimesAreUTC", testTimesAreUTC},
	{"LargeMetadataAndUnicode", testLargeMetadataAndUnicode},
	{"UpdateKeepsRow", testUpdateKeepsRow},
	{"PlanRoundTrip", testPlanRoundTrip},
	{"DefaultPlanExists", testDefaultPlanExists},
	{"PlanNotFoundAndDuplicate", testPlanNotFoundAndDuplicate},
	{"PlanUpdate", testPlanUpdate},
	{"PlanPagination", testPlanPagination},
	{"VerifyRecordCarriesPlan", testVerifyRecordCarriesPlan},
	{"Tokens", testTokens},
	{"TokenLifecycle", testTokenLifecycle},
	{"ChangesSince", testChangesSince},
	{"QuotaAddTotals", testQuotaAddTotals},
	{"QuotaAddConcurrent", testQuotaAddConcurrent},
	{"QuotaRefsIndependent", testQuotaRefsIndependent},
	{"QuotaClampsAtZero", testQuotaClampsAtZero},
	{"QuotaUsageOrder", testQuotaUsageOrder},
	{"QuotaReset", testQuotaReset},
	{"QuotaEmptyBatch", testQuotaEmptyBatch},
	{"QuotaBatchIsAtomic", testQuotaBatchIsAtomic},
	{"AuditAppendAndRead", testAuditAppendAndRead},
	{"AuditListFilters", testAuditListFilters},
	{"AuditTrail", testAuditTrail},
	{"AuditConcurrentAppends", testAuditConcurrentAppends},
	{"AuditTamperUpdate", testAuditTamperUpdate},
	{"AuditTamperUpdateRehashed", testAuditTamperUpdateRehashed},
	{"AuditTamperDelete", testAuditTamperDelete},
	{"AuditTamperDeleteFirst", testAuditTamperDeleteFirst},
	{"AuditTamperDeleteLast", testAuditTamperDeleteLast},
	{"AuditTamperDeleteHead", testAuditTamperDeleteHead},
	{"AuditTamperSwapOrder", testAuditTamperSwapOrder},
	{"AuditTamperSwapContents", testAuditTamperSwapContents},
	{"AuditTamperOtherChainsIntact", testAuditTamperOtherChainsIntact},
	{"UsageAddsUp", testUsageAddsUp},
	{"UsageOutcomesApart", testUsageOutcomesApart},
	{"UsageLatencyMerge", testUsageLatencyMerge},
	{"UsageConcurrentMerges", testUsageConcurrentMerges},
	{"UsageTotals", testUsageTotals},
	{"UsageKeyAccounts", testUsageKeyAccounts},
	{"UsagePrune", testUsagePrune},
	{"MemberRoundTrip", testMemberRoundTrip},
	{"MemberWithNewAccount", testMemberWithNewAccount},
	{"MemberListIsolation", testMemberListIsolation},
	{"MemberUpdateKeepsAnOwner", testMemberUpdateKeepsAnOwner},
	{"Invites", testInvites},
	{"Sessions", testSessions},
	{"Ping", testPing},
}

var ctx = context.Background()

// base is a fixed instant with sub-microsecond digits, to check truncation.
var base = time.Date(2026, 3, 4, 5, 6, 7, 890123000, time.UTC)

var seq atomic.Int64

// id makes ids that sort by creation order, as the service's ULIDs do.
func id(prefix string) string { return fmt.Sprintf("%s_%012d", prefix, seq.Add(1)) }

func newAccount(t *testing.T, s keyplane.Store, scopes ...string) *keyplane.Account {
	t.Helper()
	a := &keyplane.Account{ID: id("acc"), Name: "Acme", Plan: "free", AllowedScopes: scopes, Status: keyplane.AccountActive, CreatedAt: base, UpdatedAt: base}
	if a.AllowedScopes == nil {
		a.AllowedScopes = []string{}
	}
	if err := s.CreateAccount(ctx, a); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	return a
}

func hashOf(s string) (h [32]byte) {
	copy(h[:], s)
	return h
}

func newKey(accountID string) *keyplane.Key {
	kid := id("key")
	return &keyplane.Key{
		ID: kid, AccountID: accountID, Name: "key " + kid, Environment: keyplane.EnvLive,
		Hash: hashOf(kid), Hint: "kp_live_abcd…wxyz", Scopes: []string{"data:read"},
		Metadata: json.RawMessage(`{"tier":"gold"}`), Enabled: true, CreatedAt: base, UpdatedAt: base,
	}
}

func mustCreateKey(t *testing.T, s keyplane.Store, k *keyplane.Key) *keyplane.Key {
	t.Helper()
	if err := s.CreateKey(ctx, k, 1000, base); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return k
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := keyplane.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func ptr[T any](v T) *T { return &v }

func testAccountRoundTrip(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s, "data:*", "billing:read")
	got, err := s.Account(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != a.Name || got.Plan != a.Plan || got.Status != a.Status || !equalStrings(got.AllowedScopes, a.AllowedScopes) ||
		!got.CreatedAt.Equal(base.Truncate(time.Microsecond)) || !got.UpdatedAt.Equal(got.CreatedAt) {
		t.Fatalf("got %+v, want %+v", got, a)
	}
}

func testAccountNotFound(t *testing.T, s keyplane.Store) {
	_, err := s.Account(ctx, "acc_missing")
	wantCode(t, err, keyplane.ENOTFOUND)
	_, err = s.UpdateAccount(ctx, "acc_missing", func(*keyplane.Account) error { return nil })
	wantCode(t, err, keyplane.ENOTFOUND)
}

func testAccountUpdate(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	later := base.Add(time.Hour)
	got, err := s.UpdateAccount(ctx, a.ID, func(a *keyplane.Account) error {
		a.Name, a.Plan, a.Status, a.AllowedScopes, a.UpdatedAt = "Acme 2", "pro", keyplane.AccountSuspended, []string{"*"}, later
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	reread, err := s.Account(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []*keyplane.Account{got, reread} {
		if x.Name != "Acme 2" || x.Plan != "pro" || x.Status != keyplane.AccountSuspended || !equalStrings(x.AllowedScopes, []string{"*"}) || !x.UpdatedAt.Equal(later.Truncate(time.Microsecond)) {
			t.Fatalf("after update: %+v", x)
		}
	}
	// An error from the callback leaves the row as it was.
	boom := errors.New("boom")
	if _, err := s.UpdateAccount(ctx, a.ID, func(a *keyplane.Account) error { a.Name = "lost"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if x, _ := s.Account(ctx, a.ID); x.Name != "Acme 2" {
		t.Fatalf("aborted update was written: %q", x.Name)
	}
}

func testAccountDuplicateID(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	wantCode(t, s.CreateAccount(ctx, a), keyplane.ECONFLICT)
}

func testAccountPagination(t *testing.T, s keyplane.Store) {
	var ids []string
	for range 7 {
		ids = append(ids, newAccount(t, s).ID)
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		page, next, err := s.ListAccounts(ctx, keyplane.Page{Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 3 {
			t.Fatalf("page of %d, limit 3", len(page))
		}
		for _, a := range page {
			got = append(got, a.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	// Newest first, each exactly once.
	if len(got) != len(ids) {
		t.Fatalf("listed %d accounts, want %d: %v", len(got), len(ids), got)
	}
	for i := range ids {
		if got[i] != ids[len(ids)-1-i] {
			t.Fatalf("order %v, want newest first of %v", got, ids)
		}
	}
}

func testBadCursor(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	_, _, err := s.ListAccounts(ctx, keyplane.Page{Limit: 3, Cursor: "!!not-a-cursor"})
	wantCode(t, err, keyplane.EINVALID)
	_, _, err = s.ListKeys(ctx, keyplane.KeyFilter{AccountID: a.ID, Now: base, Page: keyplane.Page{Limit: 3, Cursor: "%%%"}})
	wantCode(t, err, keyplane.EINVALID)
}

func testKeyRoundTrip(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s, "*")
	k := newKey(a.ID)
	k.AllowedCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	k.RateLimits = []keyplane.RateLimitPolicy{{Name: "default", Limit: ptr[int64](100), WindowSeconds: 60, Burst: 10, Algorithm: keyplane.TokenBucket}, {Name: "open", WindowSeconds: 1, Algorithm: keyplane.SlidingWindow}}
	k.Quota = &keyplane.Quota{Limit: 10000, Period: keyplane.QuotaMonth, Shared: true}
	k.ExpiresAt = ptr(base.Add(48 * time.Hour))
	k.Environment = keyplane.EnvTest
	mustCreateKey(t, s, k)
	got, err := s.Key(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	assertKeyEqual(t, got, k)

	plain := mustCreateKey(t, s, newKey(a.ID))
	got, err = s.Key(ctx, plain.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.RateLimits != nil || got.Quota != nil || got.ExpiresAt != nil || len(got.AllowedCIDRs) != 0 {
		t.Fatalf("unset fields came back set: %+v", got)
	}
	_, err = s.Key(ctx, "key_missing")
	wantCode(t, err, keyplane.ENOTFOUND)
}

func assertKeyEqual(t *testing.T, got, want *keyplane.Key) {
	t.Helper()
	g, _ := json.Marshal(normalise(got))
	w, _ := json.Marshal(normalise(want))
	if !bytes.Equal(g, w) {
		t.Fatalf("key differs:\n got %s\nwant %s", g, w)
	}
}

// normalise makes keys comparable: times to microseconds in UTC, metadata compact.
func normalise(k *keyplane.Key) keyplane.Key {
	c := *k
	tr := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		v := t.Truncate(time.Microsecond).UTC()
		return &v
	}
	c.CreatedAt, c.UpdatedAt = *tr(&c.CreatedAt), *tr(&c.UpdatedAt)
	c.ExpiresAt, c.RevokedAt, c.LastUsedAt, c.LeakedAt = tr(c.ExpiresAt), tr(c.RevokedAt), tr(c.LastUsedAt), tr(c.LeakedAt)
	var buf bytes.Buffer
	if json.Compact(&buf, c.Metadata) == nil {
		c.Metadata = buf.Bytes()
	}
	if len(c.AllowedCIDRs) == 0 {
		c.AllowedCIDRs = nil
	}
	return c
}

func testKeyUnknownAccount(t *testing.T, s keyplane.Store) {
	wantCode(t, s.CreateKey(ctx, newKey("acc_missing"), 10, base), keyplane.ENOTFOUND)
}

func testKeyHashUnique(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	k := mustCreateKey(t, s, newKey(a.ID))
	dup := newKey(a.ID)
	dup.Hash = k.Hash
	wantCode(t, s.CreateKey(ctx, dup, 1000, base), keyplane.ECONFLICT)
}

func testKeyUpdate(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	k := mustCreateKey(t, s, newKey(a.ID))
	later := base.Add(time.Minute)
	got, err := s.UpdateKey(ctx, k.ID, func(k *keyplane.Key) error {
		k.Name, k.Scopes, k.Enabled, k.UpdatedAt = "renamed", []string{"a:b", "c:*"}, false, later
		k.AllowedCIDRs = []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}
		k.RateLimits = []keyplane.RateLimitPolicy{}
		k.Quota = &keyplane.Quota{Limit: 5, Period: keyplane.QuotaDay}
		k.Metadata = json.RawMessage(`{"a":[1,2,3]}`)
		k.ExpiresAt, k.RevokedAt, k.RolledToID = ptr(later.Add(time.Hour)), ptr(later), "key_next"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	reread, err := s.Key(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	assertKeyEqual(t, reread, got)
	if reread.Name != "renamed" || reread.Enabled || reread.RolledToID != "key_next" || reread.RateLimits == nil || len(reread.RateLimits) != 0 {
		t.Fatalf("update not stored: %+v", reread)
	}
	_, err = s.UpdateKey(ctx, "key_missing", func(*keyplane.Key) error { return nil })
	wantCode(t, err, keyplane.ENOTFOUND)
}

// testKeyLeak: the leak fields are stored by an update and read back by
// Key, ListKeys and VerifyRecord; a new key has none.
func testKeyLeak(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	k := mustCreateKey(t, s, newKey(a.ID))
	if got, err := s.Key(ctx, k.ID); err != nil || got.LeakedAt != nil || got.LeakSource != "" || got.LeakURL != "" {
		t.Fatalf("new key: %+v, %v", got, err)
	}
	at := base.Add(time.Minute)
	got, err := s.UpdateKey(ctx, k.ID, func(k *keyplane.Key) error {
		k.LeakedAt, k.LeakSource, k.LeakURL, k.UpdatedAt = &at, keyplane.LeakSourceGitHub, "https://github.com/o/r/blob/abc/x.go", at
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	reread, err := s.Key(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	assertKeyEqual(t, reread, got)
	if reread.LeakedAt == nil || !reread.LeakedAt.Equal(at) || reread.LeakSource != keyplane.LeakSourceGitHub || reread.LeakURL != "https://github.com/o/r/blob/abc/x.go" {
		t.Fatalf("leak not stored: %+v", reread)
	}
	keys, _, err := s.ListKeys(ctx, keyplane.KeyFilter{AccountID: a.ID, Now: at, Page: keyplane.Page{Limit: 10}})
	if err != nil || len(keys) != 1 || keys[0].LeakedAt == nil || keys[0].LeakSource != keyplane.LeakSourceGitHub {
		t.Fatalf("ListKeys: %+v, %v", keys, err)
	}
	r, err := s.VerifyRecord(ctx, k.Hash)
	if err != nil || r.Key.LeakedAt == nil || r.Key.LeakURL != reread.LeakURL {
		t.Fatalf("VerifyRecord: %+v, %v", r, err)
	}
}

func testKeyUpdateAborts(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	k := mustCreateKey(t, s, newKey(a.ID))
	_, err := s.UpdateKey(ctx, k.ID, func(k *keyplane.Key) error {
		k.Name = "lost"
		return keyplane.Errorf(keyplane.ECONFLICT, "no")
	})
	wantCode(t, err, keyplane.ECONFLICT)
	if got, _ := s.Key(ctx, k.ID); got.Name != k.Name {
		t.Fatalf("aborted update was written: %q", got.Name)
	}
}

func listAllKeys(t *testing.T, s keyplane.Store, f keyplane.KeyFilter) []string {
	t.Helper()
	var ids []string
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("pagination does not end")
		}
		page, next, err := s.ListKeys(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range page {
			if k.AccountID != f.AccountID {
				t.Fatalf("listed key %s of account %s for account %s", k.ID, k.AccountID, f.AccountID)
			}
			ids = append(ids, k.ID)
		}
		if next == "" {
			return ids
		}
		f.Cursor = next
	}
}

func testKeyListPagination(t *testing.T, s keyplane.Store) {
	a, other := newAccount(t, s), newAccount(t, s)
	var want []string
	for i := range 11 {
		want = append([]string{mustCreateKey(t, s, newKey(a.ID)).ID}, want...)
		if i%3 == 0 {
			mustCreateKey(t, s, newKey(other.ID))
		}
	}
	for _, limit := range []int{1, 4, 11, 50} {
		got := listAllKeys(t, s, keyplane.KeyFilter{AccountID: a.ID, Now: base, Page: keyplane.Page{Limit: limit}})
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("limit %d: got %v, want %v", limit, got, want)
		}
	}
	if got := listAllKeys(t, s, keyplane.KeyFilter{AccountID: "acc_missing", Now: base, Page: keyplane.Page{Limit: 5}}); len(got) != 0 {
		t.Fatalf("keys listed for a missing account: %v", got)
	}
}

// statusKeys creates one key of each status at base+1h and returns them by status.
func statusKeys(t *testing.T, s keyplane.Store, accountID string) map[keyplane.KeyStatus]*keyplane.Key {
	now := base.Add(time.Hour)
	out := map[keyplane.KeyStatus]*keyplane.Key{}
	for _, st := range []keyplane.KeyStatus{keyplane.KeyActive, keyplane.KeyDisabled, keyplane.KeyRolling, keyplane.KeyExpired, keyplane.KeyRevoked} {
		k := newKey(accountID)
		switch st {
		case keyplane.KeyDisabled:
			k.Enabled = false
		case keyplane.KeyRolling:
			k.RolledToID, k.ExpiresAt = "key_successor", ptr(now.Add(time.Minute))
		case keyplane.KeyExpired:
			k.ExpiresAt = ptr(now) // expiring exactly now counts as expired
		case keyplane.KeyRevoked:
			k.RevokedAt = ptr(base)
		}
		if got := k.Status(now); got != st {
			t.Fatalf("test setup: key status %s, want %s", got, st)
		}
		out[st] = mustCreateKey(t, s, k)
	}
	return out
}

func testKeyListStatusFilter(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	keys := statusKeys(t, s, a.ID)
	now := base.Add(time.Hour)
	for st, k := range keys {
		got := listAllKeys(t, s, keyplane.KeyFilter{AccountID: a.ID, Status: st, Now: now, Page: keyplane.Page{Limit: 10}})
		if len(got) != 1 || got[0] != k.ID {
			t.Errorf("status %s: listed %v, want [%s]", st, got, k.ID)
		}
	}
	// Before the expiry, the expired key is active again; the filter uses Now.
	got := listAllKeys(t, s, keyplane.KeyFilter{AccountID: a.ID, Status: keyplane.KeyActive, Now: base, Page: keyplane.Page{Limit: 10}})
	if len(got) != 2 {
		t.Errorf("active at base: %v, want the active and the not-yet-expired key", got)
	}
}

func testKeyCap(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	statusKeys(t, s, a.ID) // active and disabled count; rolling, expired, revoked do not
	now := base.Add(time.Hour)
	if err := s.CreateKey(ctx, newKey(a.ID), 3, now); err != nil {
		t.Fatalf("third live key: %v", err)
	}
	wantCode(t, s.CreateKey(ctx, newKey(a.ID), 3, now), keyplane.ELIMIT)
	// Another account's keys are not counted.
	b := newAccount(t, s)
	if err := s.CreateKey(ctx, newKey(b.ID), 1, now); err != nil {
		t.Fatalf("other account: %v", err)
	}
}

func testKeyCapConcurrent(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	const limit, tries = 5, 24
	var ok, limited atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, tries)
	for range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := s.CreateKey(ctx, newKey(a.ID), limit, base); keyplane.ErrorCode(err) {
			case "":
				ok.Add(1)
			case keyplane.ELIMIT:
				limited.Add(1)
			default:
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent create: %v", err)
	}
	if ok.Load() != limit || limited.Load() != tries-limit {
		t.Fatalf("created %d, refused %d; want %d and %d", ok.Load(), limited.Load(), limit, tries-limit)
	}
	if got := listAllKeys(t, s, keyplane.KeyFilter{AccountID: a.ID, Now: base, Page: keyplane.Page{Limit: 100}}); len(got) != limit {
		t.Fatalf("%d keys stored, want %d", len(got), limit)
	}
}

func rollTo(next *keyplane.Key, overlapEnd time.Time) func(*keyplane.Key) (*keyplane.Key, error) {
	return func(old *keyplane.Key) (*keyplane.Key, error) {
		old.RolledToID, old.ExpiresAt, old.UpdatedAt = next.ID, &overlapEnd, overlapEnd
		next.RolledFromID = old.ID
		return next, nil
	}
}

func testRollKey(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	k := mustCreateKey(t, s, newKey(a.ID))
	end := base.Add(time.Hour)
	old, next, err := s.RollKey(ctx, k.ID, rollTo(newKey(a.ID), end))
	if err != nil {
		t.Fatal(err)
	}
	gotOld, _ := s.Key(ctx, k.ID)
	gotNext, err := s.Key(ctx, next.ID)
	if err != nil {
		t.Fatal(err)
	}
	assertKeyEqual(t, gotOld, old)
	assertKeyEqual(t, gotNext, next)
	if gotOld.RolledToID != next.ID || gotNext.RolledFromID != k.ID || gotOld.Status(base) != keyplane.KeyRolling || gotOld.Status(end) != keyplane.KeyExpired {
		t.Fatalf("roll links wrong: old %+v next %+v", gotOld, gotNext)
	}
	_, _, err = s.RollKey(ctx, "key_missing", rollTo(newKey(a.ID), end))
	wantCode(t, err, keyplane.ENOTFOUND)
}

func testRollKeyAborts(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	k := mustCreateKey(t, s, newKey(a.ID))
	next := newKey(a.ID)
	next.Hash = k.Hash // the insert fails: the old key must be left as it was
	_, _, err := s.RollKey(ctx, k.ID, rollTo(next, base.Add(time.Hour)))
	wantCode(t, err, keyplane.ECONFLICT)
	got, _ := s.Key(ctx, k.ID)
	if got.RolledToID != "" || got.ExpiresAt != nil {
		t.Fatalf("failed roll changed the old key: %+v", got)
	}
	if _, err := s.Key(ctx, next.ID); keyplane.ErrorCode(err) != keyplane.ENOTFOUND {
		t.Fatalf("failed roll left its successor: %v", err)
	}
}

// testRollKeyNeverNeither reads both keys while a roll commits: at every
// moment at least one of them must be usable.
func testRollKeyNeverNeither(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	for range 5 {
		k := mustCreateKey(t, s, newKey(a.ID))
		next := newKey(a.ID)
		stop := make(chan struct{})
		failures := make(chan string, 1)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				oldRec, oldErr := s.VerifyRecord(ctx, k.Hash)
				newRec, newErr := s.VerifyRecord(ctx, next.Hash)
				usable := func(r *keyplane.VerifyRecord, err error) bool {
					return err == nil && r.Key.Status(base) != keyplane.KeyRevoked && r.Key.Status(base) != keyplane.KeyExpired
				}
				if !usable(oldRec, oldErr) && !usable(newRec, newErr) {
					select {
					case failures <- fmt.Sprintf("neither key usable: old %v, new %v", oldErr, newErr):
					default:
					}
					return
				}
			}
		}()
		if _, _, err := s.RollKey(ctx, k.ID, rollTo(next, base.Add(time.Hour))); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		select {
		case f := <-failures:
			t.Fatal(f)
		default:
		}
	}
}

func testVerifyRecord(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s, "data:*")
	k := mustCreateKey(t, s, newKey(a.ID))
	rec, err := s.VerifyRecord(ctx, k.Hash)
	if err != nil {
		t.Fatal(err)
	}
	assertKeyEqual(t, &rec.Key, k)
	if rec.AccountStatus != keyplane.AccountActive || !equalStrings(rec.AccountAllowedScopes, []string{"data:*"}) {
		t.Fatalf("account facts: %+v", rec)
	}
	if _, err := s.UpdateAccount(ctx, a.ID, func(a *keyplane.Account) error { a.Status = keyplane.AccountSuspended; return nil }); err != nil {
		t.Fatal(err)
	}
	if rec, _ := s.VerifyRecord(ctx, k.Hash); rec.AccountStatus != keyplane.AccountSuspended {
		t.Fatalf("suspension not seen: %+v", rec)
	}
	_, err = s.VerifyRecord(ctx, hashOf("nope"))
	wantCode(t, err, keyplane.ENOTFOUND)
}

func testTimesAreUTC(t *testing.T, s keyplane.Store) {
	zone := time.FixedZone("UTC+9", 9*3600)
	local := time.Date(2026, 7, 1, 9, 0, 0, 123456789, zone)
	a := &keyplane.Account{ID: id("acc"), Name: "Tokyo", Plan: "free", AllowedScopes: []string{}, Status: keyplane.AccountActive, CreatedAt: local, UpdatedAt: local}
	if err := s.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	k := newKey(a.ID)
	k.CreatedAt, k.UpdatedAt, k.ExpiresAt = local, local, ptr(local.Add(time.Hour))
	mustCreateKey(t, s, k)
	gotA, _ := s.Account(ctx, a.ID)
	gotK, _ := s.Key(ctx, k.ID)
	want := time.Date(2026, 7, 1, 0, 0, 0, 123456000, time.UTC)
	for name, got := range map[string]time.Time{"account created": gotA.CreatedAt, "key created": gotK.CreatedAt, "key expires": gotK.ExpiresAt.Add(-time.Hour)} {
		if got.Location() != time.UTC || !got.Equal(want) {
			t.Errorf("%s = %v, want %v in UTC", name, got, want)
		}
	}
}

func testLargeMetadataAndUnicode(t *testing.T, s keyplane.Store) {
	a := newAccount(t, s)
	_, err := s.UpdateAccount(ctx, a.ID, func(a *keyplane.Account) error { a.Name = "Ünïcödé 株式会社 🚀"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Account(ctx, a.ID); got.Name != "Ünïcödé 株式会社 🚀" {
		t.Fatalf("unicode account name came back as %q", got.Name)
	}
	k := newKey(a.ID)
	k.Name = "clé de production — 生产 🔑"
	big := map[string]string{"blob": strings.Repeat("é", 2000), "emoji": "🚀🔑", "quote": `"\\`}
	k.Metadata, _ = json.Marshal(big)
	mustCreateKey(t, s, k)
	got, _ := s.Key(ctx, k.ID)
	assertKeyEqual(t, got, k)
	var back map[string]string
	if err := json.Unmarshal(got.Metadata, &back); err != nil || back["blob"] != big["blob"] || back["quote"] != big["quote"] {
		t.Fatalf("metadata round trip: %v %v", err, back["quote"])
	}

	// Metadata comes back byte for byte: key order, duplicates of nothing,
	// escapes such as \u0000 and big integers are the caller's business.
	exact := newKey(a.ID)
	exact.Metadata = json.RawMessage(`{"z":1,"a":"\u0000","n":123456789012345678901234567890}`)
	mustCreateKey(t, s, exact)
	if got, _ := s.Key(ctx, exact.ID); string(got.Metadata) != string(exact.Metadata) {
		t.Fatalf("metadata %s came back as %s", exact.Metadata, got.Metadata)
	}
}

// testUpdateKeepsRow checks that an update writes the row it locked even if
// the callback changes the id.
func testUpdateKeepsRow(t *testing.T, s keyplane.Store) {
	a, b := newAccount(t, s), newAccount(t, s)
	k1, k2 := mustCreateKey(t, s, newKey(a.ID)), mustCreateKey(t, s, newKey(a.ID))
	if _, err := s.UpdateKey(ctx, k1.ID, func(k *keyplane.Key) error { k.ID, k.Name = k2.ID, "changed"; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Key(ctx, k2.ID); got.Name == "changed" {
		t.Fatal("UpdateKey wrote another key's row")
	}
	if got, _ := s.Key(ctx, k1.ID); got.Name != "changed" {
		t.Fatal("UpdateKey did not write the locked row")
	}
	if _, err := s.UpdateAccount(ctx, a.ID, func(x *keyplane.Account) error { x.ID, x.Name = b.ID, "changed"; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Account(ctx, b.ID); got.Name == "changed" {
		t.Fatal("UpdateAccount wrote another account's row")
	}
	_, _, err := s.ListKeys(ctx, keyplane.KeyFilter{AccountID: a.ID, Status: "sleeping", Now: base, Page: keyplane.Page{Limit: 5}})
	wantCode(t, err, keyplane.EINVALID)
}

// newPlan makes a plan with limits, a quota and scopes; the tests change it.
func newPlan(name string) *keyplane.Plan {
	return &keyplane.Plan{
		Name: name,
		RateLimits: []keyplane.RateLimitPolicy{
			{Name: "per_second", Limit: ptr[int64](10), WindowSeconds: 1, Burst: 5, Algorithm: keyplane.TokenBucket},
			{Name: "open", WindowSeconds: 60, Algorithm: keyplane.SlidingWindow},
		},
		Quota:         &keyplane.Quota{Limit: 100000, Period: keyplane.QuotaMonth, Shared: true},
		MaxKeys:       10,
		AllowedScopes: []string{"data:*", "billing:read"},
		CreatedAt:     base,
		UpdatedAt:     base.Add(time.Minute),
	}
}

func mustCreatePlan(t *testing.T, s keyplane.Store, p *keyplane.Plan) *keyplane.Plan {
	t.Helper()
	if err := s.CreatePlan(ctx, p); err != nil {
		t.Fatalf("CreatePlan %s: %v", p.Name, err)
	}
	return p
}

// assertPlanEqual compares plans as JSON, which tells nil from empty, after
// bringing times to microseconds in UTC; the times read must be in UTC.
func assertPlanEqual(t *testing.T, got, want *keyplane.Plan) {
	t.Helper()
	if got.CreatedAt.Location() != time.UTC || got.UpdatedAt.Location() != time.UTC {
		t.Fatalf("plan %s times not in UTC: %v, %v", got.Name, got.CreatedAt, got.UpdatedAt)
	}
	norm := func(p *keyplane.Plan) keyplane.Plan {
		c := *p
		c.CreatedAt, c.UpdatedAt = c.CreatedAt.Truncate(time.Microsecond).UTC(), c.UpdatedAt.Truncate(time.Microsecond).UTC()
		return c
	}
	g, _ := json.Marshal(norm(got))
	w, _ := json.Marshal(norm(want))
	if !bytes.Equal(g, w) {
		t.Fatalf("plan differs:\n got %s\nwant %s", g, w)
	}
}

func testPlanRoundTrip(t *testing.T, s keyplane.Store) {
	p := mustCreatePlan(t, s, newPlan("pro"))
	got, err := s.Plan(ctx, "pro")
	if err != nil {
		t.Fatal(err)
	}
	assertPlanEqual(t, got, p)
	if !got.CreatedAt.Equal(base.Truncate(time.Microsecond)) || got.RateLimits[1].Limit != nil {
		t.Fatalf("plan read back as %+v", got)
	}

	// Nil limits and quota are NULL; empty limits stay empty; nil scopes read
	// back as an empty list.
	bare := mustCreatePlan(t, s, &keyplane.Plan{Name: "bare", MaxKeys: 1, CreatedAt: base, UpdatedAt: base})
	got, err = s.Plan(ctx, bare.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got.RateLimits != nil || got.Quota != nil || got.AllowedScopes == nil || len(got.AllowedScopes) != 0 || got.MaxKeys != 1 {
		t.Fatalf("bare plan read back as %+v", got)
	}
	empty := newPlan("empty_limits")
	empty.RateLimits, empty.Quota, empty.AllowedScopes = []keyplane.RateLimitPolicy{}, nil, []string{}
	mustCreatePlan(t, s, empty)
	got, err = s.Plan(ctx, empty.Name)
	if err != nil {
		t.Fatal(err)
	}
	assertPlanEqual(t, got, empty)
	if got.RateLimits == nil || len(got.RateLimits) != 0 {
		t.Fatalf("empty rate limits read back as %#v", got.RateLimits)
	}
	if got.KeyPolicy != nil {
		t.Fatalf("a plan without a key policy read back with %+v", got.KeyPolicy)
	}

	// A key policy is kept, changed and removed.
	strict := newPlan("strict")
	strict.KeyPolicy = &keyplane.KeyPolicy{RequireExpiry: true, MaxLifetimeDays: 90}
	mustCreatePlan(t, s, strict)
	got, err = s.Plan(ctx, strict.Name)
	if err != nil {
		t.Fatal(err)
	}
	assertPlanEqual(t, got, strict)
	for _, kp := range []*keyplane.KeyPolicy{{MaxLifetimeDays: 7}, nil} {
		if _, err := s.UpdatePlan(ctx, strict.Name, func(p *keyplane.Plan) error { p.KeyPolicy = kp; return nil }); err != nil {
			t.Fatal(err)
		}
		got, err = s.Plan(ctx, strict.Name)
		if err != nil {
			t.Fatal(err)
		}
		if (got.KeyPolicy == nil) != (kp == nil) || kp != nil && *got.KeyPolicy != *kp {
			t.Fatalf("key policy %+v read back as %+v", kp, got.KeyPolicy)
		}
	}
}

func testDefaultPlanExists(t *testing.T, s keyplane.Store) {
	p, err := s.Plan(ctx, keyplane.DefaultPlanName)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != keyplane.DefaultPlanName || p.MaxKeys != 25 || !equalStrings(p.AllowedScopes, []string{"*"}) || p.RateLimits != nil || p.Quota != nil {
		t.Fatalf("default plan: %+v", p)
	}
	if p.CreatedAt.Location() != time.UTC || !p.UpdatedAt.Equal(p.CreatedAt) || p.CreatedAt.After(time.Now()) {
		t.Fatalf("default plan times: created %v, updated %v", p.CreatedAt, p.UpdatedAt)
	}
}

func testPlanNotFoundAndDuplicate(t *testing.T, s keyplane.Store) {
	_, err := s.Plan(ctx, "missing")
	wantCode(t, err, keyplane.ENOTFOUND)
	var ke *keyplane.Error
	if !errors.As(err, &ke) || ke.Message != `plan "missing" not found` {
		t.Fatalf("not-found error: %v", err)
	}
	called := false
	_, err = s.UpdatePlan(ctx, "missing", func(*keyplane.Plan) error { called = true; return nil })
	wantCode(t, err, keyplane.ENOTFOUND)
	if called {
		t.Fatal("UpdatePlan called back for a missing plan")
	}

	p := mustCreatePlan(t, s, newPlan("pro"))
	dup := newPlan("pro")
	dup.MaxKeys = 99
	wantCode(t, s.CreatePlan(ctx, dup), keyplane.ECONFLICT)
	wantCode(t, s.CreatePlan(ctx, newPlan(keyplane.DefaultPlanName)), keyplane.ECONFLICT)
	got, err := s.Plan(ctx, "pro")
	if err != nil {
		t.Fatal(err)
	}
	assertPlanEqual(t, got, p)
	if d, _ := s.Plan(ctx, keyplane.DefaultPlanName); d == nil || d.MaxKeys != 25 {
		t.Fatalf("a refused duplicate changed the default plan: %+v", d)
	}
}

func testPlanUpdate(t *testing.T, s keyplane.Store) {
	p := mustCreatePlan(t, s, newPlan("pro"))
	other := mustCreatePlan(t, s, newPlan("other"))
	later := base.Add(time.Hour)
	got, err := s.UpdatePlan(ctx, p.Name, func(x *keyplane.Plan) error {
		x.RateLimits = []keyplane.RateLimitPolicy{{Name: "per_minute", Limit: ptr[int64](600), WindowSeconds: 60, Algorithm: keyplane.SlidingWindow}}
		x.Quota = &keyplane.Quota{Limit: 50, Period: keyplane.QuotaDay}
		x.MaxKeys, x.AllowedScopes, x.UpdatedAt = 3, []string{"*"}, later
		x.Name = other.Name // the locked row is written, not this one
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	reread, err := s.Plan(ctx, p.Name)
	if err != nil {
		t.Fatal(err)
	}
	assertPlanEqual(t, reread, got)
	if got.Name != p.Name || reread.MaxKeys != 3 || !equalStrings(reread.AllowedScopes, []string{"*"}) || len(reread.RateLimits) != 1 ||
		*reread.RateLimits[0].Limit != 600 || reread.Quota == nil || reread.Quota.Limit != 50 || reread.Quota.Shared ||
		!reread.UpdatedAt.Equal(later.Truncate(time.Microsecond)) || !reread.CreatedAt.Equal(base.Truncate(time.Microsecond)) {
		t.Fatalf("after update: %+v", reread)
	}
	if o, _ := s.Plan(ctx, other.Name); o == nil || o.MaxKeys != other.MaxKeys {
		t.Fatalf("UpdatePlan wrote another plan's row: %+v", o)
	}

	// An error from the callback leaves the row as it was.
	boom := errors.New("boom")
	if _, err := s.UpdatePlan(ctx, p.Name, func(x *keyplane.Plan) error { x.MaxKeys, x.Quota = 1000, nil; return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if x, _ := s.Plan(ctx, p.Name); x == nil {
		t.Fatal("plan gone after an aborted update")
	} else {
		assertPlanEqual(t, x, reread)
	}

	// Back to unlimited: nil limits and quota are stored as such, not as empty.
	got, err = s.UpdatePlan(ctx, p.Name, func(x *keyplane.Plan) error { x.RateLimits, x.Quota, x.AllowedScopes = nil, nil, nil; return nil })
	if err != nil {
		t.Fatal(err)
	}
	reread, err = s.Plan(ctx, p.Name)
	if err != nil {
		t.Fatal(err)
	}
	assertPlanEqual(t, reread, got)
	if reread.RateLimits != nil || reread.Quota != nil || reread.AllowedScopes == nil || len(reread.AllowedScopes) != 0 {
		t.Fatalf("after clearing: %+v", reread)
	}
	// And to no policies at all, which is not the same as unlimited by nil.
	if _, err := s.UpdatePlan(ctx, p.Name, func(x *keyplane.Plan) error { x.RateLimits = []keyplane.RateLimitPolicy{}; return nil }); err != nil {
		t.Fatal(err)
	}
	if x, _ := s.Plan(ctx, p.Name); x == nil || x.RateLimits == nil || len(x.RateLimits) != 0 {
		t.Fatalf("empty rate limits after update: %+v", x)
	}
}

func testPlanPagination(t *testing.T, s keyplane.Store) {
	// Created out of order; "a_c" before "ab" is byte order, which a
	// linguistic collation would not give.
	names := []string{"zeta", "pro", "a_c", "ab", "a1", "basic", "pro_2", "pro2", "enterprise"}
	for _, n := range names {
		mustCreatePlan(t, s, newPlan(n))
	}
	want := append(slices.Clone(names), keyplane.DefaultPlanName)
	slices.Sort(want)
	for _, limit := range []int{1, 3, len(want), 50} {
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > len(want)+1 {
				t.Fatal("pagination does not end")
			}
			page, next, err := s.ListPlans(ctx, keyplane.Page{Limit: limit, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit {
				t.Fatalf("page of %d, limit %d", len(page), limit)
			}
			for _, p := range page {
				got = append(got, p.Name)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("limit %d: got %v, want %v", limit, got, want)
		}
	}
	page, _, err := s.ListPlans(ctx, keyplane.Page{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range page {
		if p.Name == "pro" {
			assertPlanEqual(t, p, newPlan("pro"))
		}
	}
	_, _, err = s.ListPlans(ctx, keyplane.Page{Limit: 3, Cursor: "!!not-a-cursor"})
	wantCode(t, err, keyplane.EINVALID)
}

func testVerifyRecordCarriesPlan(t *testing.T, s keyplane.Store) {
	p := mustCreatePlan(t, s, newPlan("gold"))
	a := newAccount(t, s, "data:*")
	if _, err := s.UpdateAccount(ctx, a.ID, func(a *keyplane.Account) error { a.Plan = p.Name; return nil }); err != nil {
		t.Fatal(err)
	}
	k := mustCreateKey(t, s, newKey(a.ID))
	rec, err := s.VerifyRecord(ctx, k.Hash)
	if err != nil {
		t.Fatal(err)
	}
	assertKeyEqual(t, &rec.Key, k)
	if rec.Plan != p.Name || !equalStrings(rec.PlanAllowedScopes, p.AllowedScopes) || !equalJSON(rec.PlanRateLimits, p.RateLimits) ||
		!equalJSON(rec.PlanQuota, p.Quota) || !equalJSON(rec.RateLimits(), p.RateLimits) {
		t.Fatalf("plan facts: %+v", rec)
	}

	// A plan change shows in the next record.
	if _, err := s.UpdatePlan(ctx, p.Name, func(x *keyplane.Plan) error {
		x.RateLimits = []keyplane.RateLimitPolicy{{Name: "slow", Limit: ptr[int64](1), WindowSeconds: 1, Algorithm: keyplane.TokenBucket}}
		x.Quota, x.AllowedScopes = &keyplane.Quota{Limit: 7, Period: keyplane.QuotaDay}, []string{"data:read"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rec, err = s.VerifyRecord(ctx, k.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.PlanRateLimits) != 1 || rec.PlanRateLimits[0].Name != "slow" || rec.PlanQuota == nil || rec.PlanQuota.Limit != 7 ||
		!equalStrings(rec.PlanAllowedScopes, []string{"data:read"}) {
		t.Fatalf("plan update not seen: %+v", rec)
	}
	if _, err := s.UpdatePlan(ctx, p.Name, func(x *keyplane.Plan) error { x.RateLimits, x.Quota = nil, nil; return nil }); err != nil {
		t.Fatal(err)
	}
	if rec, err = s.VerifyRecord(ctx, k.Hash); err != nil || rec.PlanRateLimits != nil || rec.PlanQuota != nil {
		t.Fatalf("plan back to unlimited: %+v, %v", rec, err)
	}

	// An account on the default plan gets its facts; one naming a missing
	// plan still verifies, with its plan's name and nothing else.
	def := newAccount(t, s)
	if _, err := s.UpdateAccount(ctx, def.ID, func(a *keyplane.Account) error { a.Plan = keyplane.DefaultPlanName; return nil }); err != nil {
		t.Fatal(err)
	}
	dk := mustCreateKey(t, s, newKey(def.ID))
	if rec, err = s.VerifyRecord(ctx, dk.Hash); err != nil || rec.Plan != keyplane.DefaultPlanName ||
		!equalStrings(rec.PlanAllowedScopes, []string{"*"}) || rec.PlanRateLimits != nil || rec.PlanQuota != nil {
		t.Fatalf("default plan facts: %+v, %v", rec, err)
	}
	orphan := newAccount(t, s) // its plan, "free", does not exist
	ok := mustCreateKey(t, s, newKey(orphan.ID))
	rec, err = s.VerifyRecord(ctx, ok.Hash)
	if err != nil {
		t.Fatal(err)
	}
	assertKeyEqual(t, &rec.Key, ok)
	if rec.Plan != orphan.Plan || rec.PlanRateLimits != nil || rec.PlanQuota != nil || len(rec.PlanAllowedScopes) != 0 || rec.AccountStatus != keyplane.AccountActive {
		t.Fatalf("missing plan facts: %+v", rec)
	}
	// Moving the account to a plan shows in the next record.
	if _, err := s.UpdateAccount(ctx, orphan.ID, func(a *keyplane.Account) error { a.Plan = p.Name; return nil }); err != nil {
		t.Fatal(err)
	}
	if rec, err = s.VerifyRecord(ctx, ok.Hash); err != nil || rec.Plan != p.Name || !equalStrings(rec.PlanAllowedScopes, []string{"data:read"}) {
		t.Fatalf("after moving plans: %+v, %v", rec, err)
	}
}

// equalJSON reports whether a and b encode alike: nil and empty differ.
func equalJSON(a, b any) bool {
	x, errA := json.Marshal(a)
	y, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(x, y)
}

func testTokens(t *testing.T, s keyplane.Store) {
	n0, err := s.CountTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok := &keyplane.Token{ID: id("tok"), Name: "ci", Role: keyplane.RoleVerify, Hash: hashOf("tok" + id("x")), CreatedAt: base}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	got, err := s.TokenByHash(ctx, tok.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != tok.ID || got.Name != "ci" || got.Role != keyplane.RoleVerify || got.Hash != tok.Hash || !got.CreatedAt.Equal(base.Truncate(time.Microsecond)) {
		t.Fatalf("token %+v, want %+v", got, tok)
	}
	if n, _ := s.CountTokens(ctx); n != n0+1 {
		t.Fatalf("CountTokens = %d, want %d", n, n0+1)
	}
	dup := *tok
	dup.ID = id("tok")
	wantCode(t, s.CreateToken(ctx, &dup), keyplane.ECONFLICT)
	_, err = s.TokenByHash(ctx, hashOf("missing"))
	wantCode(t, err, keyplane.ENOTFOUND)
}

func testPing(t *testing.T, s keyplane.Store) {
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00") && len(a) == len(b)
}

// The change log names what was updated at or after a moment, by the rows'
// update times, so a cache can catch up on lost notifications.
func testChangesSince(t *testing.T, s keyplane.Store) {
	later := time.Now().UTC().Add(24 * time.Hour).Truncate(time.Microsecond) // after every row the test or a migration made
	acc, quiet := newAccount(t, s), newAccount(t, s)
	key, other := mustCreateKey(t, s, newKey(acc.ID)), mustCreateKey(t, s, newKey(quiet.ID))
	mustCreatePlan(t, s, newPlan("steady"))
	mustCreatePlan(t, s, newPlan("changing"))
	if _, err := s.UpdateKey(ctx, key.ID, func(k *keyplane.Key) error { k.RevokedAt, k.UpdatedAt = &later, later; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateAccount(ctx, acc.ID, func(a *keyplane.Account) error { a.Status, a.UpdatedAt = keyplane.AccountSuspended, later; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdatePlan(ctx, "changing", func(p *keyplane.Plan) error { p.MaxKeys, p.UpdatedAt = 3, later; return nil }); err != nil {
		t.Fatal(err)
	}
	got, err := s.ChangesSince(ctx, later) // at the moment itself: included
	if err != nil {
		t.Fatal(err)
	}
	want := []keyplane.Change{keyplane.KeyChanged(key.Hash), keyplane.AccountChanged(acc.ID), keyplane.PlanChanged("changing")}
	sortChanges := func(c []keyplane.Change) {
		slices.SortFunc(c, func(a, b keyplane.Change) int { return strings.Compare(a.String(), b.String()) })
	}
	sortChanges(got)
	sortChanges(want)
	if !slices.Equal(got, want) {
		t.Fatalf("ChangesSince = %v, want %v (not %s, %s or plan steady)", got, want, other.ID, quiet.ID)
	}
	if got, err := s.ChangesSince(ctx, later.Add(time.Microsecond)); err != nil || len(got) != 0 {
		t.Fatalf("ChangesSince after every update = %v, %v; want none", got, err)
	}
}

// Tokens keep their scope and expiry, list newest first, and update under
// a lock that counts the other usable operator-wide admin tokens.
func testTokenLifecycle(t *testing.T, s keyplane.Store) {
	acc := newAccount(t, s)
	later := base.Add(time.Hour)
	admin := &keyplane.Token{ID: id("tok"), Name: "ops", Role: keyplane.RoleAdmin, Hash: hashOf(id("h")), CreatedAt: base, UpdatedAt: base}
	scoped := &keyplane.Token{ID: id("tok"), Name: "acme", Role: keyplane.RoleAdmin, AccountID: acc.ID, Hash: hashOf(id("h")), CreatedAt: base, UpdatedAt: base, ExpiresAt: &later}
	for _, tok := range []*keyplane.Token{admin, scoped} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Token(ctx, scoped.ID)
	if err != nil || got.AccountID != acc.ID || got.ExpiresAt == nil || !got.ExpiresAt.Equal(later) || got.RevokedAt != nil || !got.UpdatedAt.Equal(base) {
		t.Fatalf("Token = %+v, %v", got, err)
	}
	_, err = s.Token(ctx, id("tok"))
	wantCode(t, err, keyplane.ENOTFOUND)
	page, next, err := s.ListTokens(ctx, keyplane.Page{Limit: 1})
	if err != nil || len(page) != 1 || page[0].ID != scoped.ID || next == "" {
		t.Fatalf("first page: %v %q %v", page, next, err)
	}
	// Whatever admins other tests or migrations made, the count excludes the
	// token being updated and counts the admin made here.
	var others int
	revokedAt := base.Add(time.Minute)
	updated, err := s.UpdateToken(ctx, scoped.ID, base, func(tok *keyplane.Token, otherAdmins int) error {
		others = otherAdmins
		tok.RevokedAt, tok.UpdatedAt = &revokedAt, revokedAt
		return nil
	})
	if err != nil || updated.RevokedAt == nil || others < 1 {
		t.Fatalf("UpdateToken: %+v, %d other admins, %v", updated, others, err)
	}
	if got, _ := s.TokenByHash(ctx, scoped.Hash); got.RevokedAt == nil || !got.RevokedAt.Equal(revokedAt) || !got.UpdatedAt.Equal(revokedAt) {
		t.Fatalf("after revoking: %+v", got)
	}
	if _, err := s.UpdateToken(ctx, admin.ID, base, func(tok *keyplane.Token, _ int) error {
		tok.RevokedAt = &revokedAt
		return keyplane.Errorf(keyplane.ECONFLICT, "abort")
	}); keyplane.ErrorCode(err) != keyplane.ECONFLICT {
		t.Fatalf("an aborted update: %v", err)
	}
	if got, _ := s.Token(ctx, admin.ID); got.RevokedAt != nil {
		t.Fatal("an aborted update was written")
	}
	changes, err := s.ChangesSince(ctx, revokedAt)
	if err != nil || !slices.Contains(changes, keyplane.TokenChanged(scoped.Hash)) {
		t.Fatalf("ChangesSince after the revocation: %v, %v", changes, err)
	}
}
