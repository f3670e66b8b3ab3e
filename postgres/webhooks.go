package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyplane/keyplane"
)

// ---- endpoints

const endpointColumns = `id, account_id, url, description, events, enabled, disabled_reason, secrets, failing_since, created_at, updated_at`

func scanEndpoint(row pgx.Row) (*keyplane.WebhookEndpoint, error) {
	var e keyplane.WebhookEndpoint
	var account *string
	var secrets []byte
	var failing *time.Time
	var created, updated time.Time
	if err := row.Scan(&e.ID, &account, &e.URL, &e.Description, &e.Events, &e.Enabled, &e.DisabledReason, &secrets, &failing, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(secrets, &e.Secrets); err != nil {
		return nil, fmt.Errorf("postgres: webhook endpoint %s: %w", e.ID, err)
	}
	if len(e.Events) == 0 {
		e.Events = nil // every event
	}
	e.AccountID, e.FailingSince = stringOrEmpty(account), utcPtr(failing)
	e.CreatedAt, e.UpdatedAt = utc(created), utc(updated)
	return &e, nil
}

func secretsJSON(s []keyplane.WebhookSecret) []byte {
	if s == nil {
		s = []keyplane.WebhookSecret{}
	}
	return mustJSON(s)
}

// CreateWebhookEndpoint inserts e unless its account has max endpoints.
// The account's row is locked, so concurrent creations count each other.
func (db *DB) CreateWebhookEndpoint(ctx context.Context, e *keyplane.WebhookEndpoint, max int) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		if e.AccountID != "" {
			if _, err := accountByID(ctx, tx, e.AccountID, forUpdate); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM webhook_endpoints WHERE account_id = $1`, e.AccountID).Scan(&n); err != nil {
				return translate(err)
			}
			if n >= max {
				return keyplane.Invalid("url", "the account has %d webhook endpoints, the most it may have", n)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO webhook_endpoints (`+endpointColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			e.ID, nullIfEmpty(e.AccountID), e.URL, e.Description, stringsOrEmpty(e.Events), e.Enabled, e.DisabledReason,
			secretsJSON(e.Secrets), e.FailingSince, e.CreatedAt, e.UpdatedAt)
		return translate(err)
	})
}

// WebhookEndpoint returns the endpoint with id.
func (db *DB) WebhookEndpoint(ctx context.Context, id string) (*keyplane.WebhookEndpoint, error) {
	return endpointByID(ctx, db.pool, id, "")
}

func endpointByID(ctx context.Context, q queryer, id string, lock rowLock) (*keyplane.WebhookEndpoint, error) {
	e, err := scanEndpoint(q.QueryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = $1`+string(lock), id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "webhook endpoint %q not found", id)
	}
	return e, translate(err)
}

// ListWebhookEndpoints lists an account's endpoints, or the operator's, by id.
func (db *DB) ListWebhookEndpoints(ctx context.Context, f keyplane.WebhookEndpointFilter) ([]*keyplane.WebhookEndpoint, string, error) {
	after, err := keyplane.DecodeCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	owner := `account_id = @account`
	if f.Operator {
		owner = `account_id IS NULL`
	}
	rows, err := db.pool.Query(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE `+owner+` AND id > @after ORDER BY id LIMIT @limit`,
		pgx.NamedArgs{"account": f.AccountID, "after": after, "limit": f.Limit + 1})
	if err != nil {
		return nil, "", translate(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*keyplane.WebhookEndpoint, error) { return scanEndpoint(row) })
	if err != nil {
		return nil, "", translate(err)
	}
	out, next := cut(out, f.Limit, func(e *keyplane.WebhookEndpoint) string { return e.ID })
	return out, next, nil
}

// UpdateWebhookEndpoint applies update to the locked endpoint.
func (db *DB) UpdateWebhookEndpoint(ctx context.Context, id string, update func(*keyplane.WebhookEndpoint) error) (*keyplane.WebhookEndpoint, error) {
	var out *keyplane.WebhookEndpoint
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		e, err := endpointByID(ctx, tx, id, forUpdate)
		if err != nil {
			return err
		}
		if err := update(e); err != nil {
			return err
		}
		e.ID, out = id, e
		_, err = tx.Exec(ctx, `UPDATE webhook_endpoints SET url = $1, description = $2, events = $3, enabled = $4, disabled_reason = $5,
			secrets = $6, failing_since = $7, updated_at = $8 WHERE id = $9`,
			e.URL, e.Description, stringsOrEmpty(e.Events), e.Enabled, e.DisabledReason, secretsJSON(e.Secrets), e.FailingSince, e.UpdatedAt, e.ID)
		return translate(err)
	})
	return out, err
}

// DeleteWebhookEndpoint deletes the endpoint, its deliveries and attempts.
func (db *DB) DeleteWebhookEndpoint(ctx context.Context, id string) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM webhook_endpoints WHERE id = $1`, id)
		if err != nil {
			return translate(err)
		}
		if tag.RowsAffected() == 0 {
			return keyplane.Errorf(keyplane.ENOTFOUND, "webhook endpoint %q not found", id)
		}
		return nil
	})
}

// ---- the outbox

// RaiseWebhookEvents writes events and their deliveries in a transaction.
func (db *DB) RaiseWebhookEvents(ctx context.Context, events []*keyplane.WebhookEvent) error {
	if len(events) == 0 && keyplane.AuditTrailFromContext(ctx) == nil {
		return nil
	}
	return db.inTx(ctx, func(tx pgx.Tx) error { return raiseWebhooks(ctx, tx, events) })
}

// raiseWebhooks writes each event's message and one delivery per enabled
// endpoint subscribed to it; see the sqlite package, which does the same.
func raiseWebhooks(ctx context.Context, tx pgx.Tx, events []*keyplane.WebhookEvent) error {
	for _, ev := range events {
		if ev.Once != "" {
			first, err := markOnce(ctx, tx, ev)
			if err != nil {
				return err
			}
			if !first {
				continue
			}
		}
		endpoints, err := subscribedEndpoints(ctx, tx, ev)
		if err != nil {
			return err
		}
		ev.Deliveries = len(endpoints)
		if len(endpoints) == 0 && ev.Once == "" {
			continue
		}
		if _, err := tx.Exec(ctx, `INSERT INTO webhook_messages (id, account_id, type, created_at, payload) VALUES ($1, $2, $3, $4, $5)`,
			ev.ID, ev.AccountID, ev.Type, ev.Time, string(ev.Payload)); err != nil {
			return translate(err)
		}
		if len(endpoints) > 0 {
			_, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (message_id, endpoint_id, status, attempts, round, last_try, next_attempt_at, claim, updated_at)
				SELECT $1, e, 'pending', 0, 0, false, $3, '', $3 FROM unnest($2::text[]) AS e`, ev.ID, endpoints, ev.Time)
			if err != nil {
				return translate(err)
			}
		}
	}
	return nil
}

// markOnce records ev's Once name and reports whether it is the first
// within OnceEvery; a repeat takes the first event's id. Concurrent
// transactions with the same name wait on the row: one wins.
func markOnce(ctx context.Context, tx pgx.Tx, ev *keyplane.WebhookEvent) (bool, error) {
	cutoff := time.Unix(0, 0) // before any mark: never raised again
	if ev.OnceEvery > 0 {
		cutoff = ev.Time.Add(-ev.OnceEvery)
	}
	var id string
	err := tx.QueryRow(ctx, `INSERT INTO webhook_marks (mark, message_id, raised_at) VALUES ($1, $2, $3)
		ON CONFLICT (mark) DO UPDATE SET message_id = excluded.message_id, raised_at = excluded.raised_at
		WHERE webhook_marks.raised_at <= $4 RETURNING message_id`, ev.Once, ev.ID, ev.Time, cutoff).Scan(&id)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return false, translate(err)
	}
	if err := tx.QueryRow(ctx, `SELECT message_id FROM webhook_marks WHERE mark = $1`, ev.Once).Scan(&ev.ID); err != nil {
		return false, translate(err)
	}
	ev.Duplicate = true
	return false, nil
}

// subscribedEndpoints returns the ids of the enabled endpoints that
// receive ev: its account's and the operator's, or the one it names.
func subscribedEndpoints(ctx context.Context, tx pgx.Tx, ev *keyplane.WebhookEvent) ([]string, error) {
	where := `(account_id = @account OR account_id IS NULL)`
	switch {
	case ev.EndpointID != "":
		where = `id = @endpoint`
	case ev.AccountOnly:
		where = `account_id = @account`
	}
	rows, err := tx.Query(ctx, `SELECT id, events FROM webhook_endpoints WHERE enabled AND `+where,
		pgx.NamedArgs{"account": ev.AccountID, "endpoint": ev.EndpointID})
	if err != nil {
		return nil, translate(err)
	}
	var ids []string
	var id string
	var filters []string
	_, err = pgx.ForEachRow(rows, []any{&id, &filters}, func() error {
		if ev.EndpointID != "" || keyplane.EventMatches(filters, ev.Type) {
			ids = append(ids, id)
		}
		return nil
	})
	return ids, translate(err)
}

const messageColumns = `m.id, m.account_id, m.type, m.created_at, m.payload`

// WebhookMessage returns the message with id.
func (db *DB) WebhookMessage(ctx context.Context, id string) (*keyplane.WebhookMessage, error) {
	var m keyplane.WebhookMessage
	var payload string
	err := db.pool.QueryRow(ctx, `SELECT `+messageColumns+` FROM webhook_messages m WHERE m.id = $1`, id).Scan(&m.ID, &m.AccountID, &m.Type, &m.Time, &payload)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "message %q not found", id)
	}
	if err != nil {
		return nil, translate(err)
	}
	m.Time, m.Payload = utc(m.Time), json.RawMessage(payload)
	return &m, nil
}

const deliveryColumns = `d.endpoint_id, d.status, d.attempts, d.round, d.last_try, d.next_attempt_at, d.updated_at, d.claim`

func scanDelivery(row pgx.Row) (*keyplane.WebhookDelivery, error) {
	var d keyplane.WebhookDelivery
	var payload string
	m := &d.Message
	if err := row.Scan(&m.ID, &m.AccountID, &m.Type, &m.Time, &payload,
		&d.EndpointID, &d.Status, &d.Attempts, &d.Round, &d.LastTry, &d.NextAttemptAt, &d.UpdatedAt, &d.Claim); err != nil {
		return nil, err
	}
	m.Time, m.Payload = utc(m.Time), json.RawMessage(payload)
	d.NextAttemptAt, d.UpdatedAt = utc(d.NextAttemptAt), utc(d.UpdatedAt)
	return &d, nil
}

type rowsQueryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func queryDeliveries(ctx context.Context, q rowsQueryer, where string, args ...any) ([]*keyplane.WebhookDelivery, error) {
	rows, err := q.Query(ctx, `SELECT `+messageColumns+`, `+deliveryColumns+`
		FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id WHERE `+where, args...)
	if err != nil {
		return nil, translate(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*keyplane.WebhookDelivery, error) { return scanDelivery(row) })
	return out, translate(err)
}

// ListWebhookDeliveries lists an endpoint's deliveries, newest first, with
// their attempts.
func (db *DB) ListWebhookDeliveries(ctx context.Context, endpointID string, page keyplane.Page) ([]*keyplane.WebhookDelivery, string, error) {
	before, err := keyplane.DecodeCursor(page.Cursor)
	if err != nil {
		return nil, "", err
	}
	if before == "" {
		before = "~" // after every id
	}
	out, err := queryDeliveries(ctx, db.pool, `d.endpoint_id = $1 AND d.message_id < $2 ORDER BY d.message_id DESC LIMIT $3`,
		endpointID, before, page.Limit+1)
	if err != nil {
		return nil, "", err
	}
	out, next := cut(out, page.Limit, func(d *keyplane.WebhookDelivery) string { return d.Message.ID })
	return out, next, db.withAttempts(ctx, out)
}

// MessageDeliveries lists a message's deliveries with their attempts.
func (db *DB) MessageDeliveries(ctx context.Context, messageID string) ([]*keyplane.WebhookDelivery, error) {
	out, err := queryDeliveries(ctx, db.pool, `d.message_id = $1 ORDER BY d.endpoint_id`, messageID)
	if err != nil {
		return nil, err
	}
	return out, db.withAttempts(ctx, out)
}

func (db *DB) withAttempts(ctx context.Context, deliveries []*keyplane.WebhookDelivery) error {
	for _, d := range deliveries {
		rows, err := db.pool.Query(ctx, `SELECT id, attempted_at, status_code, duration_us, response, error FROM webhook_attempts
			WHERE message_id = $1 AND endpoint_id = $2 ORDER BY id`, d.Message.ID, d.EndpointID)
		if err != nil {
			return translate(err)
		}
		a := keyplane.WebhookAttempt{MessageID: d.Message.ID, EndpointID: d.EndpointID}
		var us int64
		_, err = pgx.ForEachRow(rows, []any{&a.ID, &a.Time, &a.StatusCode, &us, &a.Response, &a.Error}, func() error {
			a.Time, a.Duration = utc(a.Time), time.Duration(us)*time.Microsecond
			d.History = append(d.History, a)
			return nil
		})
		if err != nil {
			return translate(err)
		}
	}
	return nil
}

// ---- dispatch

// claimScan is how many due deliveries a claim looks at per delivery it
// may return: enough to find other endpoints' behind a busy one's.
const claimScan = 4

// ClaimWebhookDeliveries claims due deliveries. FOR UPDATE SKIP LOCKED
// keeps concurrent claimers (other instances) off the rows this one is
// claiming, without waiting for them; once committed, the pushed-back
// next attempt keeps them off until the lease ends.
func (db *DB) ClaimWebhookDeliveries(ctx context.Context, req keyplane.ClaimRequest) ([]*keyplane.WebhookDelivery, error) {
	var out []*keyplane.WebhookDelivery
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		busy := []string{}
		for id, n := range req.Busy {
			if req.PerEndpoint > 0 && n >= req.PerEndpoint {
				busy = append(busy, id)
			}
		}
		rows, err := tx.Query(ctx, `SELECT d.message_id, d.endpoint_id FROM webhook_deliveries d
			WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND d.endpoint_id <> ALL($2)
			AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id AND e.enabled)
			ORDER BY d.next_attempt_at LIMIT $3 FOR UPDATE OF d SKIP LOCKED`, req.Now, busy, req.Limit*claimScan)
		if err != nil {
			return translate(err)
		}
		due, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*keyplane.WebhookDelivery, error) {
			d := &keyplane.WebhookDelivery{}
			return d, row.Scan(&d.Message.ID, &d.EndpointID)
		})
		if err != nil {
			return translate(err)
		}
		picked := pickClaims(due, req)
		if len(picked) == 0 {
			return nil
		}
		claim := newClaim()
		until := req.Now.Add(req.Lease)
		messages, endpoints := make([]string, len(picked)), make([]string, len(picked))
		for i, d := range picked {
			messages[i], endpoints[i] = d.Message.ID, d.EndpointID
		}
		_, err = tx.Exec(ctx, `UPDATE webhook_deliveries d SET next_attempt_at = $1, claim = $2
			FROM unnest($3::text[], $4::text[]) AS c (message_id, endpoint_id)
			WHERE d.message_id = c.message_id AND d.endpoint_id = c.endpoint_id`, until, claim, messages, endpoints)
		if err != nil {
			return translate(err)
		}
		out, err = queryDeliveries(ctx, tx, `(d.message_id, d.endpoint_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
			ORDER BY d.next_attempt_at, d.message_id`, messages, endpoints)
		return err
	})
	return out, err
}

// pickClaims takes up to req.Limit deliveries, at most PerEndpoint (less
// those in flight) to one endpoint.
func pickClaims(due []*keyplane.WebhookDelivery, req keyplane.ClaimRequest) []*keyplane.WebhookDelivery {
	taken := map[string]int{}
	var out []*keyplane.WebhookDelivery
	for _, d := range due {
		if len(out) >= req.Limit {
			break
		}
		if req.PerEndpoint > 0 && req.Busy[d.EndpointID]+taken[d.EndpointID] >= req.PerEndpoint {
			continue
		}
		taken[d.EndpointID]++
		out = append(out, d)
	}
	return out
}

func newClaim() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// RecordWebhookAttempt records an attempt and the delivery's new state.
func (db *DB) RecordWebhookAttempt(ctx context.Context, out keyplane.AttemptOutcome) (*keyplane.WebhookEndpoint, error) {
	var e *keyplane.WebhookEndpoint
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		a := out.Attempt
		_, err := tx.Exec(ctx, `INSERT INTO webhook_attempts (id, message_id, endpoint_id, attempted_at, status_code, duration_us, response, error)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, a.ID, a.MessageID, a.EndpointID, a.Time, a.StatusCode, a.Duration.Microseconds(), a.Response, a.Error)
		if err != nil {
			return translate(err)
		}
		next := a.Time
		st := keyplane.DeliveryPending
		switch {
		case out.Delivered:
			st = keyplane.DeliveryDelivered
		case out.Next == nil:
			st = keyplane.DeliveryFailed
		default:
			next = *out.Next
		}
		_, err = tx.Exec(ctx, `UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, round = round + 1, next_attempt_at = $2,
			claim = '', updated_at = $3 WHERE message_id = $4 AND endpoint_id = $5 AND claim = $6`,
			st, next, a.Time, a.MessageID, a.EndpointID, out.Claim)
		if err != nil {
			return translate(err)
		}
		failing := `failing_since = NULL`
		if !out.Delivered {
			failing = `failing_since = coalesce(failing_since, @at)`
		}
		if _, err := tx.Exec(ctx, `UPDATE webhook_endpoints SET `+failing+` WHERE id = @id`, pgx.NamedArgs{"at": a.Time, "id": a.EndpointID}); err != nil {
			return translate(err)
		}
		e, err = endpointByID(ctx, tx, a.EndpointID, "")
		return err
	})
	return e, err
}

// RetryWebhookDeliveries requeues deliveries for one attempt now.
func (db *DB) RetryWebhookDeliveries(ctx context.Context, f keyplane.RetryFilter, now time.Time) (int, error) {
	var n int64
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		where := `status = 'failed' AND message_id IN (SELECT id FROM webhook_messages WHERE created_at >= @since)`
		if f.MessageID != "" {
			// A named message is sent again even if delivered: the caller asked.
			where = `message_id = @message AND status <> 'pending'`
		}
		if f.EndpointIDs != nil {
			where += ` AND endpoint_id = ANY(@endpoints)`
		}
		tag, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET status = 'pending', round = 0, last_try = true, next_attempt_at = @now, claim = '',
			updated_at = @now WHERE `+where, pgx.NamedArgs{"since": f.Since, "message": f.MessageID, "endpoints": f.EndpointIDs, "now": now})
		if err != nil {
			return translate(err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return int(n), err
}

// ---- schedules

// WebhookSchedule returns where the named schedule stands.
func (db *DB) WebhookSchedule(ctx context.Context, name string) (time.Time, error) {
	var done time.Time
	err := db.pool.QueryRow(ctx, `SELECT done_until FROM webhook_schedules WHERE name = $1`, name).Scan(&done)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, translate(err)
	}
	return utc(done), nil
}

// AdvanceWebhookSchedule moves the schedule and raises events atomically;
// of two instances moving it from the same point, the second updates no row.
func (db *DB) AdvanceWebhookSchedule(ctx context.Context, name string, from, to time.Time, events []*keyplane.WebhookEvent) (bool, error) {
	moved := false
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var sql string
		args := pgx.NamedArgs{"name": name, "from": from, "to": to}
		if from.IsZero() {
			sql = `INSERT INTO webhook_schedules (name, done_until) VALUES (@name, @to) ON CONFLICT (name) DO NOTHING`
		} else {
			sql = `UPDATE webhook_schedules SET done_until = @to WHERE name = @name AND done_until = @from`
		}
		tag, err := tx.Exec(ctx, sql, args)
		if err != nil {
			return translate(err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		moved = true
		return raiseWebhooks(ctx, tx, events)
	})
	return moved, err
}

// KeysExpiringBetween returns keys not revoked expiring in (from, to].
func (db *DB) KeysExpiringBetween(ctx context.Context, from, to time.Time, limit int) ([]*keyplane.Key, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+keyColumns+` FROM keys
		WHERE expires_at > $1 AND expires_at <= $2 AND revoked_at IS NULL ORDER BY expires_at, id LIMIT $3`, from, to, limit)
	if err != nil {
		return nil, translate(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*keyplane.Key, error) { return scanKey(row) })
	return out, translate(err)
}

// PruneWebhookMessages deletes old messages whose deliveries all ended.
func (db *DB) PruneWebhookMessages(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM webhook_messages m WHERE m.created_at < $1 AND NOT EXISTS (
			SELECT 1 FROM webhook_deliveries d WHERE d.message_id = m.id AND d.status = 'pending')`, before)
		if err != nil {
			return translate(err)
		}
		n = tag.RowsAffected()
		_, err = tx.Exec(ctx, `DELETE FROM webhook_marks WHERE raised_at < $1`, before)
		return translate(err)
	})
	return n, err
}
