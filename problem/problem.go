package problem

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/keyplane/keyplane"
)

// Problem is an RFC 9457 problem details body, with keyplane's error code and,
// for validation errors, what was wrong with each field. Its methods satisfy
// huma's StatusError, ContentTypeFilter and HeadersError by shape, so the HTTP
// API returns it as is without this package importing huma.
type Problem struct {
	Type   string         `json:"type" doc:"A URI naming the kind of problem"`
	Title  string         `json:"title"`
	Status int            `json:"status"`
	Detail string         `json:"detail,omitempty"`
	Code   string         `json:"code" doc:"Stable machine-readable error code: invalid, not_found, conflict, limit, unauthorized, forbidden, unavailable, internal, request_entity_too_large, …"`
	Errors []FieldProblem `json:"errors,omitempty"`

	header http.Header // extra response headers, such as WWW-Authenticate
}

// FieldProblem says what is wrong with one input.
type FieldProblem struct {
	Field   string `json:"field" doc:"Where, e.g. name, scopes[2], query.limit"`
	Message string `json:"message"`
}

func (p *Problem) Error() string             { return p.Detail }
func (p *Problem) GetStatus() int            { return p.Status }
func (p *Problem) ContentType(string) string { return "application/problem+json" }
func (p *Problem) GetHeaders() http.Header   { return p.header }

// Header returns the extra response headers, to add to.
func (p *Problem) Header() http.Header {
	if p.header == nil {
		p.header = http.Header{}
	}
	return p.header
}

// statusOf maps domain error codes to HTTP statuses; it is the only place that does.
var statusOf = map[string]int{
	keyplane.EINVALID:      http.StatusBadRequest,
	keyplane.ENOTFOUND:     http.StatusNotFound,
	keyplane.ECONFLICT:     http.StatusConflict,
	keyplane.ELIMIT:        http.StatusConflict,
	keyplane.EUNAUTHORIZED: http.StatusUnauthorized,
	keyplane.EFORBIDDEN:    http.StatusForbidden,
	keyplane.ETOOMANY:      http.StatusTooManyRequests,
	keyplane.EUNAVAILABLE:  http.StatusServiceUnavailable,
	keyplane.EINTERNAL:     http.StatusInternalServerError,
}

// StatusOf is the HTTP status of an error, also for handlers that answer in
// HTML rather than problems (the portal's pages).
func StatusOf(err error) int {
	return statusOf[keyplane.ErrorCode(err)]
}

// CodeOf is the reverse, for problems a framework raises itself (bad JSON, too
// large): the mapped code, else the status text in snake case.
func CodeOf(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return keyplane.EINVALID
	case http.StatusConflict:
		return keyplane.ECONFLICT
	}
	for code, s := range statusOf {
		if s == status {
			return code
		}
	}
	if text := http.StatusText(status); text != "" {
		return strings.ReplaceAll(strings.ToLower(text), " ", "_")
	}
	return keyplane.EINTERNAL
}

// New returns a problem; a 401 carries WWW-Authenticate.
func New(status int, code, detail string, fields []FieldProblem) *Problem {
	p := &Problem{Type: "urn:keyplane:problem:" + code, Title: http.StatusText(status), Status: status, Detail: detail, Code: code, Errors: fields}
	if status == http.StatusUnauthorized {
		p.Header().Set("WWW-Authenticate", `Bearer realm="keyplane"`)
	}
	return p
}

// FromError turns an application error into a problem. Errors that are not
// *keyplane.Error show only "internal error".
func FromError(err error) *Problem {
	code := keyplane.ErrorCode(err)
	var fields []FieldProblem
	if e, ok := err.(*keyplane.Error); ok {
		for _, f := range e.Fields {
			fields = append(fields, FieldProblem{Field: f.Field, Message: f.Message})
		}
	}
	return New(statusOf[code], code, keyplane.ErrorMessage(err), fields)
}

// StatusClientClosedRequest is nginx's 499: the client hung up before the
// answer. No one reads it; the request log does, where a hang-up is neither
// a server error nor a success.
const StatusClientClosedRequest = 499

// ClientGone reports whether a failed request's client hung up: the server
// cancels a request's context when its connection closes, and whatever the
// handler was waiting on then fails with it.
func ClientGone(ctx context.Context) bool {
	return errors.Is(ctx.Err(), context.Canceled)
}

// ClientClosed is the problem logged for a request whose client hung up.
func ClientClosed(detail string) *Problem {
	return New(StatusClientClosedRequest, "client_closed_request", detail, nil)
}

// Write answers with p.
func Write(w http.ResponseWriter, p *Problem) {
	for k, v := range p.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

// statusOfRefusal maps a refused verification to the status the operator's
// client is answered with (forward-auth, the gateway, the middleware); it is
// the only place that does. An unusable key is a 401, a usable one that may
// not do this a 403, and a limit a 429.
var statusOfRefusal = map[keyplane.VerifyCode]int{
	keyplane.VerifyNotFound:          http.StatusUnauthorized,
	keyplane.VerifyRevoked:           http.StatusUnauthorized,
	keyplane.VerifyExpired:           http.StatusUnauthorized,
	keyplane.VerifyDisabled:          http.StatusUnauthorized,
	keyplane.VerifyForbidden:         http.StatusForbidden,
	keyplane.VerifyInsufficientScope: http.StatusForbidden,
	keyplane.VerifyRateLimited:       http.StatusTooManyRequests,
	keyplane.VerifyQuotaExceeded:     http.StatusTooManyRequests,
}

var refusalDetail = map[keyplane.VerifyCode]string{
	keyplane.VerifyNotFound:          "the API key is not valid",
	keyplane.VerifyRevoked:           "the API key has been revoked",
	keyplane.VerifyExpired:           "the API key has expired",
	keyplane.VerifyDisabled:          "the API key is disabled",
	keyplane.VerifyForbidden:         "the API key may not be used from this address",
	keyplane.VerifyInsufficientScope: "the API key lacks the scope ",
	keyplane.VerifyRateLimited:       "rate limit exceeded; see Retry-After",
	keyplane.VerifyQuotaExceeded:     "quota exceeded; see Retry-After",
}

// Refusal is the problem for a verification that did not pass: its code is
// the verify code in lower case. A code this build does not know (a newer
// server's, seen by the middleware) is refused with 403. The caller adds the
// rate-limit headers it has.
func Refusal(code keyplane.VerifyCode, scope string) *Problem {
	status, ok := statusOfRefusal[code]
	if !ok {
		status = http.StatusForbidden
	}
	detail := refusalDetail[code]
	if code == keyplane.VerifyInsufficientScope {
		detail += scope
	}
	return New(status, strings.ToLower(string(code)), detail, nil)
}
