package webhooks

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/oklog/ulid/v2"
)

// payload is a delivery's body, fields in the order of the contract.
type payload struct {
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// NewEvent returns an event of type typ for an account ("" for none),
// with its payload built from data (a value that encodes to a JSON object).
func NewEvent(typ, accountID string, at time.Time, data any) (*keyplane.WebhookEvent, error) {
	raw, ok := data.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = json.Marshal(data); err != nil {
			return nil, err
		}
	}
	at = at.UTC().Truncate(time.Microsecond)
	body, err := json.Marshal(payload{Type: typ, Timestamp: at.Format(time.RFC3339Nano), Data: raw})
	if err != nil {
		return nil, err
	}
	return &keyplane.WebhookEvent{ID: NewMessageID(), AccountID: accountID, Type: typ, Time: at, Payload: body}, nil
}

// MustEvent is NewEvent for data of known shape, which always encodes.
func MustEvent(typ, accountID string, at time.Time, data any) *keyplane.WebhookEvent {
	ev, err := NewEvent(typ, accountID, at, data)
	if err != nil {
		panic("webhooks: event " + typ + ": " + err.Error())
	}
	return ev
}

// NewMessageID returns a new "msg_…" id, time-ordered like keyplane's others.
func NewMessageID() string { return newID("msg") }

func newID(kind string) string { return kind + "_" + strings.ToLower(ulid.Make().String()) }

// PayloadData returns the data of a payload.
func PayloadData(body json.RawMessage) (json.RawMessage, error) {
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, err
	}
	return p.Data, nil
}
