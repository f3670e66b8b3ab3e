package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
)

// ---- endpoints

const endpointColumns = `id, account_id, url, description, events, enabled, disabled_reason, secrets, failing_since, created_at, updated_at`

func scanEndpoint(row scanner) (*keyplane.WebhookEndpoint, error) {
	var e keyplane.WebhookEndpoint
	var account sql.NullString
	var events, secrets string
	var failing sql.NullInt64
	var created, updated int64
	if err := row.Scan(&e.ID, &account, &e.URL, &e.Description, &events, &e.Enabled, &e.DisabledReason, &secrets, &failing, &created, &updated); err != nil {
		return nil, err
	}
	if err := errors.Join(json.Unmarshal([]byte(events), &e.Events), json.Unmarshal([]byte(secrets), &e.Secrets)); err != nil {
		return nil, fmt.Errorf("sqlite: webhook endpoint %s: %w", e.ID, err)
	}
	if len(e.Events) == 0 {
		e.Events = nil // every event
	}
	e.AccountID, e.FailingSince = account.String, fromMicrosPtr(failing)
	e.CreatedAt, e.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &e, nil
}

func secretsJSON(s []keyplane.WebhookSecret) string {
	if s == nil {
		s = []keyplane.WebhookSecret{}
	}
	return mustJSON(s)
}

// CreateWebhookEndpoint inserts e unless its account has max endpoints.
func (db *DB) CreateWebhookEndpoint(ctx context.Context, e *keyplane.WebhookEndpoint, max int) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		if e.AccountID != "" {
			if _, err := accountByID(ctx, tx, e.AccountID); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM webhook_endpoints WHERE account_id = ?`, e.AccountID).Scan(&n); err != nil {
				return translate(err)
			}
			if n >= max {
				return keyplane.Invalid("url", "the account has %d webhook endpoints, the most it may have", n)
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO webhook_endpoints (`+endpointColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.ID, nullString(e.AccountID), e.URL, e.Description, mustJSON(stringsOrEmpty(e.Events)), e.Enabled, e.DisabledReason,
			secretsJSON(e.Secrets), microsPtr(e.FailingSince), micros(e.CreatedAt), micros(e.UpdatedAt))
		return translate(err)
	})
}

// WebhookEndpoint returns the endpoint with id.
func (db *DB) WebhookEndpoint(ctx context.Context, id string) (*keyplane.WebhookEndpoint, error) {
	return endpointByID(ctx, db.read, id)
}

func endpointByID(ctx context.Context, q querier, id string) (*keyplane.WebhookEndpoint, error) {
	e, err := scanEndpoint(q.QueryRowContext(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "webhook endpoint %q not found", id)
	}
	return e, readErr(err)
}

// ListWebhookEndpoints lists an account's endpoints, or the operator's, by id.
func (db *DB) ListWebhookEndpoints(ctx context.Context, f keyplane.WebhookEndpointFilter) ([]*keyplane.WebhookEndpoint, string, error) {
	after, err := keyplane.DecodeCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	owner := `account_id = ?`
	args := []any{f.AccountID}
	if f.Operator {
		owner, args = `account_id IS NULL`, nil
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE `+owner+` AND id > ? ORDER BY id LIMIT ?`,
		append(args, after, f.Limit+1)...)
	if err != nil {
		return nil, "", unavailable(err)
	}
	defer rows.Close()
	var out []*keyplane.WebhookEndpoint
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, "", readErr(err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", unavailable(err)
	}
	out, next := cut(out, f.Limit, func(e *keyplane.WebhookEndpoint) string { return e.ID })
	return out, next, nil
}

// UpdateWebhookEndpoint applies update to the endpoint in one transaction.
func (db *DB) UpdateWebhookEndpoint(ctx context.Context, id string, update func(*keyplane.WebhookEndpoint) error) (*keyplane.WebhookEndpoint, error) {
	var out *keyplane.WebhookEndpoint
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		e, err := endpointByID(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := update(e); err != nil {
			return err
		}
		e.ID, out = id, e
		return updateEndpointRow(ctx, tx, e)
	})
	return out, err
}

func updateEndpointRow(ctx context.Context, tx *sql.Tx, e *keyplane.WebhookEndpoint) error {
	_, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints SET url = ?, description = ?, events = ?, enabled = ?, disabled_reason = ?,
		secrets = ?, failing_since = ?, updated_at = ? WHERE id = ?`,
		e.URL, e.Description, mustJSON(stringsOrEmpty(e.Events)), e.Enabled, e.DisabledReason, secretsJSON(e.Secrets),
		microsPtr(e.FailingSince), micros(e.UpdatedAt), e.ID)
	return translate(err)
}

// DeleteWebhookEndpoint deletes the endpoint, its deliveries and attempts.
func (db *DB) DeleteWebhookEndpoint(ctx context.Context, id string) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM webhook_endpoints WHERE id = ?`, id)
		if err != nil {
			return translate(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
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
	return db.inTx(ctx, func(tx *sql.Tx) error { return raiseWebhooks(ctx, tx, events) })
}

// raiseWebhooks writes each event's message and one delivery per enabled
// endpoint subscribed to it. An event with Once already raised (within
// OnceEvery) is dropped, and takes the first one's id. An event that no
// endpoint receives leaves no message, unless it must be remembered
// (Once), so a change without subscribers costs one indexed read.
func raiseWebhooks(ctx context.Context, tx *sql.Tx, events []*keyplane.WebhookEvent) error {
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
		_, err = tx.ExecContext(ctx, `INSERT INTO webhook_messages (id, account_id, type, created_at, payload) VALUES (?, ?, ?, ?, ?)`,
			ev.ID, ev.AccountID, ev.Type, micros(ev.Time), string(ev.Payload))
		if err != nil {
			return translate(err)
		}
		for _, id := range endpoints {
			_, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (message_id, endpoint_id, status, attempts, round, last_try,
				next_attempt_at, claim, updated_at) VALUES (?, ?, 'pending', 0, 0, 0, ?, '', ?)`, ev.ID, id, micros(ev.Time), micros(ev.Time))
			if err != nil {
				return translate(err)
			}
		}
	}
	return nil
}

// markOnce records ev's Once name and reports whether it is the first
// within OnceEvery; a repeat takes the first event's id.
func markOnce(ctx context.Context, tx *sql.Tx, ev *keyplane.WebhookEvent) (bool, error) {
	cutoff := int64(-1 << 62) // never raised again
	if ev.OnceEvery > 0 {
		cutoff = micros(ev.Time.Add(-ev.OnceEvery))
	}
	var id string
	err := tx.QueryRowContext(ctx, `INSERT INTO webhook_marks (mark, message_id, raised_at) VALUES (?, ?, ?)
		ON CONFLICT (mark) DO UPDATE SET message_id = excluded.message_id, raised_at = excluded.raised_at
		WHERE webhook_marks.raised_at <= ? RETURNING message_id`, ev.Once, ev.ID, micros(ev.Time), cutoff).Scan(&id)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return false, translate(err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT message_id FROM webhook_marks WHERE mark = ?`, ev.Once).Scan(&ev.ID); err != nil {
		return false, translate(err)
	}
	ev.Duplicate = true
	return false, nil
}

// subscribedEndpoints returns the ids of the enabled endpoints that
// receive ev: its account's and the operator's, or the one it names.
func subscribedEndpoints(ctx context.Context, tx *sql.Tx, ev *keyplane.WebhookEvent) ([]string, error) {
	var rows *sql.Rows
	var err error
	switch {
	case ev.EndpointID != "":
		rows, err = tx.QueryContext(ctx, `SELECT id, events FROM webhook_endpoints WHERE id = ? AND enabled = 1`, ev.EndpointID)
	case ev.AccountOnly:
		rows, err = tx.QueryContext(ctx, `SELECT id, events FROM webhook_endpoints WHERE account_id = ? AND enabled = 1`, ev.AccountID)
	default:
		rows, err = tx.QueryContext(ctx, `SELECT id, events FROM webhook_endpoints
			WHERE (account_id = ? OR account_id IS NULL) AND enabled = 1`, ev.AccountID)
	}
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id, events string
		var filters []string
		if err := rows.Scan(&id, &events); err != nil {
			return nil, translate(err)
		}
		if err := json.Unmarshal([]byte(events), &filters); err != nil {
			return nil, fmt.Errorf("sqlite: webhook endpoint %s events: %w", id, err)
		}
		if ev.EndpointID != "" || keyplane.EventMatches(filters, ev.Type) {
			ids = append(ids, id)
		}
	}
	return ids, translate(rows.Err())
}

const messageColumns = `m.id, m.account_id, m.type, m.created_at, m.payload`

func scanMessage(dest *keyplane.WebhookMessage, created *int64, payload *string) []any {
	return []any{&dest.ID, &dest.AccountID, &dest.Type, created, payload}
}

// WebhookMessage returns the message with id.
func (db *DB) WebhookMessage(ctx context.Context, id string) (*keyplane.WebhookMessage, error) {
	var m keyplane.WebhookMessage
	var created int64
	var payload string
	err := db.read.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM webhook_messages m WHERE m.id = ?`, id).Scan(scanMessage(&m, &created, &payload)...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, keyplane.Errorf(keyplane.ENOTFOUND, "message %q not found", id)
	}
	if err != nil {
		return nil, readErr(err)
	}
	m.Time, m.Payload = fromMicros(created), json.RawMessage(payload)
	return &m, nil
}

const deliveryColumns = `d.endpoint_id, d.status, d.attempts, d.round, d.last_try, d.next_attempt_at, d.updated_at, d.claim`

func scanDelivery(row scanner) (*keyplane.WebhookDelivery, error) {
	var d keyplane.WebhookDelivery
	var created, next, updated int64
	var payload string
	dest := append(scanMessage(&d.Message, &created, &payload),
		&d.EndpointID, &d.Status, &d.Attempts, &d.Round, &d.LastTry, &next, &updated, &d.Claim)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	d.Message.Time, d.Message.Payload = fromMicros(created), json.RawMessage(payload)
	d.NextAttemptAt, d.UpdatedAt = fromMicros(next), fromMicros(updated)
	return &d, nil
}

func queryDeliveries(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, where string, args ...any) ([]*keyplane.WebhookDelivery, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+messageColumns+`, `+deliveryColumns+`
		FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id WHERE `+where, args...)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []*keyplane.WebhookDelivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, readErr(err)
		}
		out = append(out, d)
	}
	return out, translate(rows.Err())
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
	out, err := queryDeliveries(ctx, db.read, `d.endpoint_id = ? AND d.message_id < ? ORDER BY d.message_id DESC LIMIT ?`,
		endpointID, before, page.Limit+1)
	if err != nil {
		return nil, "", err
	}
	out, next := cut(out, page.Limit, func(d *keyplane.WebhookDelivery) string { return d.Message.ID })
	return out, next, db.withAttempts(ctx, out)
}

// MessageDeliveries lists a message's deliveries with their attempts.
func (db *DB) MessageDeliveries(ctx context.Context, messageID string) ([]*keyplane.WebhookDelivery, error) {
	out, err := queryDeliveries(ctx, db.read, `d.message_id = ? ORDER BY d.endpoint_id`, messageID)
	if err != nil {
		return nil, err
	}
	return out, db.withAttempts(ctx, out)
}

func (db *DB) withAttempts(ctx context.Context, deliveries []*keyplane.WebhookDelivery) error {
	for _, d := range deliveries {
		rows, err := db.read.QueryContext(ctx, `SELECT id, attempted_at, status_code, duration_us, response, error FROM webhook_attempts
			WHERE message_id = ? AND endpoint_id = ? ORDER BY id`, d.Message.ID, d.EndpointID)
		if err != nil {
			return unavailable(err)
		}
		for rows.Next() {
			a := keyplane.WebhookAttempt{MessageID: d.Message.ID, EndpointID: d.EndpointID}
			var at, us int64
			if err := rows.Scan(&a.ID, &at, &a.StatusCode, &us, &a.Response, &a.Error); err != nil {
				rows.Close()
				return readErr(err)
			}
			a.Time, a.Duration = fromMicros(at), time.Duration(us)*time.Microsecond
			d.History = append(d.History, a)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return unavailable(err)
		}
	}
	return nil
}

// ---- dispatch

// claimScan is how many due deliveries a claim looks at per delivery it
// may return: enough to find other endpoints' behind a busy one's.
const claimScan = 4

// ClaimWebhookDeliveries claims due deliveries. SQLite has one writer, so
// the transaction alone keeps two claimers apart.
func (db *DB) ClaimWebhookDeliveries(ctx context.Context, req keyplane.ClaimRequest) ([]*keyplane.WebhookDelivery, error) {
	var out []*keyplane.WebhookDelivery
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		busy := busyEndpoints(req)
		where := `d.status = 'pending' AND d.next_attempt_at <= ? AND d.endpoint_id IN (SELECT id FROM webhook_endpoints WHERE enabled = 1)`
		args := []any{micros(req.Now)}
		if len(busy) > 0 {
			where += ` AND d.endpoint_id NOT IN (?` + strings.Repeat(", ?", len(busy)-1) + `)`
			for _, id := range busy {
				args = append(args, id)
			}
		}
		due, err := dueDeliveries(ctx, tx, where+` ORDER BY d.next_attempt_at LIMIT ?`, append(args, req.Limit*claimScan)...)
		if err != nil {
			return err
		}
		claim := newClaim()
		until := micros(req.Now.Add(req.Lease))
		for _, d := range pickClaims(due, req) {
			if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET next_attempt_at = ?, claim = ? WHERE message_id = ? AND endpoint_id = ?`,
				until, claim, d.Message.ID, d.EndpointID); err != nil {
				return translate(err)
			}
			full, err := queryDeliveries(ctx, tx, `d.message_id = ? AND d.endpoint_id = ?`, d.Message.ID, d.EndpointID)
			if err != nil {
				return err
			}
			out = append(out, full...)
		}
		return nil
	})
	return out, err
}

// dueDeliveries reads the ids of due deliveries, not their payloads: a
// claim looks at more than it takes.
func dueDeliveries(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]*keyplane.WebhookDelivery, error) {
	rows, err := tx.QueryContext(ctx, `SELECT d.message_id, d.endpoint_id FROM webhook_deliveries d WHERE `+where, args...)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []*keyplane.WebhookDelivery
	for rows.Next() {
		d := &keyplane.WebhookDelivery{}
		if err := rows.Scan(&d.Message.ID, &d.EndpointID); err != nil {
			return nil, translate(err)
		}
		out = append(out, d)
	}
	return out, translate(rows.Err())
}

// busyEndpoints lists the endpoints with no room for another delivery.
func busyEndpoints(req keyplane.ClaimRequest) []string {
	var ids []string
	for id, n := range req.Busy {
		if req.PerEndpoint > 0 && n >= req.PerEndpoint {
			ids = append(ids, id)
		}
	}
	return ids
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
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		a := out.Attempt
		_, err := tx.ExecContext(ctx, `INSERT INTO webhook_attempts (id, message_id, endpoint_id, attempted_at, status_code, duration_us, response, error)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, a.ID, a.MessageID, a.EndpointID, micros(a.Time), a.StatusCode, a.Duration.Microseconds(), a.Response, a.Error)
		if err != nil {
			return translate(err)
		}
		status, next := nextState(out)
		_, err = tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, round = round + 1, next_attempt_at = ?,
			claim = '', updated_at = ? WHERE message_id = ? AND endpoint_id = ? AND claim = ?`,
			status, micros(next), micros(a.Time), a.MessageID, a.EndpointID, out.Claim)
		if err != nil {
			return translate(err)
		}
		failing := `failing_since = NULL`
		if !out.Delivered {
			failing = `failing_since = coalesce(failing_since, :at)`
		}
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints SET `+failing+` WHERE id = :id`,
			sql.Named("at", micros(a.Time)), sql.Named("id", a.EndpointID)); err != nil {
			return translate(err)
		}
		e, err = endpointByID(ctx, tx, a.EndpointID)
		return err
	})
	return e, err
}

// nextState is the delivery's status after an attempt, and when the next
// one is due (the attempt's time when there is none).
func nextState(out keyplane.AttemptOutcome) (keyplane.DeliveryStatus, time.Time) {
	switch {
	case out.Delivered:
		return keyplane.DeliveryDelivered, out.Attempt.Time
	case out.Next == nil:
		return keyplane.DeliveryFailed, out.Attempt.Time
	}
	return keyplane.DeliveryPending, *out.Next
}

// RetryWebhookDeliveries requeues deliveries for one attempt now.
func (db *DB) RetryWebhookDeliveries(ctx context.Context, f keyplane.RetryFilter, now time.Time) (int, error) {
	var n int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		where, args := retryWhere(f)
		res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET status = 'pending', round = 0, last_try = 1, next_attempt_at = ?, claim = '',
			updated_at = ? WHERE `+where, append([]any{micros(now), micros(now)}, args...)...)
		if err != nil {
			return translate(err)
		}
		n, err = res.RowsAffected()
		return translate(err)
	})
	return int(n), err
}

func retryWhere(f keyplane.RetryFilter) (string, []any) {
	var where []string
	var args []any
	if f.MessageID != "" {
		// A named message is sent again even if delivered: the caller asked.
		where, args = append(where, `message_id = ? AND status <> 'pending'`), append(args, f.MessageID)
	} else {
		where = append(where, `status = 'failed'`)
		where, args = append(where, `message_id IN (SELECT id FROM webhook_messages WHERE created_at >= ?)`), append(args, micros(f.Since))
	}
	if f.EndpointIDs != nil {
		if len(f.EndpointIDs) == 0 {
			return `0 = 1`, nil
		}
		where = append(where, `endpoint_id IN (?`+strings.Repeat(", ?", len(f.EndpointIDs)-1)+`)`)
		for _, id := range f.EndpointIDs {
			args = append(args, id)
		}
	}
	return strings.Join(where, " AND "), args
}

// ---- schedules

// WebhookSchedule returns where the named schedule stands.
func (db *DB) WebhookSchedule(ctx context.Context, name string) (time.Time, error) {
	var done int64
	err := db.read.QueryRowContext(ctx, `SELECT done_until FROM webhook_schedules WHERE name = ?`, name).Scan(&done)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, readErr(err)
	}
	return fromMicros(done), nil
}

// AdvanceWebhookSchedule moves the schedule and raises events atomically.
func (db *DB) AdvanceWebhookSchedule(ctx context.Context, name string, from, to time.Time, events []*keyplane.WebhookEvent) (bool, error) {
	moved := false
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		if from.IsZero() {
			res, err = tx.ExecContext(ctx, `INSERT INTO webhook_schedules (name, done_until) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, micros(to))
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE webhook_schedules SET done_until = ? WHERE name = ? AND done_until = ?`, micros(to), name, micros(from))
		}
		if err != nil {
			return translate(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		moved = true
		return raiseWebhooks(ctx, tx, events)
	})
	return moved, err
}

// KeysExpiringBetween returns keys not revoked expiring in (from, to].
func (db *DB) KeysExpiringBetween(ctx context.Context, from, to time.Time, limit int) ([]*keyplane.Key, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+keyColumns+` FROM keys
		WHERE expires_at > ? AND expires_at <= ? AND revoked_at IS NULL ORDER BY expires_at, id LIMIT ?`, micros(from), micros(to), limit)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	var out []*keyplane.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, readErr(err)
		}
		out = append(out, k)
	}
	return out, translate(rows.Err())
}

// PruneWebhookMessages deletes old messages whose deliveries all ended.
func (db *DB) PruneWebhookMessages(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM webhook_messages WHERE created_at < ? AND NOT EXISTS (
			SELECT 1 FROM webhook_deliveries d WHERE d.message_id = webhook_messages.id AND d.status = 'pending')`, micros(before))
		if err != nil {
			return translate(err)
		}
		n, _ = res.RowsAffected()
		_, err = tx.ExecContext(ctx, `DELETE FROM webhook_marks WHERE raised_at < ?`, micros(before))
		return translate(err)
	})
	return n, err
}
