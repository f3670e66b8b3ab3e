package keyplane

import "time"

// UsageEvent is one request's outcome, as verification, the gateway, the
// forward-auth endpoint or an operator's API (POST /v1/usage) saw it.
// Events of a key that was never found carry no KeyID and are not metered.
type UsageEvent struct {
	KeyID     string
	AccountID string
	// Endpoint names what was called, e.g. "GET /v1/things/{id}"; may be empty.
	Endpoint string
	Time     time.Time
	// Code is the verification's outcome; VALID when the request was let through.
	Code VerifyCode
	// Status is the upstream's HTTP status when known (gateway, middleware,
	// POST /v1/usage), 0 when only verification was seen.
	Status int
	// Latency is the upstream's, when known; 0 when not measured.
	Latency time.Duration
}

// UsageRecorder counts usage events. Record is called on the verify path: it
// must not block, do I/O or allocate per call; implementations count in
// memory and write to storage in batches.
type UsageRecorder interface {
	Record(ev UsageEvent)
}
