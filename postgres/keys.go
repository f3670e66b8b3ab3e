package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyplane/keyplane"
)

const keyColumns = `id, account_id, name, environment, hash, hint, scopes, allowed_cidrs, rate_limits, quota, metadata,
	enabled, created_at, updated_at, expires_at, revoked_at, last_used_at, rolled_from_id, rolled_to_id,
	leaked_at, leak_source, leak_url`

func scanKey(row pgx.Row, extra ...any) (*keyplane.Key, error) {
	var k keyplane.Key
	var hash, limits, quota, metadata []byte
	var cidrs []string
	var from, to *string
	var created, updated time.Time
	var expires, revoked, lastUsed, leaked *time.Time
	dest := append([]any{&k.ID, &k.AccountID, &k.Name, &k.Environment, &hash, &k.Hint, &k.Scopes, &cidrs, &limits, &quota, &metadata,
		&k.Enabled, &created, &updated, &expires, &revoked, &lastUsed, &from, &to, &leaked, &k.LeakSource, &k.LeakURL}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	if len(hash) != len(k.Hash) {
		return nil, fmt.Errorf("key %s: hash of %d bytes", k.ID, len(hash))
	}
	copy(k.Hash[:], hash)
	if err := decodeKeyColumns(&k, cidrs, limits, quota); err != nil {
		return nil, err
	}
	k.Metadata = json.RawMessage(metadata)
	k.CreatedAt, k.UpdatedAt = utc(created), utc(updated)
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = utcPtr(expires), utcPtr(revoked), utcPtr(lastUsed)
	k.RolledFromID, k.RolledToID = stringOrEmpty(from), stringOrEmpty(to)
	k.LeakedAt = utcPtr(leaked)
	return &k, nil
}

// decodeKeyColumns fills the fields stored as text that needs parsing. No
// CIDRs read back as nil, as in SQLite.
func decodeKeyColumns(k *keyplane.Key, cidrs []string, limits, quota []byte) error {
	var err error
	if limits != nil {
		err = json.Unmarshal(limits, &k.RateLimits)
	}
	if quota != nil {
		k.Quota = new(keyplane.Quota)
		err = errors.Join(err, json.Unmarshal(quota, k.Quota))
	}
	for _, c := range cidrs {
		p, perr := netip.ParsePrefix(c)
		err = errors.Join(err, perr)
		k.AllowedCIDRs = append(k.AllowedCIDRs, p)
	}
	if err != nil {
		return fmt.Errorf("key %s: %w", k.ID, err)
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

func insertKey(ctx context.Context, tx pgx.Tx, k *keyplane.Key) error {
	_, err := tx.Exec(ctx, `INSERT INTO keys (`+keyColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`,
		k.ID, k.AccountID, k.Name, k.Environment, k.Hash[:], k.Hint, stringsOrEmpty(k.Scopes), cidrStrings(k.AllowedCIDRs),
		rateLimitsJSON(k.RateLimits), quotaJSON(k.Quota), string(k.MetadataJSON()), k.Enabled, k.CreatedAt, k.UpdatedAt,
		k.ExpiresAt, k.RevokedAt, k.LastUsedAt, nullIfEmpty(k.RolledFromID), nullIfEmpty(k.RolledToID), k.LeakedAt, k.LeakSource, k.LeakURL)
	return translate(err)
}

func updateKeyRow(ctx context.Context, tx pgx.Tx, k *keyplane.Key) error {
	_, err := tx.Exec(ctx, `UPDATE keys SET name = $1, scopes = $2, allowed_cidrs = $3, rate_limits = $4, quota = $5, metadata = $6,
		enabled = $7, updated_at = $8, expires_at = $9, revoked_at = $10, rolled_to_id = $11, leaked_at = $12, leak_source = $13, leak_url = $14
		WHERE id = $15`,
		k.Name, stringsOrEmpty(k.Scopes), cidrStrings(k.AllowedCIDRs), rateLimitsJSON(k.RateLimits), quotaJSON(k.Quota),
		string(k.MetadataJSON()), k.Enabled, k.UpdatedAt, k.ExpiresAt, k.RevokedAt, nullIfEmpty(k.RolledToID), k.LeakedAt, k.LeakSource, k.LeakURL, k.ID)
	return translate(err)
}

// liveKeyCondition selects keys that use one of the account's active-key
// slots at @now: not revoked, not expired, not replaced by a roll (disabled
// keys count). It mirrors the sqlite package; storetest's KeyCap holds both to it.
const liveKeyCondition = `revoked_at IS NULL AND (expires_at IS NULL OR expires_at > @now) AND rolled_to_id IS NULL`

// CreateKey inserts k if its account has fewer than maxActive live keys. The
// account row stays locked until commit, so concurrent creates for one
// account count one after another and never exceed the cap together.
func (db *DB) CreateKey(ctx context.Context, k *keyplane.Key, maxActive int, now time.Time) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := accountByID(ctx, tx, k.AccountID, forUpdate); err != nil {
			return err
		}
		var n int
		err := tx.QueryRow(ctx, `SELECT count(*) FROM keys WHERE account_id = @account AND `+liveKeyCondition,
			pgx.NamedArgs{"account": k.AccountID, "now": now}).Scan(&n)
		if err != nil {
			return translate(err)
		}
		if n >= maxActive {
			return keyplane.Errorf(keyplane.ELIMIT, "the account has %d active keys, its limit", n)
		}
		return insertKey(ctx, tx, k)
	})
}

// Key returns the key with id.
func (db *DB) Key(ctx context.Context, id string) (*keyplane.Key, error) {
	return keyByID(ctx, db.pool, id, noLock)
}

func keyByID(ctx context.Context, q queryer, id string, lock rowLock) (*keyplane.Key, error) {
	k, err := scanKey(q.QueryRow(ctx, `SELECT `+keyColumns+` FROM keys WHERE id = $1`+string(lock), id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "key %q not found", id)
	}
	return k, translate(err)
}

// statusConditions mirror Key.Status in SQL, evaluated at @now.
var statusConditions = map[keyplane.KeyStatus]string{
	"":                   `TRUE`, // no filter
	keyplane.KeyRevoked:  `revoked_at IS NOT NULL`,
	keyplane.KeyExpired:  `revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= @now`,
	keyplane.KeyDisabled: `revoked_at IS NULL AND (expires_at IS NULL OR expires_at > @now) AND NOT enabled`,
	keyplane.KeyRolling:  `revoked_at IS NULL AND (expires_at IS NULL OR expires_at > @now) AND enabled AND rolled_to_id IS NOT NULL`,
	keyplane.KeyActive:   `revoked_at IS NULL AND (expires_at IS NULL OR expires_at > @now) AND enabled AND rolled_to_id IS NULL`,
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
	rows, err := db.pool.Query(ctx, `SELECT `+keyColumns+` FROM keys
		WHERE account_id = @account AND (@after = '' OR id < @after) AND `+cond+` ORDER BY id DESC LIMIT @limit`,
		pgx.NamedArgs{"account": f.AccountID, "after": after, "now": f.Now, "limit": f.Limit + 1})
	if err != nil {
		return nil, "", translate(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*keyplane.Key, error) { return scanKey(row) })
	if err != nil {
		return nil, "", translate(err)
	}
	out, next := cut(out, f.Limit, func(k *keyplane.Key) string { return k.ID })
	return out, next, nil
}

// UpdateKey applies update to the locked key in one transaction.
func (db *DB) UpdateKey(ctx context.Context, id string, update func(*keyplane.Key) error) (*keyplane.Key, error) {
	var out *keyplane.Key
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		k, err := keyByID(ctx, tx, id, forUpdate)
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

// RollKey locks the old key, inserts its successor and updates the old key in
// one transaction, so readers see both keys before or both after.
func (db *DB) RollKey(ctx context.Context, oldID string, roll func(*keyplane.Key) (*keyplane.Key, error)) (old, successor *keyplane.Key, err error) {
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		k, err := keyByID(ctx, tx, oldID, forUpdate)
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
	FROM keys k JOIN accounts a ON a.id = k.account_id LEFT JOIN plans p ON p.name = a.plan WHERE k.hash = $1`

// VerifyRecord returns the key with hash, its account's status and scopes and
// its plan's limits and scopes.
func (db *DB) VerifyRecord(ctx context.Context, hash [32]byte) (*keyplane.VerifyRecord, error) {
	rec := &keyplane.VerifyRecord{}
	var planLimits, planQuota []byte
	k, err := scanKey(db.pool.QueryRow(ctx, verifyRecordQuery, hash[:]), &rec.AccountStatus, &rec.AccountAllowedScopes,
		&rec.Plan, &planLimits, &planQuota, &rec.PlanAllowedScopes)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "no key with that hash")
	} else if err != nil {
		return nil, translate(err)
	}
	var p keyplane.Plan
	if err := decodePlanColumns(&p, planLimits, planQuota); err != nil {
		return nil, fmt.Errorf("plan %s: %w", rec.Plan, err)
	}
	rec.Key, rec.PlanRateLimits, rec.PlanQuota = *k, p.RateLimits, p.Quota
	return rec, nil
}

// prefixed qualifies each column of a comma-separated list with p.
func prefixed(p, columns string) string {
	fields := strings.Split(columns, ",")
	for i, f := range fields {
		fields[i] = p + strings.TrimSpace(f)
	}
	return strings.Join(fields, ", ")
}
