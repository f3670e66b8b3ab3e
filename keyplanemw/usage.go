package keyplanemw

import "time"

// UsageEvent is one request's outcome, as the middleware saw it.
type UsageEvent struct {
	KeyID     string
	AccountID string
	Endpoint  string
	Time      time.Time
	Code      string        // VALID for an admitted request, else the refusal
	Status    int           // the HTTP status the client got
	Latency   time.Duration // the handler's, with the verification
}

// UsageReporter receives usage events. Report is called on the request path
// after the response: it must not block.
type UsageReporter interface {
	Report(UsageEvent)
}
