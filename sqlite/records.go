package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
)

// Times are stored as Unix microseconds, the precision PostgreSQL keeps too.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func microsPtr(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromMicrosPtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("sqlite: encode %T: %v", v, err)) // only domain types of known shape reach here
	}
	return string(b)
}

// jsonOrNull stores nil pointers and nil slices as SQL NULL: "the plan's".
func rateLimitsJSON(p []keyplane.RateLimitPolicy) sql.NullString {
	if p == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: mustJSON(p), Valid: true}
}

func quotaJSON(q *keyplane.Quota) sql.NullString {
	if q == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: mustJSON(q), Valid: true}
}

func keyPolicyJSON(kp *keyplane.KeyPolicy) sql.NullString {
	if kp == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: mustJSON(kp), Valid: true}
}

func stringsOrEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ---- accounts

const accountColumns = `id, name, plan, allowed_scopes, status, created_at, updated_at`

type scanner interface{ Scan(...any) error }

func scanAccount(row scanner) (*keyplane.Account, error) {
	var a keyplane.Account
	var scopes string
	var created, updated int64
	if err := row.Scan(&a.ID, &a.Name, &a.Plan, &scopes, &a.Status, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(scopes), &a.AllowedScopes); err != nil {
		return nil, fmt.Errorf("sqlite: account %s scopes: %w", a.ID, err)
	}
	a.CreatedAt, a.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &a, nil
}

// CreateAccount inserts a.
func (db *DB) CreateAccount(ctx context.Context, a *keyplane.Account) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO accounts (`+accountColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			a.ID, a.Name, a.Plan, mustJSON(stringsOrEmpty(a.AllowedScopes)), a.Status, micros(a.CreatedAt), micros(a.UpdatedAt))
		return translate(err)
	})
}

// Account returns the account with id.
func (db *DB) Account(ctx context.Context, id string) (*keyplane.Account, error) {
	return accountByID(ctx, db.read, id)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func accountByID(ctx context.Context, q querier, id string) (*keyplane.Account, error) {
	a, err := scanAccount(q.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "account %q not found", id)
	}
	return a, readErr(err)
}

// readErr maps an error from a read; reads fail only when the file does.
func readErr(err error) error {
	if err == nil {
		return nil
	}
	var ke *keyplane.Error
	if errors.As(err, &ke) {
		return err
	}
	return unavailable(err)
}

// ListAccounts returns accounts newest first.
func (db *DB) ListAccounts(ctx context.Context, page keyplane.Page) ([]*keyplane.Account, string, error) {
	after, err := keyplane.DecodeCursor(page.Cursor)
	if err != nil {
		return nil, "", err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+accountColumns+` FROM accounts
		WHERE (? = '' OR id < ?) ORDER BY id DESC LIMIT ?`, after, after, page.Limit+1)
	if err != nil {
		return nil, "", unavailable(err)
	}
	defer rows.Close()
	var out []*keyplane.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, "", readErr(err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, "", unavailable(err)
	}
	out, next := cut(out, page.Limit, func(a *keyplane.Account) string { return a.ID })
	return out, next, nil
}

// cut trims the one extra row fetched to learn whether another page exists.
func cut[T any](items []T, limit int, id func(T) string) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	return items, keyplane.EncodeCursor(id(items[limit-1]))
}

// UpdateAccount applies update to the account in one transaction.
func (db *DB) UpdateAccount(ctx context.Context, id string, update func(*keyplane.Account) error) (*keyplane.Account, error) {
	var out *keyplane.Account
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		a, err := accountByID(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := update(a); err != nil {
			return err
		}
		a.ID = id // the row to write is the one locked, whatever the callback did
		_, err = tx.ExecContext(ctx, `UPDATE accounts SET name = ?, plan = ?, allowed_scopes = ?, status = ?, updated_at = ? WHERE id = ?`,
			a.Name, a.Plan, mustJSON(stringsOrEmpty(a.AllowedScopes)), a.Status, micros(a.UpdatedAt), a.ID)
		out = a
		return translate(err)
	})
	return out, err
}

// ---- keys

const keyColumns = `id, account_id, name, environment, hash, hint, scopes, allowed_cidrs, rate_limits, quota, metadata,
	enabled, created_at, updated_at, expires_at, revoked_at, last_used_at, rolled_from_id, rolled_to_id,
	leaked_at, leak_source, leak_url`

func scanKey(row scanner, extra ...any) (*keyplane.Key, error) {
	var k keyplane.Key
	var hash []byte
	var scopes, cidrs, metadata string
	var limits, quota, from, to sql.NullString
	var created, updated int64
	var expires, revoked, lastUsed, leaked sql.NullInt64
	dest := append([]any{&k.ID, &k.AccountID, &k.Name, &k.Environment, &hash, &k.Hint, &scopes, &cidrs, &limits, &quota, &metadata,
		&k.Enabled, &created, &updated, &expires, &revoked, &lastUsed, &from, &to, &leaked, &k.LeakSource, &k.LeakURL}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	if len(hash) != len(k.Hash) {
		return nil, fmt.Errorf("sqlite: key %s: hash of %d bytes", k.ID, len(hash))
	}
	copy(k.Hash[:], hash)
	if err := decodeKeyJSON(&k, scopes, cidrs, limits, quota); err != nil {
		return nil, err
	}
	k.Metadata = json.RawMessage(metadata)
	k.CreatedAt, k.UpdatedAt = fromMicros(created), fromMicros(updated)
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = fromMicrosPtr(expires), fromMicrosPtr(revoked), fromMicrosPtr(lastUsed)
	k.RolledFromID, k.RolledToID = from.String, to.String
	k.LeakedAt = fromMicrosPtr(leaked)
	return &k, nil
}

func decodeKeyJSON(k *keyplane.Key, scopes, cidrs string, limits, quota sql.NullString) error {
	var cidrText []string
	err := errors.Join(json.Unmarshal([]byte(scopes), &k.Scopes), json.Unmarshal([]byte(cidrs), &cidrText))
	if limits.Valid {
		err = errors.Join(err, json.Unmarshal([]byte(limits.String), &k.RateLimits))
	}
	if quota.Valid {
		k.Quota = new(keyplane.Quota)
		err = errors.Join(err, json.Unmarshal([]byte(quota.String), k.Quota))
	}
	for _, c := range cidrText {
		p, perr := netip.ParsePrefix(c)
		err = errors.Join(err, perr)
		k.AllowedCIDRs = append(k.AllowedCIDRs, p)
	}
	if err != nil {
		return fmt.Errorf("sqlite: key %s: %w", k.ID, err)
	}
	return nil
}

func cidrStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func insertKey(ctx context.Context, tx *sql.Tx, k *keyplane.Key) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.AccountID, k.Name, k.Environment, k.Hash[:], k.Hint, mustJSON(stringsOrEmpty(k.Scopes)), mustJSON(cidrStrings(k.AllowedCIDRs)),
		rateLimitsJSON(k.RateLimits), quotaJSON(k.Quota), string(k.MetadataJSON()), k.Enabled, micros(k.CreatedAt), micros(k.UpdatedAt),
		microsPtr(k.ExpiresAt), microsPtr(k.RevokedAt), microsPtr(k.LastUsedAt), nullString(k.RolledFromID), nullString(k.RolledToID),
		microsPtr(k.LeakedAt), k.LeakSource, k.LeakURL)
	return translate(err)
}

func updateKeyRow(ctx context.Context, tx *sql.Tx, k *keyplane.Key) error {
	_, err := tx.ExecContext(ctx, `UPDATE keys SET name = ?, scopes = ?, allowed_cidrs = ?, rate_limits = ?, quota = ?, metadata = ?,
		enabled = ?, updated_at = ?, expires_at = ?, revoked_at = ?, rolled_to_id = ?, leaked_at = ?, leak_source = ?, leak_url = ? WHERE id = ?`,
		k.Name, mustJSON(stringsOrEmpty(k.Scopes)), mustJSON(cidrStrings(k.AllowedCIDRs)), rateLimitsJSON(k.RateLimits), quotaJSON(k.Quota),
		string(k.MetadataJSON()), k.Enabled, micros(k.UpdatedAt), microsPtr(k.ExpiresAt), microsPtr(k.RevokedAt), nullString(k.RolledToID),
		microsPtr(k.LeakedAt), k.LeakSource, k.LeakURL, k.ID)
	return translate(err)
}

// liveKeyCondition selects keys that use one of the account's active-key
// slots at the time bound to the named parameter: not revoked, not expired, not
// replaced by a roll (disabled keys count). storetest's KeyCap checks it.
const liveKeyCondition = `revoked_at IS NULL AND (expires_at IS NULL OR expires_at > :now) AND rolled_to_id IS NULL`

// CreateKey inserts k if its account has fewer than maxActive live keys.
func (db *DB) CreateKey(ctx context.Context, k *keyplane.Key, maxActive int, now time.Time) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := accountByID(ctx, tx, k.AccountID); err != nil {
			return err
		}
		var n int
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM keys WHERE account_id = :account AND `+liveKeyCondition,
			sql.Named("account", k.AccountID), sql.Named("now", micros(now))).Scan(&n)
		if err != nil {
			return unavailable(err)
		}
		if n >= maxActive {
			return keyplane.Errorf(keyplane.ELIMIT, "the account has %d active keys, its limit", n)
		}
		return insertKey(ctx, tx, k)
	})
}

// Key returns the key with id.
func (db *DB) Key(ctx context.Context, id string) (*keyplane.Key, error) {
	return keyByID(ctx, db.read, id)
}

func keyByID(ctx context.Context, q querier, id string) (*keyplane.Key, error) {
	k, err := scanKey(q.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "key %q not found", id)
	}
	return k, readErr(err)
}

// statusConditions mirror Key.Status in SQL, evaluated at :now.
var statusConditions = map[keyplane.KeyStatus]string{
	"":                   `1 = 1`, // no filter
	keyplane.KeyRevoked:  `revoked_at IS NOT NULL`,
	keyplane.KeyExpired:  `revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= :now`,
	keyplane.KeyDisabled: `revoked_at IS NULL AND (expires_at IS NULL OR expires_at > :now) AND enabled = 0`,
	keyplane.KeyRolling:  `revoked_at IS NULL AND (expires_at IS NULL OR expires_at > :now) AND enabled = 1 AND rolled_to_id IS NOT NULL`,
	keyplane.KeyActive:   `revoked_at IS NULL AND (expires_at IS NULL OR expires_at > :now) AND enabled = 1 AND rolled_to_id IS NULL`,
}

// ListKeys returns an account's keys, newest first, optionally of one status.
func (db *DB) ListKeys(ctx context.Context, f keyplane.KeyFilter) ([]*keyplane.Key, string, error) {
	after, err := keyplane.DecodeCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	cond, ok := statusConditions[f.Status]
	if !ok {
		return nil, "", keyplane.Invalid("status", "%q is not a key status", f.Status)
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+keyColumns+` FROM keys
		WHERE account_id = :account AND (:after = '' OR id < :after) AND `+cond+` ORDER BY id DESC LIMIT :limit`,
		sql.Named("account", f.AccountID), sql.Named("after", after), sql.Named("now", micros(f.Now)), sql.Named("limit", f.Limit+1))
	if err != nil {
		return nil, "", unavailable(err)
	}
	defer rows.Close()
	var out []*keyplane.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, "", readErr(err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, "", unavailable(err)
	}
	out, next := cut(out, f.Limit, func(k *keyplane.Key) string { return k.ID })
	return out, next, nil
}

// UpdateKey applies update to the key in one transaction.
func (db *DB) UpdateKey(ctx context.Context, id string, update func(*keyplane.Key) error) (*keyplane.Key, error) {
	var out *keyplane.Key
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		k, err := keyByID(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := update(k); err != nil {
			return err
		}
		k.ID = id // the row to write is the one locked, whatever the callback did
		out = k
		return updateKeyRow(ctx, tx, k)
	})
	return out, err
}

// RollKey updates the old key and inserts its successor in one transaction.
func (db *DB) RollKey(ctx context.Context, oldID string, roll func(*keyplane.Key) (*keyplane.Key, error)) (old, successor *keyplane.Key, err error) {
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		k, err := keyByID(ctx, tx, oldID)
		if err != nil {
			return err
		}
		next, err := roll(k)
		if err != nil {
			return err
		}
		k.ID = oldID
		if err := insertKey(ctx, tx, next); err != nil {
			return err
		}
		old, successor = k, next
		return updateKeyRow(ctx, tx, k)
	})
	if err != nil {
		return nil, nil, err
	}
	return old, successor, nil
}

// verifyRecordQuery joins the plan too; LEFT, so an account naming a missing
// plan still verifies, with no plan facts.
var verifyRecordQuery = `SELECT ` + prefixed("k.", keyColumns) + `, a.status, a.allowed_scopes,
	a.plan, p.rate_limits, p.quota, p.allowed_scopes
	FROM keys k JOIN accounts a ON a.id = k.account_id LEFT JOIN plans p ON p.name = a.plan WHERE k.hash = ?`

// VerifyRecord returns the key with hash, its account's status and scopes and
// its plan's limits and scopes.
func (db *DB) VerifyRecord(ctx context.Context, hash [32]byte) (*keyplane.VerifyRecord, error) {
	var status, scopes, plan string
	var planLimits, planQuota, planScopes sql.NullString
	k, err := scanKey(db.verifyStmt.QueryRowContext(ctx, hash[:]), &status, &scopes, &plan, &planLimits, &planQuota, &planScopes)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "no key with that hash")
	} else if err != nil {
		return nil, readErr(err)
	}
	rec := &keyplane.VerifyRecord{Key: *k, AccountStatus: keyplane.AccountStatus(status), Plan: plan}
	if err := json.Unmarshal([]byte(scopes), &rec.AccountAllowedScopes); err != nil {
		return nil, fmt.Errorf("sqlite: account %s scopes: %w", k.AccountID, err)
	}
	if planScopes.Valid { // the plan exists: its scopes column is NOT NULL
		var p keyplane.Plan
		if err := decodePlanJSON(&p, planLimits, planQuota, planScopes.String); err != nil {
			return nil, fmt.Errorf("sqlite: plan %s: %w", plan, err)
		}
		rec.PlanRateLimits, rec.PlanQuota, rec.PlanAllowedScopes = p.RateLimits, p.Quota, p.AllowedScopes
	}
	return rec, nil
}

// ---- plans

const planColumns = `name, rate_limits, quota, max_keys, allowed_scopes, created_at, updated_at, key_policy`

func scanPlan(row scanner) (*keyplane.Plan, error) {
	var p keyplane.Plan
	var limits, quota, policy sql.NullString
	var scopes string
	var created, updated int64
	if err := row.Scan(&p.Name, &limits, &quota, &p.MaxKeys, &scopes, &created, &updated, &policy); err != nil {
		return nil, err
	}
	if policy.Valid {
		p.KeyPolicy = new(keyplane.KeyPolicy)
		if err := json.Unmarshal([]byte(policy.String), p.KeyPolicy); err != nil {
			return nil, fmt.Errorf("sqlite: plan %s: key_policy: %w", p.Name, err)
		}
	}
	if err := decodePlanJSON(&p, limits, quota, scopes); err != nil {
		return nil, fmt.Errorf("sqlite: plan %s: %w", p.Name, err)
	}
	p.CreatedAt, p.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &p, nil
}

// decodePlanJSON fills a plan's JSON columns: NULL limits and quota stay nil,
// and the scopes are never nil.
func decodePlanJSON(p *keyplane.Plan, limits, quota sql.NullString, scopes string) error {
	err := json.Unmarshal([]byte(scopes), &p.AllowedScopes)
	p.AllowedScopes = stringsOrEmpty(p.AllowedScopes)
	if limits.Valid {
		err = errors.Join(err, json.Unmarshal([]byte(limits.String), &p.RateLimits))
	}
	if quota.Valid {
		p.Quota = new(keyplane.Quota)
		err = errors.Join(err, json.Unmarshal([]byte(quota.String), p.Quota))
	}
	return err
}

// CreatePlan inserts p.
func (db *DB) CreatePlan(ctx context.Context, p *keyplane.Plan) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO plans (`+planColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			p.Name, rateLimitsJSON(p.RateLimits), quotaJSON(p.Quota), p.MaxKeys, mustJSON(stringsOrEmpty(p.AllowedScopes)),
			micros(p.CreatedAt), micros(p.UpdatedAt), keyPolicyJSON(p.KeyPolicy))
		return translate(err)
	})
}

// Plan returns the plan with name.
func (db *DB) Plan(ctx context.Context, name string) (*keyplane.Plan, error) {
	return planByName(ctx, db.read, name)
}

func planByName(ctx context.Context, q querier, name string) (*keyplane.Plan, error) {
	p, err := scanPlan(q.QueryRowContext(ctx, `SELECT `+planColumns+` FROM plans WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "plan %q not found", name)
	}
	return p, readErr(err)
}

// ListPlans returns plans by name, ascending.
func (db *DB) ListPlans(ctx context.Context, page keyplane.Page) ([]*keyplane.Plan, string, error) {
	after, err := keyplane.DecodeCursor(page.Cursor)
	if err != nil {
		return nil, "", err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+planColumns+` FROM plans
		WHERE (? = '' OR name > ?) ORDER BY name LIMIT ?`, after, after, page.Limit+1)
	if err != nil {
		return nil, "", unavailable(err)
	}
	defer rows.Close()
	var out []*keyplane.Plan
	for rows.Next() {
		p, err := scanPlan(rows)
		if err != nil {
			return nil, "", readErr(err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, "", unavailable(err)
	}
	out, next := cut(out, page.Limit, func(p *keyplane.Plan) string { return p.Name })
	return out, next, nil
}

// UpdatePlan applies update to the plan in one transaction.
func (db *DB) UpdatePlan(ctx context.Context, name string, update func(*keyplane.Plan) error) (*keyplane.Plan, error) {
	var out *keyplane.Plan
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		p, err := planByName(ctx, tx, name)
		if err != nil {
			return err
		}
		if err := update(p); err != nil {
			return err
		}
		p.Name = name                                     // the row to write is the one locked, whatever the callback did
		p.AllowedScopes = stringsOrEmpty(p.AllowedScopes) // as a read would return it
		_, err = tx.ExecContext(ctx, `UPDATE plans SET rate_limits = ?, quota = ?, max_keys = ?, allowed_scopes = ?, updated_at = ?, key_policy = ? WHERE name = ?`,
			rateLimitsJSON(p.RateLimits), quotaJSON(p.Quota), p.MaxKeys, mustJSON(p.AllowedScopes), micros(p.UpdatedAt), keyPolicyJSON(p.KeyPolicy), p.Name)
		out = p
		return translate(err)
	})
	return out, err
}

// prefixed qualifies each column of a comma-separated list with p.
func prefixed(p, columns string) string {
	fields := strings.Split(columns, ",")
	for i, f := range fields {
		fields[i] = p + strings.TrimSpace(f)
	}
	return strings.Join(fields, ", ")
}
